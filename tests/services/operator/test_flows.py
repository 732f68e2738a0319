"""Customers, deposits, loads, unloads and hosted payments on real processes, each database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tally.model.encoding import tx_id
from tally.services.common.client import ServiceCallError
from tally.services.operator.config import DEFAULT_TIERS, FloatPolicy, TierLimits
from tests.services.harness import label_key, wait_until
from tests.services.operator.harness import Network, Operator, start_operator, unload_tx

TIERS = {
    1: TierLimits(balance_limit=1_000_00, payment_limit=200_00),
    2: DEFAULT_TIERS[2],
    3: DEFAULT_TIERS[3],
}
"""Tier 1 made small here, to reach its limits with small sums: limits are configuration."""


@pytest.fixture(scope="module")
def operator(
    network: Network, module_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """One operator per database kind, shared by this module's tests (each has its own
    customers and keys)."""
    directory = tmp_path_factory.mktemp("flows") / "op"
    started = start_operator(network, directory, module_db_url, tiers=TIERS, fund=1_000_000_00)
    try:
        yield started
    finally:
        started.stop()


def _label(request: pytest.FixtureRequest) -> str:
    """Names this test's keys: distinct per test and database kind, fixed across runs."""
    return str(request.node.name)


def test_deposit_load_unload_and_hosted_pay_move_money_as_asked(
    network: Network, operator: Operator, request: pytest.FixtureRequest
) -> None:
    label = _label(request)
    alice_id, alice_r0 = label_key(f"{label}/alice"), label_key(f"{label}/alice/r0")
    bob = label_key(f"{label}/bob")
    with operator.admin() as admin:
        alice = admin.create_customer("Alice", 2, alice_id.public_key)
        hank = admin.create_customer("Hank", 1)
        assert set(alice) == {"customer_id", "name", "tier", "wallet_key"}
        assert alice["wallet_key"] == alice_id.public_key.hex()
        assert hank["token"]
        assert hank["hosted_key"]
        assert hank["hosted_address"]

        first = admin.deposit(alice["customer_id"], 600_00, "counter-1")
        again = admin.deposit(alice["customer_id"], 600_00, "counter-1")
        assert first == again
        assert first["deposit"] == "60000"  # amounts travel as decimal strings
        admin.deposit(hank["customer_id"], 300_00, "counter-2")
        listed = {row["customer_id"]: row for row in admin.customers()}
        assert int(listed[alice["customer_id"]]["deposit"]) == 600_00
        assert listed[hank["customer_id"]]["hosted"] is True

    float_before = operator.float_total()
    with operator.client(key=alice_id) as client:
        me = client.me()
        assert (me["tier"], int(me["deposit"]), int(me["balance"])) == (2, 600_00, 0)
        assert me["limits"] == {
            "balance_limit": "10000000",
            "payment_limit": "2000000",
            "offline_payment_limit": "100000",
            "offline_unsettled_limit": "500000",
            "offline_hops": 4,
        }
        assert me["float_key"] == operator.float_key.hex()

        loaded = client.load(500_00, "load-1", to=alice_r0.public_key)
        assert loaded["status"] == "done"
        assert (loaded["amount"], loaded["deposit"]) == ("50000", "10000")
        assert loaded["to"] == alice_r0.public_key.hex()
        assert network.balance(alice_r0.public_key) == 500_00
        assert operator.float_total() == float_before - 500_00
        me = client.me()
        assert (int(me["deposit"]), int(me["balance"])) == (100_00, 500_00)
        assert me["keys"] == [alice_r0.public_key.hex()]

        tx = unload_tx(network, alice_r0, operator.float_key, 100_00)
        unloaded = client.unload("unload-1", tx=tx)
        assert unloaded["status"] == "done"
        assert unloaded["txid"] == tx_id(tx.body).hex()
        assert (int(unloaded["amount"]), int(unloaded["deposit"])) == (100_00, 200_00)
        assert network.balance(alice_r0.public_key) == 400_00
        assert operator.float_total() == float_before - 400_00
        kinds = [(entry["kind"], entry["status"]) for entry in client.history()]
        assert kinds == [("unload", "done"), ("load", "done"), ("deposit", "done")]

    with operator.client(token=hank["token"]) as client:
        hosted = bytes.fromhex(hank["hosted_key"])
        loaded = client.load(250_00, "h-load-1")
        assert loaded["status"] == "done"
        assert loaded["to"] == hank["hosted_key"]
        assert network.balance(hosted) == 250_00
        paid = client.pay(bob.public_key, 120_00, "h-pay-1")
        assert paid["status"] == "done"
        assert paid["to"] == bob.public_key.hex()
        assert network.balance(bob.public_key) == 120_00
        assert network.balance(hosted) == 130_00
        unloaded = client.unload("h-unload-1", amount=30_00)
        assert (unloaded["status"], int(unloaded["deposit"])) == ("done", 80_00)
        assert network.balance(hosted) == 100_00
        me = client.me()
        assert (int(me["deposit"]), int(me["balance"]), me["hosted"]) == (80_00, 100_00, True)

    # Every coin that left the float is at Alice's key, Hank's hosted key or Bob's key.
    total = (
        operator.float_total()
        + network.balance(alice_r0.public_key)
        + network.balance(bytes.fromhex(hank["hosted_key"]))
        + network.balance(bob.public_key)
    )
    assert total == float_before
    with operator.admin() as admin:
        journal = admin.journal(alice["customer_id"]) + admin.journal(hank["customer_id"])
    assert all(entry["status"] == "done" for entry in journal)
    assert len(journal) == 2 + 2 + 3  # two deposits (one repeated), Alice's two, Hank's three


