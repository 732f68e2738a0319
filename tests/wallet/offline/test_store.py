"""The stores behind offline payments: the coin store's offline role and roots, its schema
migration, scanning blocks with offline coins, and the device's offline store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tally.model import AssetCode, Coin, Height, TxId, encode, tx_id
from tally.model.lock import OfflineLock
from tally.node.views import block_json
from tally.wallet.coinstore import _MIGRATIONS, ROLE_OFFLINE, ROLE_OWN, CoinStore
from tally.wallet.offline.errors import OfflineReplayError
from tally.wallet.offline.limits import DEFAULT_LIMITS, OfflineLimits
from tally.wallet.offline.messages import encode_message
from tally.wallet.offline.store import (
    DOUBLE_SPEND,
    RECEIVED,
    SENT,
    SETTLED,
    UNSETTLED,
    HelloRecord,
    OfflineStore,
)
from tally.wallet.sync import scan_block
from tally.wallet.vault import WalletFileError
from tests.rules.helpers import (
    ALICE,
    BOB,
    CHAIN_ID,
    HRP,
    Ledger,
    coin,
    make_transfer,
    offline_lock,
    outputs_of,
    owner,
    pub,
)

from .chains import GENESIS, owner_of, pay, purse


def scan(ledger: Ledger, store: CoinStore):
    view = block_json(ledger.blocks[-1].block, None, HRP)
    changes = scan_block(
        view, store.keys(), store.coin, store.pending, chain_id=CHAIN_ID, prev_hash=None
    )
    store.apply_block(changes)
    return changes


def test_a_version_1_coin_store_is_migrated_keeping_its_coins(tmp_path: Path):
    path = tmp_path / "coins.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_MIGRATIONS[0])
    lock = encode(coin("CNY", 5, ALICE).lock)
    db.execute(
        "INSERT INTO coins (coin_id, asset, amount, lock, key_index, role, created_height, "
        "created_txid) VALUES (?, 'CNY', 5, ?, 0, 'own', 3, ?)",
        (bytes(32), lock, bytes(32)),
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with CoinStore.open(path) as store:
        [kept] = store.unspent()
        assert (kept.role, kept.coin.amount, kept.created_height) == (ROLE_OWN, 5, 3)
        assert store.root(bytes(32)) is None
        store.add_root(bytes(32), b"root")
        store.add_root(bytes(32), b"other")
        assert store.root(bytes(32)) == b"root"
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == len(_MIGRATIONS) == 2


def test_offline_outputs_to_our_keys_become_offline_coins_and_ask_for_their_root(tmp_path):
    ledger = Ledger()
    [funding] = ledger.fund(ALICE, "CNY", 5000)
    with CoinStore.open(tmp_path / "coins.sqlite") as store:
        store.add_key(0, pub(ALICE))
        store.add_key(1, pub(BOB))
        scan(ledger, store)
        into_purse = make_transfer(
            [(funding, owner(ALICE))],
            [coin("CNY", 3000, offline_lock(BOB, 50)), coin("CNY", 2000, ALICE)],
        )
        assert ledger.commit(into_purse).codes == ["ok"]
        changes = scan(ledger, store)
        txid = tx_id(into_purse.body)
        assert changes.offline_txids == [txid]
        [offline] = store.offline_coins()
        assert offline.role == ROLE_OFFLINE
        assert offline.unlock_height == 50
        assert offline.key_index == 1
        assert store.balances() == {"CNY": 2000}
        [entry] = store.history(limit=1)
        assert (entry.kind, entry.amount_out, entry.amount_in) == ("offline_fund", 3000, 0)
        # An offline hop from our offline coin to another offline coin of ours.
        purse_coin = outputs_of(into_purse)[0]
        hop = make_transfer(
            [(purse_coin, owner(BOB))], [coin("CNY", 3000, offline_lock(ALICE, 50))]
        )
        assert ledger.commit(hop).codes == ["ok"]
        changes = scan(ledger, store)
        assert changes.offline_txids == [tx_id(hop.body)]
        assert [owner_of(c.coin) for c in store.offline_coins()] == [pub(ALICE)]
        assert store.history(limit=1)[0].kind == "offline_pay"


def test_the_offline_store_records_payments_atomically(tmp_path: Path):
    [coin_a] = purse(ALICE, [5000])
    paid = pay([coin_a], ALICE, BOB, 1200)
    payment_id = TxId(tx_id(paid.payment.chain.hops[0].body))
    hello = HelloRecord(
        nonce=paid.payment.payer_hello.nonce,
        role="payer",
        key_index=None,
        raw=encode_message(paid.payment.payer_hello),
        used_by=payment_id,
    )
    with OfflineStore.open(tmp_path / "offline.sqlite") as store:
        assert store.genesis() is None
        assert store.limits() == DEFAULT_LIMITS
        store.set_genesis(GENESIS)
        store.set_limits(OfflineLimits(max_hops=2))
        assert store.genesis() == GENESIS
        assert store.limits().max_hops == 2
        store.add_coin(coin_a, "purse", 1)
        store.record_sent(paid.payment, payment_id, [coin_a.coin_id], paid.change, hello, 40, 2)
        assert [c.offline.coin.amount for c in store.coins()] == [3800]
        assert store.unsettled_total(SENT) == 1200
        # Spending the same coin again records nothing at all.
        again = HelloRecord(nonce=bytes(16), role="payer", key_index=None, raw=b"", used_by=None)
        with pytest.raises(OfflineReplayError):
            store.record_sent(paid.payment, TxId(bytes(32)), [coin_a.coin_id], None, again, 40, 3)
        assert store.hello(bytes(16)) is None
        assert len(store.payments()) == 1
        store.set_status(payment_id, DOUBLE_SPEND, 4, code="offline.double_spend", proof=b"p")
        [record] = store.payments(status=DOUBLE_SPEND, direction=SENT)
        assert (record.code, record.proof, record.amount) == ("offline.double_spend", b"p", 1200)
        assert store.unsettled_total(SENT) == 0
        assert record.payment == paid.payment


def test_a_hello_is_answered_once(tmp_path: Path):
    [coin_a] = purse(ALICE, [5000])
    paid = pay([coin_a], ALICE, BOB, 700)
    payment_id = TxId(tx_id(paid.payment.chain.hops[0].body))
    hello = HelloRecord(
        nonce=paid.payee_hello.nonce,
        role="payee",
        key_index=1,
        raw=encode_message(paid.payee_hello),
        used_by=None,
    )
    with OfflineStore.open(tmp_path / "offline.sqlite") as store:
        store.add_hello(hello, 1)
        store.record_received(
            paid.payment, payment_id, paid.received, pub(ALICE), hello.nonce, 40, 2
        )
        answered = store.hello(hello.nonce)
        assert answered is not None
        assert answered.used_by == payment_id
        with pytest.raises(OfflineReplayError):
            store.record_received(
                paid.payment, payment_id, paid.received, pub(ALICE), hello.nonce, 40, 3
            )
        assert store.unsettled_total(RECEIVED) == 700
        [record] = store.payments(status=UNSETTLED)
        store.set_status(payment_id, SETTLED, 5)
        other = tmp_path / "other.sqlite"
        with OfflineStore.open(other) as copy:
            copy.import_payment(store.payments()[0])
            copy.import_payment(store.payments()[0])
            assert [p.status for p in copy.payments()] == [SETTLED]
        assert record.counterparty == pub(ALICE)


def test_a_newer_offline_store_is_refused(tmp_path: Path):
    path = tmp_path / "offline.sqlite"
    OfflineStore.open(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(WalletFileError):
        OfflineStore.open(path)


def test_an_offline_coin_keeps_its_lock_through_the_store(tmp_path: Path):
    lock = OfflineLock(owner=pub(ALICE), unlock_height=Height(77))
    offline = Coin(asset=AssetCode("CNY"), amount=9, lock=lock)
    [coin_a] = purse(ALICE, [9], unlock=77)
    assert coin_a.coin == offline
    with OfflineStore.open(tmp_path / "offline.sqlite") as store:
        store.add_coin(coin_a, "purse", 1)
        kept = store.coin(coin_a.coin_id)
        assert kept is not None
        assert kept.offline == coin_a
