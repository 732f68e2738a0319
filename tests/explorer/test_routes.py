"""The explorer's pages in-process: each renders real data; bad keys get the 404 page."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from tally.explorer import mount_explorer
from tally.explorer.pages import Page
from tally.node.api import create_app
from tests.explorer.conftest import Chain, build_chain

UNKNOWN_ID = "ab" * 32

MALFORMED_KEYS = [
    "zz",
    "-1",
    "1e5",
    "0x10",
    "ab" * 31,
    "ab" * 33,
    "g" * 64,
    "%00",
    "%FF%FE",
    "ñandú",
    "..%2F..%2Fetc%2Fpasswd",
    "<script>alert(1)</script>",
    "9" * 40,
    "x" * 3000,
]


def _assert_not_found(response) -> None:
    assert response.status_code == 404, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")
    assert "Not found" in response.text
    assert "<script>alert(1)</script>" not in response.text


def test_dashboard_shows_height_supply_consensus_and_health(web: TestClient, chain: Chain) -> None:
    response = web.get("/explorer/")
    assert response.status_code == 200
    text = response.text
    assert f'data-height="{chain.tip}"' in text
    assert "solo" in text
    assert "member-0" in text
    assert "healthy" in text
    assert "CNY" in text
    assert "USD" in text
    # 1,050.00 CNY issued, 50.00 redeemed; 2,500.75 USD issued.
    assert "1,000.00" in text
    assert "1,050.00" in text
    assert "50.00" in text
    assert "2,500.75" in text
    assert web.get("/explorer").status_code == 200


def test_dashboard_fragment_is_the_live_part_alone(web: TestClient, chain: Chain) -> None:
    response = web.get("/explorer/fragments/dashboard")
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="dashboard-live"')
    assert "<html" not in response.text


def test_blocks_list_shows_every_block_newest_first(web: TestClient, chain: Chain) -> None:
    text = web.get("/explorer/blocks").text
    positions = [text.index(f'<tr data-height="{h}"') for h in range(chain.tip, 0, -1)]
    assert positions == sorted(positions)
    assert 'hx-trigger="tally:block from:body"' in text
    older = web.get("/explorer/blocks?start=2").text
    assert '<tr data-height="2"' in older
    assert f'<tr data-height="{chain.tip}"' not in older
    assert "tally:block" not in older  # an older page does not jump to the tip
    fragment = web.get("/explorer/fragments/blocks").text
    assert fragment.lstrip().startswith('<div id="blocks-live"')


def test_block_page_shows_header_certificate_and_receipts(web: TestClient, chain: Chain) -> None:
    text = web.get("/explorer/block/3").text
    assert "Block <span" in text
    assert "member-0" in text  # the certificate's signer, by name
    assert chain.rejected_tx in text
    assert chain.redeem_tx in text
    assert "input.spent" in text  # the double spend's receipt
    assert "1 accepted, 1 rejected" in text
    by_hash = web.get(f"/explorer/block/{chain.transfer_block_hash}")
    assert by_hash.status_code == 200
    assert chain.transfer_tx in by_hash.text
    upper = web.get(f"/explorer/block/{chain.transfer_block_hash.upper()}")
    assert upper.status_code == 200


def test_empty_block_says_so(web: TestClient, chain: Chain) -> None:
    text = web.get(f"/explorer/block/{chain.tip}").text
    assert "orders no transactions" in text


def test_transfer_page_draws_the_money_flow(web: TestClient, chain: Chain) -> None:
    text = web.get(f"/explorer/tx/{chain.transfer_tx}").text
    assert 'id="tx-status">committed' in text
    assert 'id="money-flow"' in text
    for amount in ("1,000.00", "300.00", "500.00", "150.00", "50.00"):
        assert amount in text
    assert "multisig 2 of 3" in text
    assert "escrow until height 400" in text
    assert f"/explorer/coin/{chain.alice_coin}" in text
    assert f"/explorer/coin/{chain.bob_coin}?tx={chain.transfer_tx}&amp;out=0" in text
    assert f"/explorer/address/{chain.bob}" in text
    assert "spent here" in text


def test_rejected_transaction_shows_its_rule_and_creates_nothing(
    web: TestClient, chain: Chain
) -> None:
    text = web.get(f"/explorer/tx/{chain.rejected_tx}").text
    assert 'id="tx-status">rejected' in text
    assert "input.spent" in text
    assert "not created (rejected)" in text


def test_issue_redeem_and_govern_pages(web: TestClient, chain: Chain) -> None:
    issue = web.get(f"/explorer/tx/{chain.issue_tx}").text
    assert "New money" in issue
    assert "issuer" in issue
    redeem = web.get(f"/explorer/tx/{chain.redeem_tx}").text
    assert "Back to the issuer" in redeem
    assert "reserve account" in redeem
    govern = web.get(f"/explorer/tx/{chain.govern_tx}").text
    assert "Governance action" in govern
    assert "register asset" in govern
    assert "EUR" in govern


def test_coin_pages_show_creator_and_spender(web: TestClient, chain: Chain) -> None:
    spent = web.get(f"/explorer/coin/{chain.alice_coin}").text
    assert 'id="coin-status">spent' in spent
    assert f"/explorer/tx/{chain.issue_tx}" in spent  # created by
    assert f"/explorer/tx/{chain.transfer_tx}" in spent  # spent by
    escrow = web.get(f"/explorer/coin/{chain.escrow_coin}").text
    assert 'id="coin-status">unspent' in escrow
    assert "Payer" in escrow
    assert "Payee" in escrow
    assert "until height 400" in escrow
    multisig = web.get(f"/explorer/coin/{chain.multisig_coin}").text
    assert "2 of 3" in multisig
    assert "Key 2" in multisig
    redeemed = web.get(f"/explorer/coin/{chain.redeemed_coin}").text
    assert f"/explorer/tx/{chain.redeem_tx}" in redeemed


def test_coin_creator_and_address_history_come_from_the_store_without_the_index(
    chain: Chain,
) -> None:
    # The node's store keeps every coin's origin and every address's history, so a local
    # explorer shows them for coins and addresses of any age, with its index turned off.
    app = FastAPI()
    from tally.explorer.app import mount_source
    from tally.explorer.source import LocalSource

    mount_source(app, LocalSource(chain.node), index=False)
    with TestClient(app) as client:
        plain = client.get(f"/explorer/coin/{chain.bob_coin}").text
        assert f"/explorer/tx/{chain.transfer_tx}" in plain
        assert "older than the explorer" not in plain
        forged = client.get(f"/explorer/coin/{chain.bob_coin}?tx={chain.issue_tx}&out=0").text
        assert f"/explorer/tx/{chain.transfer_tx}" in forged
        assert f"/explorer/tx/{chain.issue_tx}" not in forged
        assert client.get(f"/explorer/coin/{chain.bob_coin}?tx=zz&out=-4").status_code == 200
        bob = client.get(f"/explorer/address/{chain.bob}").text
        assert chain.transfer_tx in bob
        assert chain.redeem_tx in bob


def test_address_page_shows_balance_coins_and_activity(web: TestClient, chain: Chain) -> None:
    text = web.get(f"/explorer/address/{chain.bob}").text
    assert "Balance CNY" in text
    assert "300.00" in text
    assert chain.bob_coin in text
    assert chain.transfer_tx in text  # received in the transfer
    assert chain.redeem_tx in text  # spent by the redemption
    carol = web.get(f"/explorer/address/{chain.carol}").text
    assert "Balance USD" in carol
    assert "2,500.75" in carol


def test_address_without_coins_still_has_a_page(web: TestClient) -> None:
    from tally.model import address_of
    from tests.rules.helpers import HRP, MALLORY, key_lock

    text = web.get(f"/explorer/address/{address_of(key_lock(MALLORY), HRP)}").text
    assert "No unspent coins" in text


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("height", "/explorer/block/2"),
        ("block hash", "/explorer/block/2"),
        ("txid", "/explorer/tx/{transfer_tx}"),
        ("coin id", "/explorer/coin/{bob_coin}"),
        ("address", "/explorer/address/{bob}"),
        ("txid upper case", "/explorer/tx/{transfer_tx}"),
        ("padded", "/explorer/tx/{transfer_tx}"),
    ],
)
def test_search_sends_each_kind_of_key_to_its_page(
    web: TestClient, chain: Chain, kind: str, expected: str
) -> None:
    query = {
        "height": "2",
        "block hash": chain.transfer_block_hash,
        "txid": chain.transfer_tx,
        "coin id": chain.bob_coin,
        "address": chain.bob,
        "txid upper case": chain.transfer_tx.upper(),
        "padded": f"  {chain.transfer_tx}\n",
    }[kind]
    response = web.get("/explorer/search", params={"q": query}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == expected.format(**vars(chain))
    assert web.get(response.headers["location"]).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   ",
        "hello",
        "0",
        "999999",
        UNKNOWN_ID,
        "tly1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        "' OR 1=1 --",
        "<script>alert(1)</script>",
        "x" * 5000,
    ],
)
def test_search_for_garbage_gets_the_not_found_page(web: TestClient, query: str) -> None:
    _assert_not_found(web.get("/explorer/search", params={"q": query}))


@pytest.mark.parametrize("route", ["block", "tx", "coin", "address"])
@pytest.mark.parametrize("key", [*MALFORMED_KEYS, UNKNOWN_ID, "0", "99999"])
def test_every_route_answers_bad_keys_with_404_and_the_node_keeps_serving(
    web: TestClient, route: str, key: str
) -> None:
    _assert_not_found(web.get(f"/explorer/{route}/{key}"))
    assert web.get("/v1/status").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/explorer/blocks?start=abc",
        "/explorer/blocks?start=-5",
        "/explorer/nothing-here",
        "/explorer/tx/",
        "/explorer/tx/a/b",
        "/explorer/block/",
        "/explorer/fragments/unknown",
    ],
)
def test_unknown_pages_and_bad_parameters_get_404(web: TestClient, path: str) -> None:
    _assert_not_found(web.get(path))


def test_bad_page_number_falls_back_to_the_first_page(web: TestClient) -> None:
    assert web.get("/explorer/block/3?page=abc").status_code == 200
    assert web.get("/explorer/block/3?page=999999").status_code == 200
    assert web.get("/explorer/blocks?start=999999").status_code == 200


def test_pending_transaction_is_shown_as_pending() -> None:
    fresh = build_chain()
    from tally.model import coin_id, tx_id
    from tests.rules.helpers import BOB, coin, make_transfer, owner

    change = coin_id(bytes.fromhex(fresh.transfer_tx), 1)
    pay = make_transfer([(change, owner(30))], [coin("CNY", 50_000, BOB)])
    fresh.node.admit_tx(pay, tx_id(pay.body))  # no orderer runs: it stays pending
    app = create_app(fresh.node, verify_threads=1)
    mount_explorer(app, fresh.node)
    with TestClient(app) as client:
        text = client.get(f"/explorer/tx/{tx_id(pay.body).hex()}").text
        assert 'id="tx-status">pending' in text
        assert "waiting in the mempool" in text
        search = client.get(
            "/explorer/search", params={"q": tx_id(pay.body).hex()}, follow_redirects=False
        )
        assert search.status_code == 303


def test_static_files_are_served_from_the_package(web: TestClient) -> None:
    htmx = web.get("/explorer/static/htmx.min.js")
    assert htmx.status_code == 200
    assert htmx.text.startswith("/*! htmx.org 2.0.11")
    assert web.get("/explorer/static/explorer.css").status_code == 200
    assert web.get("/explorer/static/explorer.js").status_code == 200
    assert web.get("/explorer/static/missing.js").status_code == 404


def test_a_fault_in_a_page_is_a_bare_500_and_the_node_keeps_serving(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(chain.node, verify_threads=1)
    mount_explorer(app, chain.node)

    def broken(*_: object) -> Page:
        raise RuntimeError("secret detail")

    monkeypatch.setattr("tally.explorer.app.tx_page", broken)
    with TestClient(app) as client:
        response = client.get(f"/explorer/tx/{chain.transfer_tx}")
        assert response.status_code == 500
        assert "secret detail" not in response.text
        assert "internal error" in response.text
        assert client.get("/v1/status").status_code == 200
        assert client.get("/explorer/").status_code == 200


def test_openapi_schema_does_not_list_explorer_pages(web: TestClient) -> None:
    paths = web.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/explorer")]


def test_offline_coins_show_their_owner_and_unlock_height_and_double_spends_their_code() -> None:
    from tally.explorer.bench import append_block
    from tally.model import coin_id, tx_id
    from tests.rules.helpers import (
        ALICE,
        BOB,
        CAROL,
        MEMBER,
        coin,
        key,
        make_transfer,
        offline_lock,
        owner,
        pub,
    )

    fresh = build_chain()
    change = coin_id(bytes.fromhex(fresh.transfer_tx), 1)
    purse = make_transfer([(change, owner(ALICE))], [coin("CNY", 50_000, offline_lock(ALICE, 900))])
    append_block(fresh.node.store, [purse], key=key(MEMBER))
    purse_coin = coin_id(tx_id(purse.body), 0)
    hops = [
        make_transfer([(purse_coin, owner(ALICE))], [coin("CNY", 50_000, offline_lock(to, 900))])
        for to in (BOB, CAROL)
    ]
    append_block(fresh.node.store, hops, key=key(MEMBER))
    app = create_app(fresh.node, verify_threads=1)
    mount_explorer(app, fresh.node)
    with TestClient(app) as client:
        page = client.get(f"/explorer/coin/{purse_coin.hex()}").text
        assert "offline until height 900" in page
        assert "lock-offline" in page
        assert pub(ALICE).hex() in page
        assert 'id="offline-unlock"' in page
        assert f"/explorer/tx/{tx_id(hops[0].body).hex()}" in page  # spent by the first hop
        second = client.get(f"/explorer/tx/{tx_id(hops[1].body).hex()}").text
        assert "offline.double_spend" in second
