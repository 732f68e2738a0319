"""Crash windows, refusals by the ledger and the issuer, in-process over a real node.

The service runs in this process against the module's node, with a fake issuer that issues
with the genesis CNY issuer key, so that each window between journaling, the ledger's commit
and settling can be opened on purpose: the node "goes away" before or after it committed,
the ledger refuses for good, the issuer is down. A second `OperatorService` over the same
directory and database stands for the restarted process.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tally.client.builders import make_issue
from tally.client.errors import NodeRejection, NodeUnreachable
from tally.client.node_client import NodeClient
from tally.model.encoding import encode
from tally.model.tx import SignedTx
from tally.services.issuer.client import Issuance, Redemption
from tally.services.operator.config import FloatPolicy, init_operator_dir, load_config
from tally.services.operator.float import FloatUnavailableError, IssuerCallError
from tally.services.operator.service import OperatorService
from tally.services.operator.store import CustomerRow
from tests.node.harness import ServiceProcess
from tests.rules.helpers import CHAIN_ID, CNY_ISSUER, key
from tests.services.harness import ASSET, Ledger, label_key
from tests.services.operator.harness import STILL, unload_tx

_nonces = itertools.count(time.time_ns())


class FakeIssuer:
    """Issues with the genesis issuer key straight to the node; can be made unreachable."""

    def __init__(self, node_url: str, float_key: bytes) -> None:
        self.node_url = node_url
        self.float_key = float_key
        self.down = False
        self.issued: dict[str, Issuance] = {}
        self.notified: list[str] = []

    def request_issuance(self, amount: int, idempotency_key: str) -> Issuance:
        if self.down:
            raise IssuerCallError("the issuer is down", permanent=False)
        if idempotency_key not in self.issued:
            reserve_ref = hashlib.sha256(idempotency_key.encode()).digest()
            with NodeClient(self.node_url) as node:
                height = int(node.status()["height"])
                tx = make_issue(
                    ASSET,
                    key(CNY_ISSUER),
                    [(self.float_key, amount)],
                    reserve_ref,
                    next(_nonces),
                    height + 100,
                    CHAIN_ID,
                )
                result = node.submit(tx)
            assert result["status"] == "committed", result
            self.issued[idempotency_key] = Issuance(
                id=len(self.issued) + 1,
                operator_id=1,
                idempotency_key=idempotency_key,
                amount=amount,
                float_key=self.float_key.hex(),
                status="committed",
                txid=str(result["txid"]),
                coin_id=None,
                height=int(result["height"]),
                valid_until=height + 100,
                reserve_ref=reserve_ref.hex(),
                certificate=None,
                error_code=None,
                error_message=None,
                created_ms=0,
                updated_ms=0,
            )
        return self.issued[idempotency_key]

    def notify_redemption(self, txid: str) -> Redemption:
        if self.down:
            raise IssuerCallError("the issuer is down", permanent=False)
        self.notified.append(txid)
        return Redemption(txid=txid, operator_id=1, amount=1, height=1, source="api", released_ms=0)


class Env:
    """A service directory over `db_url`, and services over it (one per "process start")."""

    def __init__(self, directory: Path, node: ServiceProcess, db_url: str, policy: FloatPolicy):
        identity = init_operator_dir(
            directory,
            name="inproc",
            asset=ASSET,
            node_url=node.url,
            issuer_url="http://127.0.0.1:9",
            port=1,
            database=db_url,
            float_policy=policy,
        )
        self.config = load_config(directory)
        self.float_key = identity.float_key
        self.issuer = FakeIssuer(node.url, identity.float_key)
        self.node = node
        self.services: list[OperatorService] = []

    def start(self) -> OperatorService:
        service = OperatorService.open(self.config, issuer=self.issuer)
        service.start(background=False)
        self.services.append(service)
        return service

    def restart(self) -> OperatorService:
        self.services[-1].stop()
        return self.start()

    def close(self) -> None:
        for service in self.services:
            service.stop()

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.node)

    def balance(self, public_key: bytes) -> int:
        return self.ledger.balance(public_key)


@pytest.fixture
def env(node_process: ServiceProcess, db_url: str, tmp_path: Path) -> Iterator[Env]:
    made = Env(tmp_path / "op", node_process, db_url, STILL)
    try:
        yield made
    finally:
        made.close()


def _customer(service: OperatorService, label: str, deposit: int = 10_000_00) -> CustomerRow:
    created = service.create_customer(label, 3, label_key(label).public_key.hex())
    service.deposit(created["customer_id"], deposit, f"{label}-deposit")
    return service.customer(created["customer_id"])


def _node_gone_before(service: OperatorService) -> None:
    def submit(tx: SignedTx | bytes, wait: bool = True) -> dict[str, Any]:
        raise NodeUnreachable(service.config.node_url, "connection refused")

    service.node.submit = submit  # type: ignore[method-assign]


def _node_gone_after(service: OperatorService) -> None:
    real = service.node.submit

    def submit(tx: SignedTx | bytes, wait: bool = True) -> dict[str, Any]:
        real(tx, wait=True)
        raise NodeUnreachable(service.config.node_url, "the answer was lost")

    service.node.submit = submit  # type: ignore[method-assign]


@pytest.mark.parametrize("gone", [_node_gone_before, _node_gone_after])
def test_a_load_left_pending_by_a_crash_is_finished_once_on_restart(
    env: Env, tmp_path: Path, gone: Any
) -> None:
    label = f"svc-load-{tmp_path.name}"
    service = env.start()
    env.issuer.request_issuance(10_000_00, f"{label}-fund")
    customer = _customer(service, label)
    to = label_key(f"{label}/r0").public_key
    gone(service)

    answer = service.load(customer, 700_00, "L", to.hex())
    assert answer.status == 202
    assert answer.body["status"] == "pending"
    assert service.customer(customer.id).deposit == 10_000_00 - 700_00
    committed = gone is _node_gone_after
    assert env.balance(to) == (700_00 if committed else 0)

    restarted = env.restart()
    assert restarted.customer(customer.id).deposit == 10_000_00 - 700_00
    assert env.balance(to) == 700_00
    again = restarted.load(customer, 700_00, "L", to.hex())
    assert again.status == 200
    assert again.body["status"] == "done"
    assert (again.body["journal_id"], again.body["txid"]) == (
        answer.body["journal_id"],
        answer.body["txid"],
    )
    assert env.balance(to) == 700_00
    assert restarted.float.view()["reserved"] == "0"
    assert restarted.me(customer)["pending_loads"] == "0"


def test_an_unload_committed_but_not_settled_is_credited_exactly_once(
    env: Env, tmp_path: Path
) -> None:
    label = f"svc-unload-{tmp_path.name}"
    service = env.start()
    env.issuer.request_issuance(10_000_00, f"{label}-fund")
    customer = _customer(service, label, deposit=1_000_00)
    wallet = label_key(f"{label}/r0")
    service.load(customer, 1_000_00, "L", wallet.public_key.hex())
    tx = unload_tx(env.ledger, wallet, env.float_key, 250_00)
    _node_gone_after(service)
    answer = service.unload(customer, "U", _hex(tx), None)
    assert answer.status == 202
    assert service.customer(customer.id).deposit == 0

    restarted = env.restart()
    entry = restarted.store.entry(f"customer:{customer.id}", "U")
    assert entry is not None
    assert entry.status == "done"
    # Settling it again, from many threads and a second recovery, credits nothing more.
    threads = [threading.Thread(target=restarted.settle, args=(entry,)) for _ in range(5)]
    for thread in threads:
        thread.start()
    restarted.recover()
    for thread in threads:
        thread.join()
    assert restarted.customer(customer.id).deposit == 250_00
    again = restarted.unload(customer, "U", _hex(tx), None)
    assert again.body["status"] == "done"
    assert int(again.body["deposit"]) == 250_00
    assert env.balance(wallet.public_key) == 750_00


def test_a_load_the_ledger_refuses_for_good_is_refunded(env: Env, tmp_path: Path) -> None:
    label = f"svc-refused-{tmp_path.name}"
    service = env.start()
    env.issuer.request_issuance(10_000_00, f"{label}-fund")
    customer = _customer(service, label, deposit=500_00)
    to = label_key(f"{label}/r0").public_key

    def submit(tx: SignedTx | bytes, wait: bool = True) -> dict[str, Any]:
        raise NodeRejection("window.expired", "too late", {}, 400)

    service.node.submit = submit  # type: ignore[method-assign]
    answer = service.load(customer, 400_00, "L", to.hex())
    assert answer.status == 422
    assert answer.body["code"] == "operator.tx_refused"
    assert answer.body["detail"]["node_code"] == "window.expired"
    assert service.customer(customer.id).deposit == 500_00
    assert service.float.view()["reserved"] == "0"
    assert env.balance(to) == 0
    # The key keeps its answer; a new key may try again (and now succeeds).
    restarted = env.restart()
    assert restarted.load(customer, 400_00, "L", to.hex()) == answer
    assert restarted.load(customer, 400_00, "L2", to.hex()).body["status"] == "done"
    assert restarted.customer(customer.id).deposit == 100_00


def test_a_short_float_with_the_issuer_down_refuses_and_issues_later(
    env: Env, tmp_path: Path
) -> None:
    label = f"svc-short-{tmp_path.name}"
    service = env.start()
    customer = _customer(service, label, deposit=500_00)
    to = label_key(f"{label}/r0").public_key
    env.issuer.down = True
    with pytest.raises(FloatUnavailableError) as refused:
        service.load(customer, 300_00, "L", to.hex())
    assert refused.value.http_status == 503
    assert service.customer(customer.id).deposit == 500_00
    assert env.balance(to) == 0
    assert service.store.entry(f"customer:{customer.id}", "L") is None
    pending = service.store.pending_entries(["issuance"])
    assert [entry.amount for entry in pending] == [300_00]

    env.issuer.down = False
    assert service.rebalance()["action"] == "none"  # settles the pending issuance first
    assert env.balance(env.float_key) == 300_00
    assert service.load(customer, 300_00, "L", to.hex()).body["status"] == "done"
    assert env.balance(to) == 300_00


def test_a_redemption_the_issuer_did_not_hear_of_is_told_after_restart(
    node_process: ServiceProcess, db_url: str, tmp_path: Path
) -> None:
    env = Env(
        tmp_path / "op", node_process, db_url, FloatPolicy(low=0, target=100_00, high=1_000_00)
    )
    try:
        service = env.start()
        env.issuer.request_issuance(5_000_00, "fund")
        env.issuer.down = True
        result = service.rebalance()
        assert (result["action"], int(result["amount"])) == ("redeem", 4_900_00)
        assert result["status"] == "pending"
        assert env.balance(env.float_key) == 100_00  # redeemed on the ledger already
        [entry] = service.store.pending_entries(["redeem"])
        env.issuer.down = False
        restarted = env.restart()
        settled = restarted.store.entry_by_id(entry.id)
        assert settled is not None
        assert settled.status == "done"
        assert env.issuer.notified == [entry.txid]
        assert restarted.rebalance()["action"] == "none"
    finally:
        env.close()


def _hex(tx: SignedTx) -> str:
    return encode(tx).hex()


def test_a_float_of_many_small_coins_is_merged_before_it_pays(env: Env, tmp_path: Path) -> None:
    label = f"svc-merge-{tmp_path.name}"
    service = env.start()
    with NodeClient(env.node.url) as node:
        for outputs in (64, 6):
            height = int(node.status()["height"])
            tx = make_issue(
                ASSET,
                key(CNY_ISSUER),
                [(env.float_key, 1_00)] * outputs,
                bytes(32),
                next(_nonces),
                height + 100,
                CHAIN_ID,
            )
            assert node.submit(tx)["status"] == "committed"
    assert len(env.ledger.coins(env.float_key)) == 70
    customer = _customer(service, label, deposit=100_00)
    to = label_key(f"{label}/r0").public_key
    answer = service.load(customer, 68_00, "L", to.hex())
    assert answer.body["status"] == "done"
    assert env.balance(to) == 68_00
    assert env.balance(env.float_key) == 2_00
    merges = [e for e in service.store.pending_entries() if e.kind == "merge"]
    assert merges == []
    done = [e.kind for e in service.store.entries(scope="float")]
    assert done == ["merge"]
