"""What the issuer and operator tests share: fixed keys, the ledger seen through the node,
an issuer process, signed raw requests, and waiting for a condition.

The typed clients (`IssuerClient`, `OperatorClient`) never send a malformed request; the
refusal tests build theirs with `signed` and send them with `raw_client`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tally.client.node_client import NodeClient
from tally.client.wire import coins_from_json
from tally.crypto.schnorr import PrivateKey
from tally.model.address import address_of
from tally.model.coin import Coin
from tally.model.lock import KeyLock
from tally.model.types import CoinId, PublicKey
from tally.services.common.auth import sign_headers
from tally.services.issuer.config import init_issuer_dir
from tests.node.harness import ServiceProcess, free_port
from tests.rules.helpers import CNY_ISSUER, HRP, key

__all__ = [
    "ASSET",
    "BAD_AMOUNTS",
    "ISSUER_MODULE",
    "OPERATOR_MODULE",
    "Ledger",
    "label_key",
    "raw_client",
    "signed",
    "start_issuer",
    "wait_until",
]

T = TypeVar("T")

ASSET = "CNY"
"""The asset the test genesis registers `CNY_ISSUER` for."""
ISSUER_MODULE = "tally.services.issuer"
OPERATOR_MODULE = "tally.services.operator"

BAD_AMOUNTS: list[tuple[object, str]] = [
    (-5, "amount.out_of_range"),
    (0, "amount.out_of_range"),
    (2**63, "amount.out_of_range"),
    (10**30, "amount.out_of_range"),
    ("0", "amount.out_of_range"),
    ("99999999999999999999", "amount.out_of_range"),
    ("1" * 5000, "amount.out_of_range"),
    (1.5, "request.invalid"),
    (100.0, "request.invalid"),
    ("12abc", "request.invalid"),
    ("-5", "request.invalid"),
    ("+5", "request.invalid"),
    ("1e3", "request.invalid"),
    (" 5", "request.invalid"),
    ("", "request.invalid"),
    (True, "request.invalid"),
    (None, "request.invalid"),
    ([5], "request.invalid"),
]
"""Amounts every endpoint refuses, with the code: each service takes a JSON integer or a
decimal string of minor units in 1 … 2^63-1, and nothing else."""


def label_key(label: str) -> PrivateKey:
    """A fixed key from a label (distinct from every other test key): the same on every run,
    so that a label naming its test gives keys whose balances start at zero."""
    return PrivateKey.from_bytes(hashlib.sha256(f"tally-test/services/{label}".encode()).digest())


def wait_until(predicate: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy; that value.

    Raises:
        TimeoutError: it did not within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not hold within {timeout} s")
        time.sleep(0.05)


def signed(
    signer: PrivateKey, method: str, path: str, body: Any = None, **overrides: str
) -> tuple[bytes, dict[str, str]]:
    """A JSON body (a document, or raw bytes as they are) and the headers signing it, with
    any header replaced by `overrides`."""
    if body is None:
        content = b""
    elif isinstance(body, bytes):
        content = body
    else:
        content = json.dumps(body).encode()
    headers = {"content-type": "application/json", **sign_headers(signer, method, path, content)}
    headers.update(overrides)
    return content, headers


def raw_client(url: str) -> httpx.Client:
    """A bare HTTP client of a service, for requests the typed clients will not make."""
    return httpx.Client(base_url=url, timeout=30.0)


@dataclass
class Ledger:
    """What the tests read of the ledger, through the node's API."""

    node: ServiceProcess

    def node_client(self) -> NodeClient:
        return NodeClient(self.node.url)

    def coins(self, owner: bytes, asset: str = ASSET) -> list[tuple[CoinId, Coin]]:
        """The unspent coins of `asset` under `KeyLock(owner)`."""
        address = address_of(KeyLock(key=PublicKey(bytes(owner))), HRP)
        with self.node_client() as node:
            coins = coins_from_json(node.address_coins(address))
        return [(cid, coin) for cid, coin in coins if coin.asset == asset]

    def balance(self, owner: bytes) -> int:
        """CNY on the ledger under `KeyLock(owner)`."""
        return sum(coin.amount for _, coin in self.coins(owner))

    def supply(self) -> int:
        """The outstanding CNY supply."""
        with self.node_client() as node:
            return int(node.supply()["assets"].get(ASSET, {}).get("outstanding", "0"))

    def height(self) -> int:
        """The node's tip."""
        with self.node_client() as node:
            return int(node.status()["height"])


def start_issuer(
    directory: Path, node_url: str, database: str | None = None
) -> tuple[ServiceProcess, str]:
    """Make an issuer's directory holding the genesis CNY issuer key, and start it.

    Returns:
        The running process and its admin token.
    """
    port = free_port()
    token = init_issuer_dir(
        directory,
        asset=ASSET,
        issuer_key=key(CNY_ISSUER),
        node_url=node_url,
        port=port,
        database=database,
    )
    issuer = ServiceProcess(directory, port, module=ISSUER_MODULE, health_path="/v1/health")
    issuer.start()
    return issuer, token
