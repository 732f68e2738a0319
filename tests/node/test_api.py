"""The node's HTTP API, in-process: submission, queries, events, metrics."""

from __future__ import annotations

import json
import threading
from typing import Any  # Any: the API's JSON answers

from starlette.testclient import TestClient

from tally.model import address_of, encode, tx_id
from tally.model.params import Params
from tally.node.core import Node
from tests.rules.helpers import (
    ALICE,
    BOB,
    coin,
    key_lock,
    make_issue,
    make_transfer,
    outputs_of,
    owner,
)


def _submit(api: TestClient, raw: bytes, wait: str = "commit") -> Any:
    response = api.post(
        f"/v1/txs?wait={wait}", content=raw, headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code in (200, 202), response.text
    return response.json()


def _fund_alice(api: TestClient, amount: int = 1_000) -> tuple[bytes, bytes]:
    issue = make_issue("CNY", [coin("CNY", amount, ALICE)])
    result = _submit(api, encode(issue))
    assert result["status"] == "committed"
    return tx_id(issue.body), outputs_of(issue)[0]


def test_transfer_commits_and_every_query_shows_it(api: TestClient) -> None:
    _, alice_coin = _fund_alice(api)
    pay = make_transfer(
        [(alice_coin, owner(ALICE))], [coin("CNY", 300, BOB), coin("CNY", 700, ALICE)]
    )
    result = _submit(api, encode(pay))
    assert result["status"] == "committed"
    assert result["receipt"] == {"accepted": True, "code": "ok"}

    shown = api.get(f"/v1/txs/{result['txid']}").json()
    assert shown["status"] == "committed"
    assert shown["tx"]["kind"] == "transfer"
    spent = api.get(f"/v1/coins/{alice_coin.hex()}").json()
    assert spent["status"] == "spent"
    assert spent["spent_by"] == result["txid"]
    bob_address = address_of(key_lock(BOB), "tly")
    bob = api.get(f"/v1/addresses/{bob_address}/coins").json()
    assert bob["balance"] == {"CNY": "300"}
    block = api.get(f"/v1/blocks/{result['height']}").json()
    assert [t["txid"] for t in block["txs"]] == [result["txid"]]
    assert len(block["certificate"]["signatures"]) == 1
    latest = api.get("/v1/blocks/latest").json()
    assert latest["header"]["height"] == result["height"]
    supply = api.get("/v1/supply").json()
    assert supply["assets"]["CNY"] == {"issued": "1000", "redeemed": "0", "outstanding": "1000"}
    status = api.get("/v1/status").json()
    assert status["height"] == result["height"]
    assert status["mempool_size"] == 0
    assert (status["chain_id"], status["hrp"]) == ("tally-test", "tly")
    assert status["max_window"] == Params().max_window


def test_json_submission_is_accepted_like_canonical_bytes(api: TestClient) -> None:
    issue = make_issue("CNY", [coin("CNY", 5, ALICE)], nonce=9)
    response = api.post("/v1/txs?wait=commit", json={"tx": encode(issue).hex()})
    assert response.status_code == 200
    assert response.json()["txid"] == tx_id(issue.body).hex()


def test_submission_without_wait_answers_pending_then_commits(api: TestClient, node: Node) -> None:
    issue = make_issue("CNY", [coin("CNY", 5, ALICE)], nonce=11)
    response = api.post(
        "/v1/txs", content=encode(issue), headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 202
    txid = response.json()["txid"]
    assert txid == tx_id(issue.body).hex()
    future = node.mempool.get(tx_id(issue.body))
    if future is not None:
        future.future.result(timeout=10)
    assert api.get(f"/v1/txs/{txid}").json()["status"] == "committed"


def test_batch_submission_answers_each_transaction(api: TestClient) -> None:
    good = [make_issue("CNY", [coin("CNY", 7, ALICE)], nonce=100 + i) for i in range(5)]
    raws = [encode(tx) for tx in good] + [b"\x00garbage"]
    response = api.post(
        "/v1/txs/batch?wait=commit",
        content=encode(raws),
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r.get("status") for r in results[:5]] == ["committed"] * 5
    assert results[5]["code"].startswith("decode.")


def test_events_stream_reports_committed_blocks(api: TestClient) -> None:
    issue = make_issue("CNY", [coin("CNY", 5, ALICE)], nonce=21)
    seen: list[Any] = []

    def submit_soon() -> None:
        _submit(api, encode(issue))

    submitter = threading.Thread(target=submit_soon, daemon=True)
    with api.stream("GET", "/v1/events") as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: hello"
        submitter.start()
        for line in lines:
            if line.startswith("data: ") and "receipts" in line:
                seen.append(json.loads(line[len("data: ") :]))
                break
        # The submission's own answer may still be on its way through the client: let it
        # finish before the stream and the client close, or it outlives the client's portal.
        submitter.join(timeout=30)
    assert not submitter.is_alive()
    assert seen[0]["receipts"] == [{"txid": tx_id(issue.body).hex(), "code": "ok"}]


def test_metrics_count_commits_and_refusals(api: TestClient) -> None:
    _fund_alice(api)
    api.post("/v1/txs", content=b"\x01", headers={"content-type": "application/octet-stream"})
    text = api.get("/metrics").text
    assert 'tally_txs_committed_total{code="ok"} 1.0' in text
    assert 'tally_txs_refused_total{code="decode.type"} 1.0' in text
    assert "tally_height 1.0" in text


def test_unknown_objects_answer_404_with_a_code(api: TestClient) -> None:
    for path in ("/v1/txs/" + "00" * 32, "/v1/coins/" + "11" * 32, "/v1/blocks/99", "/v1/blocks/0"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_malformed_ids_answer_400(api: TestClient) -> None:
    for path in ("/v1/txs/zz", "/v1/coins/00", "/v1/blocks/-1", "/v1/addresses/nope/coins"):
        response = api.get(path)
        assert response.status_code == 400, path
        assert response.json()["code"] in ("request.invalid", "address.invalid")
