"""Double spends caught with proof, devices refusing replays, migration, against a real node.

One node serves the module. A device pays offline with its wallet reopened against a port
where nothing listens (`offline`), and settles against the node.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tally.client import NodeClient, NodeRejection
from tally.model import decode, encode, tx_id
from tally.model.lock import KeyLock, OfflineLock
from tally.model.offline import DoubleSpendProof
from tally.rules.offline import verify_double_spend_proof
from tally.wallet.errors import InsufficientFundsError
from tally.wallet.offline.device import OfflineWallet
from tally.wallet.offline.errors import (
    OfflineConflictError,
    OfflineExpiredError,
    OfflinePayerBarredError,
    OfflineReplayError,
    OfflineUnsettledError,
)
from tally.wallet.offline.migration import migrate_wallet
from tally.wallet.offline.store import DOUBLE_SPEND, FAILED, SETTLED, UNSETTLED

from .chains import owner_of
from .network import (
    LIMITS,
    close_device,
    closed_url,
    create_device,
    fund_own,
    ledger_state,
    open_device,
    start_node,
)

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    node = start_node(tmp_path_factory.mktemp("settlement") / "network")
    yield node.url
    node.stop()


@pytest.fixture(scope="module")
def client(node_url: str) -> Iterator[NodeClient]:
    with NodeClient(node_url) as opened:
        yield opened


@pytest.fixture
def device(node_url: str, tmp_path: Path) -> Iterator[Callable[..., OfflineWallet]]:
    """Makes devices on the node; each may be reopened offline with `offline(device)`."""
    opened: list[OfflineWallet] = []

    def make(name: str, **kwargs):
        created = create_device(tmp_path / name, node_url, **kwargs)
        opened.append(created)
        return created

    yield make
    for each in opened:
        close_device(each)


def reopen(device: OfflineWallet, url: str) -> OfflineWallet:
    """Close `device` and open it again against `url` (the node, or nothing)."""
    directory = device.wallet.directory
    close_device(device)
    again = open_device(directory, url)
    # The fixture closes what it opened: hand it the new objects.
    device.wallet, device.store = again.wallet, again.store
    return device


def funded_alice(make, client, amount=5000, **kwargs):
    alice = make("alice", **kwargs)
    fund_own(client, alice.wallet, amount + 1000)
    alice.fund("CNY", denominations=[amount], unlock_in=200)
    return alice


def test_a_double_spend_is_applied_once_and_the_other_payee_gets_a_proof(
    device, client, node_url, tmp_path
):
    alice = funded_alice(device, client)
    bob, carol = device("bob"), device("carol")
    [purse_coin] = alice.spendable()
    owner = owner_of(purse_coin.coin)

    # Alice's device is cloned: both copies hold the same purse coin and key.
    close_device(alice)
    shutil.copytree(tmp_path / "alice", tmp_path / "alice-clone")
    offline = closed_url()
    alice = reopen(alice, offline)
    clone = open_device(tmp_path / "alice-clone", offline)
    reopen(bob, offline)
    reopen(carol, offline)
    try:
        to_bob = alice.pay(bob.hello(), "CNY", 3000)
        to_carol = clone.pay(carol.hello(), "CNY", 2500)
        # Offline, each payee sees a perfectly good chain.
        assert bob.receive(to_bob).amount == 3000
        assert carol.receive(to_carol).amount == 2500
    finally:
        close_device(clone)
    bob_hop, carol_hop = tx_id(to_bob.chain.hops[0].body), tx_id(to_carol.chain.hops[0].body)

    reopen(bob, node_url)
    reopen(carol, node_url)
    assert bob.settle().settled == [bob_hop]
    report = carol.settle()
    assert report.settled == []
    [(payment_id, proof)] = report.double_spends
    assert payment_id == carol_hop
    assert proof is not None

    # Exactly one hop was applied; the other is in a block, not applied.
    assert client.tx(bob_hop)["status"] == "committed"
    carol_view = client.tx(carol_hop)
    assert carol_view["receipt"]["code"] == "offline.double_spend"
    assert carol_view["status"] == "rejected"
    spent = client.coin(purse_coin.coin_id)
    assert spent["status"] == "spent"
    assert spent["spent_by"] == bob_hop.hex()

    # A third party checks the proof from its bytes alone.
    third_party = decode(encode(proof), DoubleSpendProof)
    verify_double_spend_proof(third_party)
    assert third_party.owner == owner
    assert third_party.coin_id == purse_coin.coin_id
    assert (tx_id(third_party.first.body), tx_id(third_party.second.body)) == (bob_hop, carol_hop)
    [record] = carol.store.payments()
    assert (record.status, record.code) == (DOUBLE_SPEND, "offline.double_spend")
    assert record.proof == encode(proof)
    assert carol.store.barred() == {owner: encode(proof)}
    assert carol.balance() == {}
    assert carol.status()["double_spends"] == [carol_hop.hex()]
    assert bob.balance() == {"CNY": 3000}

    # Alice's key can no longer fund offline locks.
    reopen(alice, node_url)
    barred_index = alice.wallet.store.keys()[owner]
    with pytest.raises(NodeRejection) as info:
        alice.fund("CNY", denominations=[100], owner_index=barred_index)
    assert info.value.code == "offline.barred"
    assert client.double_spend_proofs(owner)["barred"] is True
    # Her own honest payment settled; the ledger shows her change.
    assert alice.settle().settled == [bob_hop]
    assert alice.balance() == {"CNY": 2000}
    assert alice.wallet.balance() == {"CNY": 1000}


def test_a_payee_that_sees_both_spends_of_a_coin_catches_the_double_spend_offline(
    device, client, tmp_path
):
    alice = funded_alice(device, client)
    bob = device("bob")
    [coin] = alice.spendable()
    close_device(alice)
    shutil.copytree(tmp_path / "alice", tmp_path / "alice-clone")
    offline = closed_url()
    alice = reopen(alice, offline)
    clone = open_device(tmp_path / "alice-clone", offline)
    reopen(bob, offline)
    try:
        assert bob.receive(alice.pay(bob.hello(), "CNY", 1000)).amount == 1000
        again = clone.pay(bob.hello(), "CNY", 1500)
    finally:
        close_device(clone)
    with pytest.raises(OfflineConflictError) as info:
        bob.receive(again)
    assert info.value.code == "offline.conflict"
    proof = decode(bytes.fromhex(info.value.detail["proof"]), DoubleSpendProof)
    verify_double_spend_proof(proof)
    assert (proof.owner, proof.coin_id) == (owner_of(coin.coin), coin.coin_id)
    assert bob.store.barred() == {proof.owner: encode(proof)}
    assert bob.balance() == {"CNY": 1000}


def test_a_device_that_knows_a_barred_key_refuses_its_chains_offline(device, client, node_url):
    alice = funded_alice(device, client)
    bob = device("bob")
    [coin] = alice.spendable()
    bob.store.add_barred(owner_of(coin.coin), b"proof")
    offline = closed_url()
    reopen(alice, offline)
    reopen(bob, offline)
    payment = alice.pay(bob.hello(), "CNY", 100)
    with pytest.raises(OfflinePayerBarredError):
        bob.receive(payment)
    assert bob.balance() == {}


def test_a_payment_is_good_once_and_for_its_payee_only(device, client):
    alice = funded_alice(device, client)
    bob, dave = device("bob"), device("dave")
    offline = closed_url()
    for each in (alice, bob, dave):
        reopen(each, offline)
    payment = alice.pay(bob.hello(), "CNY", 1200)
    with pytest.raises(OfflineReplayError) as third:
        dave.receive(payment)
    assert third.value.code == "offline.replay"
    assert bob.receive(payment).amount == 1200
    with pytest.raises(OfflineReplayError):
        bob.receive(payment)
    assert bob.balance() == {"CNY": 1200}
    assert dave.balance() == {}
    # Alice cannot pay a coin twice from one device either: it is spent.
    with pytest.raises(InsufficientFundsError):
        alice.pay(dave.hello(), "CNY", 4000)


def test_a_payee_refuses_a_lock_too_close_to_its_unlock_height(device, client):
    alice = device("alice", limits=LIMITS.__class__(expiry_margin=0))
    fund_own(client, alice.wallet, 1000)
    alice.fund("CNY", denominations=[1000], unlock_in=10)
    bob = device("bob")  # its margin is 20 blocks
    bob.wallet.sync()
    offline = closed_url()
    reopen(alice, offline)
    reopen(bob, offline)
    payment = alice.pay(bob.hello(), "CNY", 500)
    with pytest.raises(OfflineExpiredError):
        bob.receive(payment)


def test_a_payee_with_multi_hop_off_is_paid_from_the_purse_only(device, client, node_url):
    alice = funded_alice(device, client)
    bob, carol = device("bob"), device("carol")
    offline = closed_url()
    for each in (alice, bob, carol):
        reopen(each, offline)
    bob.receive(alice.pay(bob.hello(), "CNY", 1000))
    with pytest.raises(InsufficientFundsError):
        bob.pay(carol.hello(multi_hop=False), "CNY", 500)
    # Once settled, the same coin is on the ledger and pays anyone in one hop.
    reopen(bob, node_url)
    bob.settle()
    reopen(bob, offline)
    payment = bob.pay(carol.hello(multi_hop=False), "CNY", 500)
    assert len(payment.chain.hops) == 1
    assert carol.receive(payment).amount == 500


def test_migration_settles_everything_then_sweeps_every_coin(device, client, node_url):
    alice = funded_alice(device, client)
    merchant = device("merchant")
    fund_own(client, merchant.wallet, 1000, 250)
    supplier = device("supplier")
    offline = closed_url()
    for each in (alice, merchant, supplier):
        reopen(each, offline)
    merchant.receive(alice.pay(merchant.hello(), "CNY", 3520))
    merchant.receive(alice.pay(merchant.hello(), "CNY", 480))
    assert merchant.balance() == {"CNY": 4000}
    assert {p.status for p in merchant.store.payments()} == {UNSETTLED}

    reopen(merchant, node_url)
    new = device("merchant-new")
    report = migrate_wallet(merchant, new)
    assert len(report.settlement.settled) == 2
    assert report.moved == {"CNY": 1250 + 4000}
    assert report.left == []
    # The old wallet holds nothing; the new one holds it all, offline coins in its purse.
    merchant.wallet.sync()
    assert merchant.wallet.balance() == {}
    assert merchant.balance() == {}
    assert new.wallet.balance() == {"CNY": 1250}
    assert new.balance() == {"CNY": 4000}
    for coin in new.spendable():
        assert isinstance(coin.coin.lock, OfflineLock)
        assert coin.hops == 0
    [own] = new.wallet.coins("CNY") and [c for c in new.wallet.coins("CNY") if c.role == "own"]
    assert isinstance(own.coin.lock, KeyLock)
    # Nothing offline is lost: the payment records came along, and the purse pays offline.
    assert {p.status for p in new.store.payments()} == {SETTLED}
    assert len(new.store.payments()) == 2
    assert new.store.genesis() is not None
    reopen(new, offline)
    reopen(supplier, offline)
    assert supplier.receive(new.pay(supplier.hello(), "CNY", 3900)).amount == 3900
    state = ledger_state(client)
    assert state.totals() == state.outstanding


def test_migration_moves_nothing_while_a_payment_cannot_settle(
    device, client, node_url, monkeypatch
):
    alice = funded_alice(device, client)
    merchant = device("merchant")
    fund_own(client, merchant.wallet, 700)
    offline = closed_url()
    reopen(alice, offline)
    reopen(merchant, offline)
    merchant.receive(alice.pay(merchant.hello(), "CNY", 300))
    reopen(merchant, node_url)
    new = device("merchant-new")

    def busy(tx, wait=True):
        raise NodeRejection("mempool.full", "the mempool is full", {}, 503)

    monkeypatch.setattr(merchant.wallet.client, "submit", busy)
    with pytest.raises(OfflineUnsettledError):
        migrate_wallet(merchant, new)
    monkeypatch.undo()
    assert merchant.wallet.balance() == {"CNY": 700}
    assert new.wallet.balance() == {}
    assert [p.status for p in merchant.store.payments()] == [UNSETTLED]
    # Once the node takes it, the migration goes through.
    report = migrate_wallet(merchant, new)
    assert report.moved == {"CNY": 1000}
    assert FAILED not in {p.status for p in new.store.payments()}


def test_a_root_the_node_could_not_give_at_sync_is_fetched_later(device, client, monkeypatch):
    alice = device("alice")
    fund_own(client, alice.wallet, 2000)

    def not_yet(txid):
        raise NodeRejection("not_found", "not in a block yet", {}, 404)

    monkeypatch.setattr(alice.wallet.client, "inclusion", not_yet)
    alice.wallet.fund_offline("CNY", [1000], 100)
    [stored] = alice.wallet.store.offline_coins()
    assert alice.wallet.store.root(stored.created_txid) is None
    alice.refresh()
    assert alice.balance() == {}  # no proof, nothing to pay offline with
    monkeypatch.undo()
    assert alice.wallet.fetch_missing_roots() == 1
    alice.refresh()
    assert alice.balance() == {"CNY": 1000}
