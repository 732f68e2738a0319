"""`NodeClient` and `AsyncNodeClient` against a node served in-process, and their error mapping."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tally.client import (
    AsyncNodeClient,
    NodeClient,
    NodeRejection,
    NodeResponseError,
    NodeUnreachable,
    coins_from_json,
    make_issue,
    make_transfer,
)
from tally.crypto import verify
from tally.model import (
    CoinId,
    CommitCertificate,
    DoubleSpendProof,
    Header,
    KeyLock,
    Receipt,
    SignedTx,
    TxInclusionProof,
    address_of,
    coin_id,
    decode,
    encode,
    tx_id,
)
from tally.node.api import create_app
from tally.node.core import Node
from tally.rules import check_certificate, verify_double_spend_proof, verify_tx_inclusion
from tests.rules.helpers import (
    ALICE,
    BOB,
    CAROL,
    CHAIN_ID,
    CNY_ISSUER,
    HRP,
    RESERVE_REF,
    coin,
    key,
    make_genesis,
    offline_lock,
    pub,
)

URL = "http://testserver"


def _issue(amount: int, owner: int = ALICE, nonce: int = 1) -> SignedTx:
    return make_issue(
        "CNY", key(CNY_ISSUER), [(pub(owner), amount)], RESERVE_REF, nonce, 500, CHAIN_ID
    )


@pytest.fixture
def client(api: TestClient) -> NodeClient:
    return NodeClient(URL, client=api)


def test_submit_waits_for_commit_and_queries_show_the_result(client: NodeClient) -> None:
    issue = _issue(1_000)
    result = client.submit(issue)
    assert result["status"] == "committed"
    assert result["txid"] == tx_id(issue.body).hex()
    assert result["receipt"] == {"accepted": True, "code": "ok"}

    alice_coin = coin_id(tx_id(issue.body), 0)
    pay = make_transfer(
        [(alice_coin, key(ALICE))],
        [(pub(BOB), "CNY", 300), (pub(ALICE), "CNY", 700)],
        500,
        CHAIN_ID,
    )
    paid = client.submit(encode(pay))
    assert paid["status"] == "committed"

    assert client.tx(tx_id(pay.body))["tx"]["kind"] == "transfer"
    assert client.tx(paid["txid"])["height"] == paid["height"]
    assert client.coin(coin_id(tx_id(pay.body), 0))["status"] == "unspent"
    listing = client.address_coins(address_of(KeyLock(key=pub(BOB)), HRP))
    assert listing["balance"] == {"CNY": "300"}
    assert coins_from_json(listing) == [(coin_id(tx_id(pay.body), 0), coin("CNY", 300, BOB))]
    assert client.block(paid["height"])["txs"][0]["txid"] == paid["txid"]
    assert client.block()["header"]["height"] == paid["height"]
    assert client.block("latest") == client.block(str(paid["height"]))
    assert client.supply()["assets"]["CNY"]["outstanding"] == "1000"
    status = client.wait_for_height(paid["height"], timeout=5)
    assert status["chain_id"] == CHAIN_ID
    assert "tally_" in client.metrics()


def test_submit_without_wait_returns_pending_or_committed(client: NodeClient) -> None:
    result = client.submit(_issue(5), wait=False)
    assert result["status"] in ("pending", "committed")
    client.wait_for_height(1, timeout=5)
    assert client.tx(result["txid"])["status"] == "committed"


def test_batch_reports_each_transaction_in_order(client: NodeClient) -> None:
    good = [_issue(10, nonce=n) for n in range(1, 4)]
    results = client.submit_batch([*good, b"\x00"], wait=True)
    assert [r.get("status") for r in results[:3]] == ["committed"] * 3
    assert [r["txid"] for r in results[:3]] == [tx_id(tx.body).hex() for tx in good]
    assert results[3]["code"].startswith("decode.")


def test_refusals_raise_node_rejection_with_the_code(client: NodeClient) -> None:
    issue = _issue(100)
    client.submit(issue)
    spent = coin_id(tx_id(issue.body), 0)
    first = make_transfer([(spent, key(ALICE))], [(pub(BOB), "CNY", 100)], 500, CHAIN_ID)
    client.submit(first)
    again = make_transfer([(spent, key(ALICE))], [(pub(ALICE), "CNY", 100)], 500, CHAIN_ID)
    with pytest.raises(NodeRejection) as refused:
        client.submit(again)
    assert refused.value.code == "input.spent"
    assert refused.value.status == 409
    assert refused.value.detail["coin_id"] == spent.hex()
    with pytest.raises(NodeRejection) as missing:
        client.block(99)
    assert (missing.value.code, missing.value.status) == ("not_found", 404)
    with pytest.raises(NodeRejection) as bad_address:
        client.address_coins("tly1nothing")
    assert bad_address.value.code == "address.invalid"


def test_malformed_ids_are_refused_before_sending(client: NodeClient) -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        client.tx("abc")
    with pytest.raises(ValueError, match="64 hex digits"):
        client.coin(CoinId(bytes(31)))
    with pytest.raises(ValueError, match="'latest'"):
        client.block("-1")


def test_async_client_submits_and_queries_through_asgi(node: Node) -> None:
    app = create_app(node, verify_threads=2)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with AsyncNodeClient(URL, transport=httpx.ASGITransport(app=app)) as client:
            result = await client.submit(_issue(42))
            shown = await client.tx(result["txid"])
            status = await client.wait_for_height(result["height"], timeout=5)
            with pytest.raises(NodeRejection) as missing:
                await client.coin(bytes(32))
            assert missing.value.code == "not_found"
            return result, shown, status

    result, shown, status = asyncio.run(scenario())
    assert result["status"] == "committed"
    assert shown["tx"]["kind"] == "issue"
    assert status["height"] >= result["height"]


def _offline_double_spend(client: NodeClient) -> tuple[SignedTx, SignedTx, CoinId]:
    """Alice funds a purse and signs its coin to Bob and then to Carol; both are submitted."""
    issue = _issue(100, nonce=77)
    assert client.submit(issue)["status"] == "committed"
    funds = coin_id(tx_id(issue.body), 0)
    purse = make_transfer(
        [(funds, key(ALICE))], [(offline_lock(ALICE, 90), "CNY", 100)], 500, CHAIN_ID
    )
    assert client.submit(purse)["status"] == "committed"
    cid = coin_id(tx_id(purse.body), 0)
    hops = [
        make_transfer([(cid, key(ALICE))], [(offline_lock(to, 90), "CNY", 100)], 500, CHAIN_ID)
        for to in (BOB, CAROL)
    ]
    results = [client.submit(hop) for hop in hops]
    assert [r["receipt"]["code"] for r in results] == ["ok", "offline.double_spend"]
    return hops[0], hops[1], cid


def test_inclusion_and_double_spend_proofs_are_fetched_and_verify(client: NodeClient) -> None:
    first, second, cid = _offline_double_spend(client)
    view = client.inclusion(tx_id(first.body))
    assert view["txid"] == tx_id(first.body).hex()
    header = decode(bytes.fromhex(view["header"]), Header)
    verify_tx_inclusion(
        header,
        decode(bytes.fromhex(view["tx"]), SignedTx),
        decode(bytes.fromhex(view["receipt"]), Receipt),
        view["index"],
        decode(bytes.fromhex(view["proof"]), TxInclusionProof),
    )
    certificate = decode(bytes.fromhex(view["certificate"]), CommitCertificate)
    check_certificate(certificate, header, make_genesis().members, verify)
    barred = client.double_spend_proofs(pub(ALICE))
    assert barred["barred"] is True
    (proof,) = [decode(bytes.fromhex(p), DoubleSpendProof) for p in barred["proofs"]]
    verify_double_spend_proof(proof)
    assert (proof.coin_id, proof.first, proof.second) == (cid, first, second)
    assert client.double_spend_proofs(pub(BOB).hex())["barred"] is False
    with pytest.raises(NodeRejection) as missing:
        client.inclusion(bytes(32))
    assert missing.value.code == "not_found"
    with pytest.raises(ValueError, match="64 hex digits"):
        client.double_spend_proofs(b"short")


def test_async_client_fetches_inclusion_and_proofs(node: Node, api: TestClient) -> None:
    first, _, _ = _offline_double_spend(NodeClient(URL, client=api))
    app = create_app(node, verify_threads=2)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with AsyncNodeClient(URL, transport=httpx.ASGITransport(app=app)) as client:
            return await client.inclusion(tx_id(first.body)), await client.double_spend_proofs(
                pub(ALICE)
            )

    inclusion, barred = asyncio.run(scenario())
    assert inclusion["tx"] == encode(first).hex()
    assert barred["barred"] is True
    assert len(barred["proofs"]) == 1


def _mock(handler: httpx.MockTransport) -> NodeClient:
    return NodeClient("http://node.test:7545", transport=handler)


def test_connection_failures_raise_node_unreachable_naming_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    def stall(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with _mock(httpx.MockTransport(refuse)) as client, pytest.raises(NodeUnreachable) as refused:
        client.status()
    assert refused.value.url == "http://node.test:7545"
    assert "cannot reach the node at http://node.test:7545" in str(refused.value)
    with _mock(httpx.MockTransport(stall)) as client, pytest.raises(NodeUnreachable) as late:
        client.submit(b"\x00")
    assert "no answer within 30 s" in str(late.value)


def test_answers_outside_the_api_raise_node_response_error() -> None:
    def crash(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"code": "internal", "message": "internal error"})

    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, text="<html>forbidden</html>")

    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html></html>")

    for handler, status in ((crash, 500), (proxy, 403), (html, 200)):
        with _mock(httpx.MockTransport(handler)) as client, pytest.raises(NodeResponseError) as bad:
            client.status()
        assert bad.value.status == status


def test_events_parse_server_sent_events_and_skip_keepalives() -> None:
    block = {"type": "block", "height": 2, "receipts": [{"txid": "ab", "code": "ok"}]}
    body = (
        'event: hello\ndata: {"height": 1}\n\n'
        ": keepalive\n\n"
        f"event: block\ndata: {json.dumps(block)}\n\n"
        "event: note\ndata: two\ndata: lines\n\n"
    )

    def stream(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/events"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    with _mock(httpx.MockTransport(stream)) as client:
        events = list(client.events())
    assert events == [
        {"height": 1, "type": "hello"},
        block,
        {"data": "two\nlines", "type": "note"},
    ]


def test_async_events_parse_the_same_stream() -> None:
    body = 'event: hello\ndata: {"height": 0}\n\n'

    def stream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=body)

    async def collect() -> list[dict[str, Any]]:
        transport = httpx.MockTransport(stream)
        async with AsyncNodeClient("http://node.test", transport=transport) as client:
            return [event async for event in client.events()]

    assert asyncio.run(collect()) == [{"height": 0, "type": "hello"}]
