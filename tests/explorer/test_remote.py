"""The stand-alone explorer (`tally explorer --node URL`): the same pages over the node's API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from tally.client import NodeClient
from tally.explorer import create_explorer_app
from tally.explorer.app import mount_source
from tally.explorer.remote import RemoteSource
from tally.node.api import create_app
from tests.explorer.conftest import Chain

URL = "http://testserver"


@pytest.fixture(scope="module")
def remote(chain: Chain) -> Iterator[tuple[TestClient, RemoteSource]]:
    node_api = TestClient(create_app(chain.node, verify_threads=1))
    source = RemoteSource(URL, hrp="tly", client=NodeClient(URL, client=node_api))
    app = FastAPI()
    explorer = mount_source(app, source)
    with node_api, TestClient(app) as client:
        assert explorer.index is not None
        explorer.index.catch_up()
        yield client, source


def test_remote_pages_render_from_the_node_api(
    remote: tuple[TestClient, RemoteSource], chain: Chain
) -> None:
    client, _ = remote
    dashboard = client.get("/explorer/").text
    assert f'data-height="{chain.tip}"' in dashboard
    assert "2,500.75" in dashboard
    assert chain.transfer_tx in client.get("/explorer/block/2").text
    tx = client.get(f"/explorer/tx/{chain.transfer_tx}").text
    assert "multisig 2 of 3" in tx
    assert "1,000.00" in tx
    coin = client.get(f"/explorer/coin/{chain.bob_coin}").text
    assert f"/explorer/tx/{chain.transfer_tx}" in coin  # creator from the explorer's index
    address = client.get(f"/explorer/address/{chain.bob}").text
    assert "300.00" in address
    assert chain.transfer_tx in address


def test_remote_search_finds_blocks_the_explorer_has_seen(
    remote: tuple[TestClient, RemoteSource], chain: Chain
) -> None:
    client, _ = remote
    for query, target in (
        ("2", "/explorer/block/2"),
        (chain.transfer_block_hash, "/explorer/block/2"),
        (chain.transfer_tx, f"/explorer/tx/{chain.transfer_tx}"),
        (chain.bob_coin, f"/explorer/coin/{chain.bob_coin}"),
        (chain.bob, f"/explorer/address/{chain.bob}"),
    ):
        response = client.get("/explorer/search", params={"q": query}, follow_redirects=False)
        assert response.status_code == 303, query
        assert response.headers["location"] == target


@pytest.mark.parametrize("route", ["block", "tx", "coin", "address"])
@pytest.mark.parametrize("key", ["zz", "ab" * 32, "0", "%00"])
def test_remote_bad_keys_get_404(remote: tuple[TestClient, RemoteSource], route, key) -> None:
    client, _ = remote
    assert client.get(f"/explorer/{route}/{key}").status_code == 404


def test_unreachable_node_gets_a_503_page_not_a_crash() -> None:
    app = create_explorer_app("http://127.0.0.1:9", timeout=0.5)
    with TestClient(app) as client:
        response = client.get("/explorer/")
        assert response.status_code == 503
        assert "does not answer" in response.text
        assert client.get("/explorer/search", params={"q": "5"}).status_code == 503
        root = client.get("/", follow_redirects=False)
        assert root.headers["location"] == "/explorer/"


def test_unknown_page_with_the_node_away_is_503_not_500() -> None:
    app = create_explorer_app("http://127.0.0.1:9", timeout=0.5)
    with TestClient(app) as client:
        assert client.get("/explorer/no-such-page").status_code == 503
        assert client.get("/explorer/tx/zz").status_code == 503


def test_remote_coin_creator_without_index_comes_from_a_checked_link(chain: Chain) -> None:
    # The node's API has no origin lookup, so without its index the remote explorer shows
    # a coin's creator only from the link of the creating transaction, and checks it.
    with TestClient(create_app(chain.node, verify_threads=1)) as node_api:
        source = RemoteSource(URL, hrp="tly", client=NodeClient(URL, client=node_api))
        app = FastAPI()
        mount_source(app, source, index=False)
        with TestClient(app) as client:
            plain = client.get(f"/explorer/coin/{chain.bob_coin}").text
            assert "older than the explorer" in plain
            linked = client.get(
                f"/explorer/coin/{chain.bob_coin}?tx={chain.transfer_tx}&out=0"
            ).text
            assert f"/explorer/tx/{chain.transfer_tx}" in linked
            forged = client.get(f"/explorer/coin/{chain.bob_coin}?tx={chain.issue_tx}&out=0").text
            assert f"/explorer/tx/{chain.issue_tx}" not in forged
