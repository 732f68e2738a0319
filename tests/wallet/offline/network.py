"""Helpers for offline tests against real node processes: devices, funding, ledger state.

A device is an `OfflineWallet` over a `Wallet` made against a node (scrypt lowered). While a
device is "offline" its wallet is reopened with `CLOSED_URL`-style addresses: a port on
loopback where nothing listens, so any call to a node fails with `NodeUnreachable`.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tally.client import NodeClient, make_issue
from tally.model import Genesis, Params
from tally.node.config import render_config
from tally.wallet.offline.device import OfflineWallet
from tally.wallet.offline.limits import OfflineLimits
from tally.wallet.wallet import Wallet
from tests.node.harness import NodeProcess, ServiceProcess, free_port, make_node_dir
from tests.rules.helpers import CHAIN_ID, CNY_ISSUER, RESERVE_REF, key, make_genesis

PASSWORD = "offline test password"  # noqa: S105 - a test password
FAST_N = 2**10
GENESIS: Genesis = make_genesis(params=Params(block_interval_ms=10))
LIMITS = OfflineLimits(max_payment=100_000, max_unsettled=500_000, max_hops=4, expiry_margin=20)
_nonces = itertools.count(1)


def closed_url() -> str:
    """A loopback URL where no node listens."""
    return f"http://127.0.0.1:{free_port()}"


def start_node(root: Path) -> ServiceProcess:
    """A node for `GENESIS` in `root`, started."""
    root.mkdir(parents=True)
    port = free_port()
    process = NodeProcess(make_node_dir(root, GENESIS, port), port)
    process.start()
    return process


def start_copy(source_root: Path, root: Path) -> ServiceProcess:
    """A node started from a copy of the (stopped) network in `source_root`, on a new port."""
    shutil.copytree(source_root, root)
    node_dir = root / "node0"
    for log in node_dir.glob("*.log"):
        log.unlink()
    port = free_port()
    (node_dir / "node.toml").write_text(
        render_config(GENESIS.members[0].name, "../keys/node0.key", "../genesis.bin", port)
    )
    process = NodeProcess(node_dir, port)
    process.start()
    return process


def create_device(directory: Path, node_url: str, limits: OfflineLimits = LIMITS) -> OfflineWallet:
    """A new wallet in `directory` with its offline side set up for `GENESIS`."""
    wallet = Wallet.create(directory, PASSWORD, node_url, scrypt_n=FAST_N)
    device = OfflineWallet.open(wallet)
    device.setup(GENESIS, limits)
    return device


def open_device(directory: Path, node_url: str) -> OfflineWallet:
    """The device in `directory`, talking to `node_url` (or to nothing, offline)."""
    return OfflineWallet.open(Wallet.open(directory, PASSWORD, node_url=node_url))


def close_device(device: OfflineWallet) -> None:
    """Close the offline store and the wallet."""
    device.close()
    device.wallet.close()


@contextmanager
def devices(*pairs: tuple[Path, str]) -> Iterator[list[OfflineWallet]]:
    """Open several devices, closing them all afterwards."""
    opened = [open_device(directory, url) for directory, url in pairs]
    try:
        yield opened
    finally:
        for device in opened:
            close_device(device)


def fund_own(client: NodeClient, wallet: Wallet, *amounts: int) -> None:
    """Issue CNY coins of `amounts` to fresh keys of `wallet`, then sync it."""
    height = client.status()["height"]
    outputs = [(wallet.new_receive_key().public_key, amount) for amount in amounts]
    tx = make_issue(
        "CNY", key(CNY_ISSUER), outputs, RESERVE_REF, next(_nonces), height + 50, CHAIN_ID
    )
    assert client.submit(tx, wait=True)["status"] == "committed"
    wallet.sync(auto_merge=False)


@dataclass(frozen=True)
class LedgerState:
    """Every unspent coin and the supply, read from the node's blocks."""

    unspent: dict[str, tuple[str, int, Any]]
    """Coin id (hex) to (asset, amount, lock view)."""
    outstanding: dict[str, int]
    """The supply table's outstanding amount per asset."""

    def totals(self) -> dict[str, int]:
        """The sum of the unspent coins per asset."""
        sums: dict[str, int] = {}
        for asset, amount, _ in self.unspent.values():
            sums[asset] = sums.get(asset, 0) + amount
        return sums


def ledger_state(client: NodeClient) -> LedgerState:
    """Walk every block: the coins accepted transactions created and did not spend."""
    unspent: dict[str, tuple[str, int, Any]] = {}
    tip = client.status()["height"]
    for height in range(1, tip + 1):
        for view in client.block(height)["txs"]:
            if not view["receipt"]["accepted"]:
                continue
            for cid in view.get("inputs") or []:
                del unspent[cid]
            for output in view.get("outputs") or []:
                unspent[output["coin_id"]] = (
                    output["asset"],
                    int(output["amount"]),
                    output["lock"],
                )
    outstanding = {
        asset: int(entry["outstanding"]) for asset, entry in client.supply()["assets"].items()
    }
    return LedgerState(unspent=unspent, outstanding=outstanding)
