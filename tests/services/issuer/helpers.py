"""Shared pieces of the issuer tests: a node and an issuer process per module, operators.

Per database kind there is one node (a fresh ledger) and one issuer over a fresh database,
shared by the issuer tests, because the audit compares the ledger's whole supply of the
asset with this one issuer's books: two issuers' books on one ledger could not balance.
Each test registers its own operators, so it starts from its own empty accounts, and the
audit balances after every step of every test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from tally.client.builders import make_redeem, make_transfer
from tally.crypto.schnorr import PrivateKey
from tally.model.tx import SignedTx
from tally.services.issuer.client import Audit, IssuerClient, OperatorAccount
from tests.node.harness import ServiceProcess
from tests.rules.helpers import CHAIN_ID
from tests.services.harness import ASSET, Ledger, label_key, raw_client


@dataclass
class Operator:
    """A registered test operator: its signing key, float key and id at the issuer."""

    id: int
    name: str
    key: PrivateKey
    float_key: PrivateKey


@dataclass
class IssuerEnv(Ledger):
    """A node and an issuer on loopback, and how to reach them."""

    kind: str
    """`sqlite` or `postgresql`."""
    issuer: ServiceProcess
    directory: Path
    admin_token: str

    @property
    def url(self) -> str:
        return self.issuer.url

    def admin(self) -> IssuerClient:
        return IssuerClient(self.url, admin_token=self.admin_token)

    def client(self, key: PrivateKey | None = None) -> IssuerClient:
        return IssuerClient(self.url, key=key)

    def register(self, label: str, reserve: int = 0) -> Operator:
        """Register an operator with fresh keys (and fund its reserve when asked)."""
        key, float_key = label_key(f"{label}/sign"), label_key(f"{label}/float")
        with self.admin() as admin:
            account = admin.register_operator(label, key.public_key, float_key.public_key)
            if reserve:
                admin.fund_reserve(account.id, reserve, f"{label}-initial")
        return Operator(account.id, label, key, float_key)

    def account(self, operator: Operator) -> OperatorAccount:
        with self.client(operator.key) as client:
            return client.account()

    def audit(self) -> Audit:
        with self.client() as client:
            return client.audit()

    def float_balance(self, operator: Operator) -> int:
        """The operator's float on the ledger: CNY at its float key."""
        return self.balance(operator.float_key.public_key)

    def raw(self) -> httpx.Client:
        """A bare HTTP client of the issuer, for requests the typed client will not make."""
        return raw_client(self.url)


def assert_balanced(env: IssuerEnv) -> Audit:
    """The audit, after checking that the ledger's supply equals the frozen reserves."""
    audit = env.audit()
    assert audit.balanced, audit
    assert audit.ledger.outstanding == audit.reserves.frozen == env.supply()
    assert audit.reserves.pending == 0
    assert audit.reserves.issued - audit.reserves.redeemed == audit.reserves.frozen
    return audit


def _commit(env: IssuerEnv, tx: SignedTx) -> str:
    """Submit a transaction, check that the ledger committed it; its txid."""
    with env.node_client() as node:
        result = node.submit(tx, wait=True)
    assert result["status"] == "committed", result
    return str(result["txid"])


def split_coin(env: IssuerEnv, operator: Operator, coin_id: str, parts: list[int]) -> list[str]:
    """Split a float coin into coins of `parts` at the float key; their ids."""
    float_pub = operator.float_key.public_key
    tx = make_transfer(
        [(bytes.fromhex(coin_id), operator.float_key)],
        [(float_pub, ASSET, amount) for amount in parts],
        env.height() + 50,
        CHAIN_ID,
    )
    txid = _commit(env, tx)
    with env.node_client() as node:
        view = node.tx(txid)
    return [output["coin_id"] for output in view["tx"]["outputs"]]


def redeem_on_ledger(
    env: IssuerEnv, operator: Operator, coin_ids: list[str], account: bytes | None = None
) -> str:
    """Submit a committed `Redeem` of float coins crediting the operator's account; its txid."""
    tx = make_redeem(
        ASSET,
        [(bytes.fromhex(cid), operator.float_key) for cid in coin_ids],
        operator.key.public_key if account is None else account,
        env.height() + 50,
        CHAIN_ID,
    )
    return _commit(env, tx)


def comparable(audit: Audit) -> Audit:
    """The audit without its clock and the follower's progress, for before/after comparisons."""
    return replace(audit, time_ms=0, follower_height=0)


@contextmanager
def stopped(process: ServiceProcess) -> Iterator[None]:
    """Stop a process for the block, start it again after."""
    process.stop()
    try:
        yield
    finally:
        process.start()