def test_limits_refuse_and_nothing_moves(
    network: Network, operator: Operator, request: pytest.FixtureRequest
) -> None:
    label = _label(request)
    carol_id, carol_r0 = label_key(f"{label}/carol"), label_key(f"{label}/carol/r0")
    payee = label_key(f"{label}/payee")
    with operator.admin() as admin:
        carol = admin.create_customer("Carol", 1, carol_id.public_key)
        hosted = admin.create_customer("Hosted", 1)
        admin.deposit(carol["customer_id"], 5_000_00, "c-1")
        admin.deposit(hosted["customer_id"], 5_000_00, "h-1")
        tier_1 = admin.info()["tiers"]["1"]
        assert (tier_1["balance_limit"], tier_1["payment_limit"]) == ("100000", "20000")

    def snapshot() -> tuple[object, ...]:
        with operator.admin() as admin:
            deposits = tuple(row["deposit"] for row in admin.customers())
            journal = len(admin.journal())
        return (
            deposits,
            journal,
            operator.float_total(),
            network.balance(carol_r0.public_key),
            network.balance(bytes.fromhex(hosted["hosted_key"])),
            network.balance(payee.public_key),
        )

    with operator.client(key=carol_id) as client:
        before = snapshot()
        with pytest.raises(ServiceCallError) as refused:
            client.load(1_000_01, "over-1", to=carol_r0.public_key)
        assert (refused.value.status, refused.value.code) == (422, "limit.exceeded")
        assert int(refused.value.detail["limit"]) == 1_000_00
        assert snapshot() == before

        assert client.load(900_00, "ok-1", to=carol_r0.public_key)["status"] == "done"
        before = snapshot()
        with pytest.raises(ServiceCallError) as refused:
            client.load(100_01, "over-2", to=carol_r0.public_key)
        assert refused.value.code == "limit.exceeded"
        assert int(refused.value.detail["balance"]) == 900_00
        assert snapshot() == before
        # The refused key was not used up: the same key may carry a fitting request.
        assert client.load(100_00, "over-2", to=carol_r0.public_key)["status"] == "done"

    with operator.client(token=hosted["token"]) as client:
        assert client.load(1_000_00, "h-load")["status"] == "done"
        before = snapshot()
        with pytest.raises(ServiceCallError) as refused:
            client.pay(payee.public_key, 200_01, "pay-over")
        assert (refused.value.status, refused.value.code) == (422, "limit.exceeded")
        assert int(refused.value.detail["limit"]) == 200_00
        assert snapshot() == before
        with pytest.raises(ServiceCallError) as refused:
            client.load(1, "h-over")
        assert refused.value.code == "limit.exceeded"
        assert snapshot() == before
        assert client.pay(payee.public_key, 200_00, "pay-ok")["status"] == "done"
        assert network.balance(payee.public_key) == 200_00

    # A deposit that does not cover the load: funds.insufficient, nothing moves.
    with operator.admin() as admin:
        dora_id = label_key(f"{label}/dora")
        dora = admin.create_customer("Dora", 1, dora_id.public_key)
        admin.deposit(dora["customer_id"], 50_00, "d-1")
    with operator.client(key=dora_id) as client:
        before = snapshot()
        with pytest.raises(ServiceCallError) as refused:
            client.load(50_01, "d-load", to=label_key(f"{label}/dora/r0").public_key)
        assert (refused.value.status, refused.value.code) == (422, "funds.insufficient")
        assert snapshot() == before


