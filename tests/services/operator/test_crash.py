"""SIGKILL in the middle of loads and unloads, restart, retry: each happened exactly once."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tally.model.tx import SignedTx
from tally.services.common.client import ServiceCallError
from tests.services.harness import label_key
from tests.services.operator.harness import Network, Operator, start_operator, unload_tx

CUSTOMERS = 3
LOADS = (10_00, 20_00, 30_00, 40_00, 50_00)
PRELOAD = 1_000_00
UNLOAD = 400_00
DEPOSIT = 10_000_00
FUND = 100_000_00


@dataclass
class Request:
    """One load or unload a customer sends, always with the same idempotency key."""

    customer: int
    key: str
    kind: str
    amount: int
    to: bytes | None = None
    tx: SignedTx | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def send(self, operator: Operator, label: str) -> dict[str, Any]:
        with operator.client(key=label_key(f"{label}/c{self.customer}")) as client:
            if self.kind == "load":
                answer = client.load(self.amount, self.key, to=self.to)
            else:
                answer = client.unload(self.key, tx=self.tx)
        self.answers.append(answer)
        return answer


def _burst(operator: Operator, label: str, plan: list[list[Request]]) -> None:
    """Send every customer's requests in its own thread; SIGKILL the operator as soon as a
    movement is journaled and not yet settled (or when all have been answered)."""

    def run(requests: list[Request]) -> None:
        for request in requests:
            try:
                request.send(operator, label)
            except ServiceCallError as exc:
                request.errors.append(f"{exc.status} {exc.code}")
                if exc.status == 0:
                    return  # the operator is down: stop, as a client would

    threads = [threading.Thread(target=run, args=(requests,)) for requests in plan]
    for thread in threads:
        thread.start()
    headers = {"authorization": f"Bearer {operator.identity.admin_token}"}
    with operator.raw() as http:
        while any(thread.is_alive() for thread in threads):
            entries = http.get("/v1/admin/journal", headers=headers).json()["entries"]
            if any(entry["status"] == "pending" for entry in entries):
                break
    operator.process.kill()
    for thread in threads:
        thread.join(timeout=60)


def _recovered(operator: Operator) -> int:
    """How many pending movements the latest start settled, from its log."""
    log = operator.process.logs[-1].read_text()
    match = re.search(r"serving; (\d+) pending movements settled", log)
    assert match is not None, log
    return int(match.group(1))


def _retry_all(operator: Operator, label: str, plan: list[list[Request]]) -> None:
    """Send every request again with its key until it is settled."""
    for requests in plan:
        for request in requests:
            deadline = time.monotonic() + 30
            while request.send(operator, label)["status"] == "pending":
                assert time.monotonic() < deadline, request
                time.sleep(0.1)


def test_sigkill_during_loads_and_unloads_then_retries_move_money_exactly_once(
    network: Network, db_url: str, tmp_path: Path
) -> None:
    label = f"crash-{db_url.split(':')[0]}-{tmp_path.name}"
    operator = start_operator(network, tmp_path / "op", db_url, fund=FUND)
    ids, plan = [], []
    with operator.admin() as admin:
        for i in range(CUSTOMERS):
            row = admin.create_customer(f"C{i}", 3, label_key(f"{label}/c{i}").public_key)
            admin.deposit(row["customer_id"], DEPOSIT, f"dep-{i}")
            ids.append(row["customer_id"])
    for i in range(CUSTOMERS):
        unload_key = label_key(f"{label}/c{i}/u")
        with operator.client(key=label_key(f"{label}/c{i}")) as client:
            client.load(PRELOAD, "preload", to=unload_key.public_key)
        load_to = label_key(f"{label}/c{i}/r").public_key
        loads = [
            Request(i, f"load-{j}", "load", amount, to=load_to) for j, amount in enumerate(LOADS)
        ]
        unload = Request(
            i,
            "unload",
            "unload",
            UNLOAD,
            tx=unload_tx(network, unload_key, operator.float_key, UNLOAD),
        )
        plan.append([*loads[:2], unload, *loads[2:]])
    float_start = operator.float_total()

    # Kill it twice: once in the first burst, once while the retries are under way.
    _burst(operator, label, plan)
    operator.process.start()
    recovered = _recovered(operator)
    _burst(operator, label, plan)
    operator.process.start()
    recovered += _recovered(operator)
    _retry_all(operator, label, plan)
    # The kills landed between journaling and settling: the restarts had work to finish.
    assert recovered >= 1

    loaded = sum(LOADS)
    for i, customer_id in enumerate(ids):
        for request in plan[i]:
            assert request.answers, request
            final = request.answers[-1]
            assert final["status"] == "done", final
            # Every answer that came back names the same movement.
            assert {answer["journal_id"] for answer in request.answers} == {final["journal_id"]}
            assert {answer["txid"] for answer in request.answers} == {final["txid"]}
        assert network.balance(label_key(f"{label}/c{i}/r").public_key) == loaded
        assert network.balance(label_key(f"{label}/c{i}/u").public_key) == PRELOAD - UNLOAD
        with operator.admin() as admin:
            customer = admin.customer(customer_id)
            journal = admin.journal(customer_id)
        assert int(customer["deposit"]) == DEPOSIT - PRELOAD - loaded + UNLOAD
        keys = sorted(entry["idempotency_key"] for entry in journal)
        assert keys == sorted(
            [f"dep-{i}", "preload", "unload"] + [f"load-{j}" for j in range(len(LOADS))]
        )
        assert all(entry["status"] == "done" for entry in journal)
    assert operator.float_total() == float_start - CUSTOMERS * (loaded - UNLOAD)
    with operator.admin() as admin:
        float_view = admin.float_status()
    assert int(float_view["reserved"]) == 0
    assert int(float_view["total"]) == operator.float_total()
    operator.stop()
