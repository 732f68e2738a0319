"""Shared pieces of the operator tests: a node and an issuer per module, operators per test.

Each test module gets one ledger node and one issuer (SQLite); each test starts its own
operator process over a fresh database of the kind `db_url` gives, registered at the issuer
with fresh keys, so that tests never see each other's floats or customers. Customer keys
derive from labels that include the test's name, so that balances at them start at zero.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tally.client.builders import make_transfer
from tally.crypto.schnorr import PrivateKey
from tally.model.tx import SignedTx
from tally.model.types import MAX_AMOUNT, PublicKey
from tally.node.keyfile import read_key
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
from tests.rules.helpers import CHAIN_ID
from tests.services.harness import ASSET, OPERATOR_MODULE, Ledger, raw_client

STILL = FloatPolicy(low=0, target=0, high=MAX_AMOUNT)
"""A float policy under which the operator never rebalances by itself."""


@dataclass
class Network(Ledger):
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
        return raw_client(self.url)

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
    ledger: Ledger,
    key: PrivateKey,
    float_key: bytes,
    amount: int,
    *,
    asset: str = ASSET,
    pay_to: bytes | None = None,
) -> SignedTx:
    """A transfer of `amount` from the coins at `key` to `float_key` (or `pay_to`), change
    back to `key`."""
    selection = select_coins(ledger.coins(key.public_key, asset), asset, amount)
    outputs: list[tuple[bytes, str, int]] = [(pay_to or float_key, asset, amount)]
    if selection.change:
        outputs.append((key.public_key, asset, selection.change))
    return make_transfer(
        [(cid, key) for cid, _ in selection.inputs],
        outputs,
        ledger.height() + 100,
        CHAIN_ID,
    )