def test_idempotency_keys_move_money_once(
    network: Network, operator: Operator, request: pytest.FixtureRequest
) -> None:
    label = _label(request)
    erin_id, erin_r0 = label_key(f"{label}/erin"), label_key(f"{label}/erin/r0")
    with operator.admin() as admin:
        erin = admin.create_customer("Erin", 2, erin_id.public_key)
        admin.deposit(erin["customer_id"], 10_000_00, "e-1")
        with pytest.raises(ServiceCallError) as conflict:
            admin.deposit(erin["customer_id"], 1, "e-1")
        assert (conflict.value.status, conflict.value.code) == (409, "idempotency.conflict")

    with operator.client(key=erin_id) as client:
        first = client.load(1_000_00, "L-1", to=erin_r0.public_key)
        second = client.load(1_000_00, "L-1", to=erin_r0.public_key)
        assert first == second
        assert network.balance(erin_r0.public_key) == 1_000_00
        with pytest.raises(ServiceCallError) as conflict:
            client.load(999_00, "L-1", to=erin_r0.public_key)
        assert (conflict.value.status, conflict.value.code) == (409, "idempotency.conflict")

        # Ten threads with one key at once: one load.
        answers: list[dict[str, object]] = []

        def load_once() -> None:
            with operator.client(key=erin_id) as each:
                answers.append(each.load(500_00, "L-burst", to=erin_r0.public_key))

        threads = [threading.Thread(target=load_once) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(answers) == 10
        assert len({str(answer["txid"]) for answer in answers}) == 1
        assert network.balance(erin_r0.public_key) == 1_500_00
        assert int(client.me()["deposit"]) == 8_500_00

        tx = unload_tx(network, erin_r0, operator.float_key, 300_00)
        first = client.unload("U-1", tx=tx)
        assert client.unload("U-1", tx=tx) == first
        assert int(client.me()["deposit"]) == 8_800_00
        other = unload_tx(network, erin_r0, operator.float_key, 10_00)
        with pytest.raises(ServiceCallError) as conflict:
            client.unload("U-1", tx=other)
        assert conflict.value.code == "idempotency.conflict"
        # The same transaction under another key is the same unload: refused, not paid.
        with pytest.raises(ServiceCallError) as conflict:
            client.unload("U-2", tx=tx)
        assert (conflict.value.status, conflict.value.code) == (409, "idempotency.conflict")
        assert int(client.me()["deposit"]) == 8_800_00
        assert network.balance(erin_r0.public_key) == 1_200_00
    with operator.admin() as admin:
        assert len(admin.journal(erin["customer_id"])) == 1 + 2 + 1


def test_float_is_topped_up_and_redeemed_through_the_issuer(
    network: Network, db_url: str, tmp_path: Path
) -> None:
    label = f"float-{db_url.split(':')[0]}-{tmp_path.name}"
    policy = FloatPolicy(low=1_000_00, target=5_000_00, high=10_000_00)
    operator = start_operator(network, tmp_path / "op", db_url, policy=policy)
    try:
        assert operator.float_total() == 0
        with operator.admin() as admin:
            result = admin.rebalance()
            assert (result["action"], int(result["amount"]), result["status"]) == (
                "issue",
                5_000_00,
                "done",
            )
            assert operator.float_total() == 5_000_00
            assert admin.rebalance()["action"] == "none"

            frank_id, frank_r0 = label_key(f"{label}/frank"), label_key(f"{label}/frank/r0")
            frank = admin.create_customer("Frank", 3, frank_id.public_key)
            admin.deposit(frank["customer_id"], 100_000_00, "f-1")
        with operator.client(key=frank_id) as client:
            # Below the low mark after this load: the worker tops the float up to target.
            client.load(4_500_00, "f-load-1", to=frank_r0.public_key)
            wait_until(lambda: operator.float_total() == 5_000_00, what="top-up to target")
            # More than the float holds: topped up on the spot, then loaded.
            client.load(6_000_00, "f-load-2", to=frank_r0.public_key)
            assert network.balance(frank_r0.public_key) == 10_500_00
            wait_until(lambda: operator.float_total() == 5_000_00, what="top-up to target")
            # Unloading 6,500.00 takes the float over the high mark: the excess is redeemed,
            # splitting a coin since no subset of the float's coins is exact.
            client.unload("f-unload", tx=unload_tx(network, frank_r0, operator.float_key, 6_500_00))
        wait_until(lambda: operator.float_total() == 5_000_00, what="redemption to target")
        with operator.admin() as admin:
            kinds = [(e["kind"], e["status"]) for e in admin.journal() if e["kind"] == "redeem"]
            assert kinds == [("redeem", "done")]
        with network.issuer_admin() as issuer:
            account = issuer.operator(operator.issuer_id)
        # Issued: 5,000 + 4,500 + 5,500 + 6,000 ... whatever was issued minus the redemption is
        # exactly what is outstanding: the float and Frank's coins.
        assert account.frozen == operator.float_total() + network.balance(frank_r0.public_key)
        assert account.redeemed == 6_500_00
    finally:
        operator.stop()
