"""Shared pieces of the operator tests: a node and an issuer per module, operators per test.

Each test module gets one ledger node and one issuer (SQLite); each test starts its own
operator process over a fresh database of the kind `db_url` gives, registered at the issuer
with fresh keys, so that tests never see each other's floats or customers. Customer keys
derive from labels that include the test's name, so that balances at them start at zero.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tally.client.builders import make_transfer
from tally.client.node_client import NodeClient
from tally.client.wire import coins_from_json
from tally.crypto.schnorr import PrivateKey
from tally.model.address import address_of
from tally.model.lock import KeyLock
from tally.model.tx import SignedTx
from tally.model.types import MAX_AMOUNT, PublicKey
from tally.node.keyfile import read_key
from tally.services.common.auth import sign_headers
from tally.services.issuer.client import IssuerClient
from tally.services.operator.client import OperatorClient
from tally.services.operator.config import (
    FloatPolicy,
    OperatorIdentity,
    TierLimits,
    init_operator_dir,
)
from tally.wallet.selection import select_coins
from tests.node.harness import ServiceProcess, free_port
from tests.rules.helpers import CHAIN_ID, HRP

T = TypeVar("T")

OPERATOR_MODULE = "tally.services.operator"
ISSUER_MODULE = "tally.services.issuer"
ASSET = "CNY"
STILL = FloatPolicy(low=0, target=0, high=MAX_AMOUNT)
"""A float policy under which the operator never rebalances by itself."""


def wallet_key(label: str) -> PrivateKey:
    """A fixed key for a test wallet, from its label (distinct from every other test key)."""
    return PrivateKey.from_bytes(hashlib.sha256(f"tally-test/operator/{label}".encode()).digest())


def wait_until(predicate: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not hold within {timeout} s")
        time.sleep(0.05)


@dataclass
class NodeView:
    """What the tests read of the ledger, through the node's API."""

    node: ServiceProcess

    def node_client(self) -> NodeClient:
        return NodeClient(self.node.url)

    def coins(self, key: bytes) -> list[Any]:
        """Unspent CNY coins under `KeyLock(key)`."""
        address = address_of(KeyLock(key=PublicKey(bytes(key))), HRP)
        with self.node_client() as node:
            coins = coins_from_json(node.address_coins(address))
        return [(cid, coin) for cid, coin in coins if coin.asset == ASSET]

    def balance(self, key: bytes) -> int:
        """CNY on the ledger under `KeyLock(key)`."""
        return sum(coin.amount for _, coin in self.coins(key))

    def supply(self) -> int:
        """The outstanding CNY supply."""
        with self.node_client() as node:
            return int(node.supply()["assets"].get(ASSET, {}).get("outstanding", "0"))

    def height(self) -> int:
        with self.node_client() as node:
            return int(node.status()["height"])


@dataclass
class Network(NodeView):
    """A node and an issuer on loopback."""

    issuer: ServiceProcess
    issuer_token: str
    root: Path

    def issuer_admin(self) -> IssuerClient:
        return IssuerClient(self.issuer.url, admin_token=self.issuer_token)


@dataclass
class Operator:
    """A running operator process and what a test needs to drive it."""

    process: ServiceProcess
    directory: Path
    identity: OperatorIdentity
    issuer_id: int
    network: Network

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def float_key(self) -> PublicKey:
        return self.identity.float_key

    def admin(self) -> OperatorClient:
        return OperatorClient(self.url, admin_token=self.identity.admin_token)

    def client(self, *, key: PrivateKey | None = None, token: str | None = None) -> OperatorClient:
        return OperatorClient(self.url, key=key, token=token)

    def identity_key(self) -> PrivateKey:
        return read_key(self.directory / "keys" / "identity.key")

    def fund(self, amount: int) -> None:
        """Issue `amount` to the float, asking the issuer as the operator would."""
        with IssuerClient(self.network.issuer.url, key=self.identity_key()) as issuer:
            issuance = issuer.request_issuance(amount, f"test-fund-{uuid.uuid4().hex}")
        assert issuance.status == "committed", issuance

    def float_total(self) -> int:
        return self.network.balance(self.float_key)

    def raw(self) -> httpx.Client:
        """A bare HTTP client, for requests the typed client will not make."""
        return httpx.Client(base_url=self.url, timeout=30.0)

    def stop(self) -> None:
        assert self.process.stop() == 0, self.process.logs[-1].read_text()


def start_operator(
    network: Network,
    directory: Path,
    db_url: str,
    *,
    name: str = "operator",
    policy: FloatPolicy = STILL,
    tiers: Mapping[int, TierLimits] | None = None,
    reserve: int = 10**12,
    fund: int = 0,
) -> Operator:
    """Make, register, start (and fund) an operator over the database `db_url`."""
    port = free_port()
    identity = init_operator_dir(
        directory,
        name=name,
        asset=ASSET,
        node_url=network.node.url,
        issuer_url=network.issuer.url,
        port=port,
        database=db_url,
        tiers=tiers,
        float_policy=policy,
    )
    with network.issuer_admin() as admin:
        account = admin.register_operator(
            f"{name}-{uuid.uuid4().hex[:8]}", identity.identity_key, identity.float_key
        )
        if reserve:
            admin.fund_reserve(account.id, reserve, f"reserve-{uuid.uuid4().hex}")
    process = ServiceProcess(directory, port, module=OPERATOR_MODULE, health_path="/v1/health")
    process.start()
    operator = Operator(process, directory, identity, account.id, network)
    if fund:
        operator.fund(fund)
    return operator


def unload_tx(
    network: NodeView,
    key: PrivateKey,
    float_key: bytes,
    amount: int,
    *,
    asset: str = ASSET,
    pay_to: bytes | None = None,
) -> SignedTx:
    """A transfer of `amount` from the coins at `key` to `float_key` (or `pay_to`), change
    back to `key`."""
    coins = network.coins(key.public_key) if asset == ASSET else _coins_of(network, key, asset)
    selection = select_coins(coins, asset, amount)
    outputs: list[tuple[bytes, str, int]] = [(pay_to or float_key, asset, amount)]
    if selection.change:
        outputs.append((key.public_key, asset, selection.change))
    return make_transfer(
        [(cid, key) for cid, _ in selection.inputs],
        outputs,
        network.height() + 100,
        CHAIN_ID,
    )


def _coins_of(network: NodeView, key: PrivateKey, asset: str) -> list[Any]:
    address = address_of(KeyLock(key=PublicKey(key.public_key)), HRP)
    with network.node_client() as node:
        coins = coins_from_json(node.address_coins(address))
    return [(cid, coin) for cid, coin in coins if coin.asset == asset]


def signed(
    key: PrivateKey, method: str, path: str, body: Any = None, **overrides: str
) -> tuple[bytes, dict[str, str]]:
    """A JSON body and the headers signing it (with any header replaced by `overrides`)."""
    if body is None:
        content = b""
    elif isinstance(body, bytes):
        content = body
    else:
        content = json.dumps(body).encode()
    headers = {"content-type": "application/json", **sign_headers(key, method, path, content)}
    headers.update(overrides)
    return content, headers
