"""Wallets against a real node process on loopback: pay, split, merge, pre-pay, restart.

One node serves the whole module; every test makes its own wallets (scrypt lowered to 2^10)
and funds them with issuances signed by the test genesis's issuer keys. Blocks are cut only
when there are transactions, so heights are advanced with throwaway issuances.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tally.client import BuilderError, NodeClient, NodeRejection, NodeUnreachable, make_issue
from tally.model import Params, PublicKey, tx_id
from tally.model.lock import EscrowLock, KeyLock
from tally.wallet.coinstore import ROLE_ESCROW_PAYEE, ROLE_ESCROW_PAYER, ROLE_OWN
from tally.wallet.errors import InsufficientFundsError, LimitExceededError
from tally.wallet.keys import derive_key
from tally.wallet.selection import BadAmountError
from tally.wallet.vault import WalletFileError, WalletPasswordError
from tally.wallet.wallet import BadExpiryError, Wallet
from tests.node.harness import NodeProcess, free_port, make_node_dir
from tests.rules.helpers import (
    CHAIN_ID,
    CNY_ISSUER,
    HRP,
    RESERVE_REF,
    USD_ISSUER,
    key,
    make_genesis,
)

pytestmark = pytest.mark.network

PASSWORD = "wallet test password"  # noqa: S105 - a test password
FAST_N = 2**10
ISSUERS = {"CNY": CNY_ISSUER, "USD": USD_ISSUER}
_nonces = itertools.count(1)


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("network")
    genesis = make_genesis(params=Params(block_interval_ms=10))
    port = free_port()
    process = NodeProcess(make_node_dir(root, genesis, port), port)
    process.start()
    yield process.url
    process.stop()


@pytest.fixture(scope="module")
def client(node_url: str) -> Iterator[NodeClient]:
    with NodeClient(node_url) as opened:
        yield opened


@pytest.fixture
def make_wallet(node_url: str, tmp_path: Path) -> Iterator[Callable[..., Wallet]]:
    opened: list[Wallet] = []
    names = itertools.count()

    def make(name: str | None = None) -> Wallet:
        directory = tmp_path / (name or f"wallet-{next(names)}")
        wallet = Wallet.create(directory, PASSWORD, node_url, scrypt_n=FAST_N)
        opened.append(wallet)
        return wallet

    yield make
    for wallet in opened:
        wallet.close()


def fund(client: NodeClient, wallet: Wallet, asset: str, *amounts: int) -> None:
    """Issue coins of `amounts` to fresh keys of `wallet`; sync it without merging."""
    height = client.status()["height"]
    outputs = [(wallet.new_receive_key().public_key, amount) for amount in amounts]
    tx = make_issue(
        asset,
        key(ISSUERS[asset]),
        outputs,
        RESERVE_REF,
        next(_nonces),
        height + 50,
        CHAIN_ID,
    )
    assert client.submit(tx, wait=True)["status"] == "committed"
    wallet.sync(auto_merge=False)


def advance(client: NodeClient, blocks: int) -> int:
    """Cut `blocks` blocks (each holds one throwaway issuance); the new height."""
    sink = derive_key(bytes(32), 0).public_key
    for _ in range(blocks):
        height = client.status()["height"]
        tx = make_issue(
            "USD", key(USD_ISSUER), [(sink, 1)], RESERVE_REF, next(_nonces), height + 50, CHAIN_ID
        )
        assert client.submit(tx, wait=True)["status"] == "committed"
    return int(client.status()["height"])


def outputs_of(client: NodeClient, txid: str) -> list[tuple[int, dict[str, Any]]]:
    view = client.tx(txid)
    assert view["status"] == "committed"
    return [(int(o["amount"]), o["lock"]) for o in view["tx"]["outputs"]]


def inputs_of(client: NodeClient, txid: str) -> list[str]:
    return list(client.tx(txid)["tx"]["inputs"])


def history_sum(wallet: Wallet, asset: str) -> int:
    return sum(e.amount_in - e.amount_out for e in wallet.history(asset=asset))


def test_a_new_wallet_takes_the_chain_and_prefix_from_the_node(make_wallet, client):
    wallet = make_wallet()
    assert wallet.chain_id == CHAIN_ID
    assert wallet.hrp == HRP
    assert wallet.height == client.status()["height"]
    assert wallet.balance() == {}
    assert wallet.balance("CNY") == {"CNY": 0}
    first, second = wallet.new_receive_key(), wallet.new_receive_key()
    assert first != second
    assert wallet.address(first).startswith(HRP + "1")
    assert wallet.address(first) == wallet.address(PublicKey(first.public_key))
    assert wallet.identity_key not in (first, second)


def test_pay_splits_a_coin_into_payment_and_change_and_both_wallets_sync(make_wallet, client):
    alice, bob = make_wallet("alice"), make_wallet("bob")
    fund(client, alice, "CNY", 5000, 3000, 2000)
    assert alice.balance() == {"CNY": 10_000}
    bob_key = bob.new_receive_key()

    result = alice.pay(bob_key.public_key, "CNY", 4500, memo="lunch")
    assert result["code"] == "ok"
    assert isinstance(result["height"], int)
    outputs = outputs_of(client, result["txid"])
    assert [amount for amount, _ in outputs] == [4500, 500]
    assert outputs[0][1] == {
        "kind": "key",
        "key": bob_key.public_key.hex(),
        "address": bob.address(bob_key),
    }
    change_key = bytes.fromhex(outputs[1][1]["key"])
    assert change_key in alice.store.keys()  # noqa: SIM118 - CoinStore.keys(), not a dict

    assert alice.balance() == {"CNY": 5500}
    assert bob.sync() >= result["height"]
    assert bob.balance() == {"CNY": 4500}
    [paid] = alice.history(limit=1)
    assert (paid.kind, paid.amount_out, paid.amount_in, paid.memo) == ("pay", 4500, 0, "lunch")
    [received] = bob.history()
    assert (received.kind, received.amount_in, received.txid.hex()) == (
        "receive", 4500, result["txid"],
    )  # fmt: skip
    assert history_sum(alice, "CNY") == 5500
    assert history_sum(bob, "CNY") == 4500
    assert alice.store.pending_txs() == []


def test_an_exact_coin_is_spent_whole_without_change(make_wallet, client):
    alice, bob = make_wallet(), make_wallet()
    fund(client, alice, "CNY", 5000, 3000, 2000)
    three_thousand = next(c for c in alice.coins("CNY") if c.coin.amount == 3000)
    result = alice.pay(bob.new_receive_key().public_key, "CNY", 3000)
    assert inputs_of(client, result["txid"]) == [three_thousand.coin_id.hex()]
    assert [amount for amount, _ in outputs_of(client, result["txid"])] == [3000]
    # Next, an exact pair: 5000 + 2000 = 7000 with no change.
    result = alice.pay(bob.new_receive_key().public_key, "CNY", 7000)
    assert len(inputs_of(client, result["txid"])) == 2
    assert [amount for amount, _ in outputs_of(client, result["txid"])] == [7000]
    assert alice.balance() == {}
    bob.sync()
    assert bob.balance() == {"CNY": 10_000}


def test_split_makes_coins_of_the_amounts_asked(make_wallet, client):
    alice = make_wallet()
    fund(client, alice, "CNY", 1000)
    result = alice.split("CNY", [100, 250, 250])
    assert result["code"] == "ok"
    assert sorted(c.coin.amount for c in alice.coins("CNY")) == [100, 250, 250, 400]
    assert alice.balance() == {"CNY": 1000}
    assert alice.history(limit=1)[0].kind == "split"
    with pytest.raises(BadAmountError):
        alice.split("CNY", [100, 0])


def test_merge_joins_the_smallest_coins_and_sync_merges_past_the_threshold(make_wallet, client):
    alice = make_wallet()
    fund(client, alice, "CNY", *range(1, 41))
    assert len(alice.coins("CNY")) == 40
    result = alice.merge("CNY", max_inputs=10)
    assert result is not None
    assert result["merged"] == 10
    assert len(inputs_of(client, result["txid"])) == 10
    assert outputs_of(client, result["txid"])[0][0] == sum(range(1, 11))
    assert len(alice.coins("CNY")) == 31
    assert alice.balance() == {"CNY": sum(range(1, 41))}
    assert alice.history(limit=1)[0].kind == "merge"

    alice.sync()  # 31 coins: not over the default threshold of 32
    assert len(alice.coins("CNY")) == 31
    alice.merge_threshold = 20
    alice.merge_max_inputs = 8
    alice.sync()  # 31 -> 24 -> 17: merges until no more than 20 are left
    assert len(alice.coins("CNY")) == 17
    assert alice.balance() == {"CNY": sum(range(1, 41))}
    assert history_sum(alice, "CNY") == sum(range(1, 41))
    assert alice.merge("USD") is None


def test_insufficient_funds_and_bad_amounts_are_refused_before_signing(make_wallet, client):
    alice, bob = make_wallet(), make_wallet()
    fund(client, alice, "CNY", 1000)
    with pytest.raises(InsufficientFundsError) as info:
        alice.pay(bob.new_receive_key().public_key, "CNY", 1001)
    assert info.value.detail == {"asset": "CNY", "needed": 1001, "available": 1000}
    with pytest.raises(BadAmountError):
        alice.pay(bob.new_receive_key().public_key, "CNY", 0)
    with pytest.raises(BuilderError):
        alice.pay(b"\x00" * 31, "CNY", 10)
    assert alice.store.pending_txs() == []
    assert alice.balance() == {"CNY": 1000}


def test_a_payment_over_the_limit_is_refused_and_nothing_is_submitted(make_wallet, client):
    alice, bob = make_wallet(), make_wallet()
    fund(client, alice, "CNY", 5000)
    before = client.status()
    next_index = alice.store.next_key_index()
    with pytest.raises(LimitExceededError) as info:
        alice.pay(bob.new_receive_key().public_key, "CNY", 2001, per_payment_limit=2000)
    assert info.value.code == "limit.exceeded"
    assert info.value.detail["limit"] == 2000
    after = client.status()
    assert (after["height"], after["committed_txs"]) == (before["height"], before["committed_txs"])
    assert alice.store.next_key_index() == next_index  # no change key was even derived
    assert alice.store.pending_txs() == []
    assert alice.balance() == {"CNY": 5000}
    assert alice.pay(bob.new_receive_key().public_key, "CNY", 2000, per_payment_limit=2000)


def test_build_then_submit_elsewhere_then_wait_for_tx(make_wallet, client):
    alice, bob = make_wallet(), make_wallet()
    fund(client, alice, "CNY", 700, 500)
    tx = alice.build_payment(bob.new_receive_key().public_key, "CNY", 300, memo="later")
    assert alice.balance() == {"CNY": 700}  # the 500 coin is pending
    [pending] = alice.store.pending_txs()
    answer = client.submit(tx, wait=False)
    result = alice.wait_for_tx(answer["txid"], timeout=10)
    assert result["code"] == "ok"
    assert result["txid"] == pending.txid.hex()
    assert alice.balance() == {"CNY": 900}
    assert alice.store.pending_txs() == []
    assert alice.history(limit=1)[0].memo == "later"

    # Waiting first: the transaction arrives while the wallet follows the event stream.
    later = alice.build_payment(bob.new_receive_key().public_key, "CNY", 100)
    txid = tx_id(later.body)

    def send_later() -> None:
        with NodeClient(client.base_url) as other:
            other.submit(later, wait=False)

    timer = threading.Timer(0.3, send_later)
    timer.start()
    try:
        result = alice.wait_for_tx(txid, timeout=10)
    finally:
        timer.join()
    assert (result["txid"], result["code"]) == (txid.hex(), "ok")
    assert alice.balance() == {"CNY": 800}
    with pytest.raises(TimeoutError):
        alice.wait_for_tx(bytes(32), timeout=0.5)


def test_preauth_then_capture_pays_the_payee_and_returns_the_rest_in_one_tx(make_wallet, client):
    alice, merchant = make_wallet("alice"), make_wallet("merchant")
    fund(client, alice, "CNY", 10_000)
    merchant_key = merchant.new_receive_key()
    expiry = alice.sync() + 20

    auth = alice.preauth(merchant_key.public_key, "CNY", 5000, expiry, memo="hotel")
    assert auth["code"] == "ok"
    escrow_id = auth["escrow_coin_id"]
    assert alice.balance() == {"CNY": 5000}
    [held] = alice.escrows()
    assert (held.role, held.coin.amount, held.expiry) == (ROLE_ESCROW_PAYER, 5000, expiry)
    lock = held.coin.lock
    assert isinstance(lock, EscrowLock)
    assert lock.payee == merchant_key.public_key
    assert (alice.history(limit=1)[0].kind, alice.history(limit=1)[0].amount_out) == (
        "preauth",
        5000,
    )

    merchant.sync()
    [offered] = merchant.escrows()
    assert (offered.role, offered.coin_id.hex()) == (ROLE_ESCROW_PAYEE, escrow_id)
    assert merchant.balance() == {}

    with pytest.raises(BuilderError, match="cannot capture 5001"):
        merchant.capture(escrow_id, 5001)
    assert merchant.store.pending_txs() == []

    captured = merchant.capture(escrow_id, 4200)
    assert (captured["code"], captured["captured"], captured["refunded"]) == ("ok", 4200, 800)
    [(paid, paid_lock), (refund, refund_lock)] = outputs_of(client, captured["txid"])
    assert (paid, refund) == (4200, 800)
    assert bytes.fromhex(paid_lock["key"]) in merchant.store.keys()  # noqa: SIM118
    assert refund_lock["key"] == lock.payer.hex()
    assert inputs_of(client, captured["txid"]) == [escrow_id]
    assert merchant.balance() == {"CNY": 4200}
    assert merchant.escrows() == []
    assert merchant.history(limit=1)[0].kind == "capture"

    alice.sync()
    assert alice.balance() == {"CNY": 5800}
    assert alice.escrows() == []
    latest = alice.history(limit=1)[0]
    assert (latest.kind, latest.amount_in, latest.txid.hex()) == ("capture", 800, captured["txid"])
    assert history_sum(alice, "CNY") == 5800
    assert history_sum(merchant, "CNY") == 4200

    with pytest.raises(Exception, match="already settled") as info:
        merchant.capture(escrow_id, 1)
    assert getattr(info.value, "code", None) == "wallet.coin_unavailable"


def test_capture_after_expiry_and_reclaim_before_it_are_refused_with_node_codes(
    make_wallet, client
):
    alice, merchant = make_wallet("alice"), make_wallet("merchant")
    fund(client, alice, "CNY", 3000)
    merchant_key = merchant.new_receive_key().public_key
    height = alice.sync()
    with pytest.raises(BadExpiryError):
        alice.preauth(merchant_key, "CNY", 1000, height)

    late = alice.preauth(merchant_key, "CNY", 1000, height + 3)["escrow_coin_id"]
    early = alice.preauth(merchant_key, "CNY", 1000, height + 500)["escrow_coin_id"]
    assert alice.balance() == {"CNY": 1000}

    with pytest.raises(NodeRejection) as info:
        alice.reclaim(early)
    assert info.value.code == "escrow.not_expired"
    assert alice.store.coin(bytes.fromhex(early)).pending_txid is None
    assert alice.store.pending_txs() == []

    advance(client, 4)
    merchant.sync()
    with pytest.raises(NodeRejection) as info:
        merchant.capture(late, 500)
    assert info.value.code == "escrow.expired"
    assert merchant.store.pending_txs() == []
    assert {c.coin_id.hex() for c in merchant.escrows()} == {late, early}

    # The payer's next sync takes the expired escrow back, and only that one.
    alice.sync()
    assert alice.balance() == {"CNY": 2000}
    assert [c.coin_id.hex() for c in alice.escrows()] == [early]
    latest = alice.history(limit=1)[0]
    assert (latest.kind, latest.amount_in) == ("reclaim", 1000)
    assert history_sum(alice, "CNY") == 2000
    merchant.sync()
    assert [c.coin_id.hex() for c in merchant.escrows()] == [early]


def test_automatic_reclaim_can_be_turned_off(make_wallet, client):
    alice, merchant = make_wallet(), make_wallet()
    fund(client, alice, "CNY", 1000)
    escrow = alice.preauth(merchant.new_receive_key().public_key, "CNY", 600, alice.sync() + 1)
    advance(client, 2)
    alice.sync(auto_reclaim=False)
    assert [c.coin_id.hex() for c in alice.escrows()] == [escrow["escrow_coin_id"]]
    [result] = alice.reclaim_expired()
    assert (result["code"], result["reclaimed"]) == ("ok", 600)
    assert alice.balance() == {"CNY": 1000}
    assert alice.reclaim_expired() == []


def test_a_wrong_password_is_refused_and_a_reopened_wallet_keeps_everything(make_wallet, client):
    alice, bob = make_wallet("alice"), make_wallet("bob")
    fund(client, alice, "CNY", 900, 100)
    alice.pay(bob.new_receive_key().public_key, "CNY", 250)
    directory = alice.directory
    balance, height, history = alice.balance(), alice.height, alice.history()
    keys_before = alice.store.keys()
    identity = alice.identity_key
    alice.close()

    with pytest.raises(WalletPasswordError) as info:
        Wallet.open(directory, "not the password")
    assert info.value.code == "wallet.password"
    with pytest.raises(WalletFileError):
        Wallet.open(directory / "nowhere", PASSWORD)
    with pytest.raises(WalletFileError, match="already exists"):
        Wallet.create(directory, PASSWORD, client.base_url, scrypt_n=FAST_N)

    with Wallet.open(directory, PASSWORD) as reopened:
        assert reopened.balance() == balance == {"CNY": 750}
        assert reopened.height == height
        assert reopened.history() == history
        assert reopened.identity_key == identity
        fresh = reopened.new_receive_key()
        assert fresh.public_key not in keys_before
        assert [c.role for c in reopened.coins()] == [ROLE_OWN, ROLE_OWN]
        reopened.pay(bob.new_receive_key().public_key, "CNY", 750)
        assert reopened.balance() == {}
    bob.sync()
    assert bob.balance() == {"CNY": 1000}


def test_a_payment_to_a_lock_reaches_the_key_inside_it(make_wallet, client):
    alice, bob = make_wallet(), make_wallet()
    fund(client, alice, "CNY", 300)
    bob_key = bob.new_receive_key()
    alice.pay(KeyLock(key=PublicKey(bob_key.public_key)), "CNY", 300)
    bob.sync()
    assert bob.balance() == {"CNY": 300}
    [received] = bob.coins()
    assert received.coin.lock == KeyLock(key=PublicKey(bob_key.public_key))
    assert bob.address(received.coin.lock) == bob.address(bob_key)


def test_a_send_of_unknown_fate_keeps_its_inputs_until_its_window_passes(
    make_wallet, client, monkeypatch
):
    alice, bob = make_wallet(), make_wallet()
    fund(client, alice, "CNY", 800)
    alice.valid_for = 2

    def unreachable(tx, wait=True):
        raise NodeUnreachable(client.base_url, "connection dropped (test)")

    monkeypatch.setattr(alice.client, "submit", unreachable)
    with pytest.raises(NodeUnreachable):
        alice.pay(bob.new_receive_key().public_key, "CNY", 300)
    # It may still be committed, so its input is not offered again yet.
    [pending] = alice.store.pending_txs()
    assert pending.valid_until == alice.height + 2
    assert alice.balance() == {}
    with pytest.raises(InsufficientFundsError):
        alice.build_payment(bob.new_receive_key().public_key, "CNY", 300)
    monkeypatch.undo()

    advance(client, 1)
    alice.sync()
    assert alice.store.pending_txs() == [pending]  # the next block may still commit it
    advance(client, 1)
    alice.sync()
    assert alice.store.pending_txs() == []
    assert alice.balance() == {"CNY": 800}


def test_a_send_the_node_refuses_releases_its_inputs_at_once(make_wallet, client, monkeypatch):
    alice, bob = make_wallet(), make_wallet()
    fund(client, alice, "CNY", 800)
    alice.valid_for = 5000  # past the network's max_window of 1000: the node refuses
    status = alice.client.status
    # As if the node did not report its window: the wallet's own figure goes out as it is.
    monkeypatch.setattr(
        alice.client, "status", lambda: {k: v for k, v in status().items() if k != "max_window"}
    )
    monkeypatch.setattr(alice._syncer, "max_window", None)
    with pytest.raises(NodeRejection) as info:
        alice.pay(bob.new_receive_key().public_key, "CNY", 300)
    assert info.value.code == "window.too_far"
    assert alice.store.pending_txs() == []
    assert alice.balance() == {"CNY": 800}
    monkeypatch.undo()
    alice.valid_for = 100
    assert alice.pay(bob.new_receive_key().public_key, "CNY", 300)["code"] == "ok"
    assert alice.balance() == {"CNY": 500}


def test_the_wallet_keeps_its_transactions_within_the_node_window(make_wallet, client):
    alice, bob = make_wallet(), make_wallet()
    fund(client, alice, "CNY", 800)
    alice.valid_for = 5000  # more than max_window: the wallet caps it at what the node reports
    tx = alice.build_payment(bob.new_receive_key().public_key, "CNY", 300)
    assert tx.body.valid_until == alice.height + 1000
