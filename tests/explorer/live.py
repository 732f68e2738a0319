"""A live node with the explorer mounted, served by uvicorn on 127.0.0.1, for browser tests.

The node runs in this process over the in-memory store with its solo orderer, so that
transfers submitted through its HTTP API are committed in real blocks and announced to
the explorer's event stream exactly as in a node process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from tally.consensus.solo import SoloOrderer
from tally.explorer import mount_explorer
from tally.model import SignedTx, address_of, coin_id, encode, tx_id
from tally.node.api import create_app
from tally.node.core import Node
from tally.store.ledger import LedgerStore
from tally.store.memory import MemoryStore
from tests.node.harness import free_port
from tests.rules.helpers import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    HRP,
    MEMBER,
    coin,
    escrow_lock,
    key,
    key_lock,
    make_genesis,
    make_issue,
    make_transfer,
    multi_lock,
    owner,
)

__all__ = ["LiveServer", "start_live_server"]


@dataclass
class LiveServer:
    """A running node with the explorer, and what the tests committed on it."""

    node: Node
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    orderer: SoloOrderer[Any]
    http: httpx.Client
    ids: dict[str, str] = field(default_factory=dict)
    spendable: list[tuple[bytes, int, int]] = field(default_factory=list)
    """Unspent `(coin id, amount, owner key index)` the tests may spend."""

    def submit(self, tx: SignedTx) -> dict[str, Any]:
        """Submit through the node's API and wait for the commit."""
        response = self.http.post(
            "/v1/txs?wait=commit",
            content=encode(tx),
            headers={"content-type": "application/octet-stream"},
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        assert result["status"] == "committed", result
        return result

    def pay(self, amount: int = 100) -> dict[str, Any]:
        """Pay `amount` from a spendable coin to Carol, keeping the change spendable."""
        cid, value, holder = self.spendable.pop(0)
        tx = make_transfer(
            [(cid, owner(holder))],
            [coin("CNY", amount, CAROL), coin("CNY", value - amount, holder)],
        )
        result = self.submit(tx)
        self.spendable.append((coin_id(tx_id(tx.body), 1), value - amount, holder))
        return result

    def stop(self) -> None:
        """Stop serving, then the orderer and the node."""
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.orderer.stop()
        self.node.stop()


def start_live_server() -> LiveServer:
    """Start a node with the explorer and commit a few transactions of each lock kind."""
    node = Node.create(LedgerStore.open(MemoryStore()), make_genesis(), key(MEMBER), "member-0")
    orderer: SoloOrderer[Any] = SoloOrderer(
        node, node.key, 0, max_txs=node.params_max_txs, interval_ms=node.params_interval_ms
    )
    orderer.start()
    app = create_app(node, verify_threads=2)
    mount_explorer(app, node)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, name="explorer-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    live = LiveServer(
        node=node,
        url=url,
        server=server,
        thread=thread,
        orderer=orderer,
        http=httpx.Client(base_url=url, timeout=30),
    )
    issue = make_issue("CNY", [coin("CNY", 1_000_000, ALICE), coin("CNY", 400_000, BOB)])
    live.submit(issue)
    live.submit(make_issue("USD", [coin("USD", 99_999, CAROL)], nonce=7))
    issue_id = tx_id(issue.body)
    transfer = make_transfer(
        [(coin_id(issue_id, 0), owner(ALICE))],
        [
            coin("CNY", 250_000, BOB),
            coin("CNY", 600_000, ALICE),
            coin("CNY", 100_000, multi_lock(2, [ALICE, BOB, CAROL])),
            coin("CNY", 50_000, escrow_lock(ALICE, DAVE, 400)),
        ],
    )
    result = live.submit(transfer)
    transfer_id = tx_id(transfer.body)
    live.ids.update(
        issue_tx=issue_id.hex(),
        transfer_tx=transfer_id.hex(),
        transfer_height=str(result["height"]),
        bob_coin=coin_id(transfer_id, 0).hex(),
        bob=address_of(key_lock(BOB), HRP),
        alice=address_of(key_lock(ALICE), HRP),
    )
    live.spendable.append((coin_id(transfer_id, 1), 600_000, ALICE))
    live.spendable.append((coin_id(issue_id, 1), 400_000, BOB))
    return live
