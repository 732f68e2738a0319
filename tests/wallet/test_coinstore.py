"""The wallet's SQLite store: coins, keys, pending sends, history, and whole blocks."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from tally.model.coin import Coin
from tally.model.lock import EscrowLock, KeyLock
from tally.model.types import Amount, AssetCode, CoinId, Height, PublicKey, TxId
from tally.wallet.coinstore import (
    ROLE_ESCROW_PAYEE,
    ROLE_ESCROW_PAYER,
    ROLE_OWN,
    BlockChanges,
    CoinStore,
    CoinUnavailableError,
    HistoryEntry,
    NewCoin,
    PendingTx,
)
from tally.wallet.vault import WalletFileError

KEY = PublicKey(bytes(31) + b"\x01")
PAYEE = PublicKey(bytes(31) + b"\x02")


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def cid(label: str) -> CoinId:
    return CoinId(h("coin " + label))


def txid(label: str) -> TxId:
    return TxId(h("tx " + label))


def own(label: str, amount: int, asset: str = "CNY", index: int = 0) -> NewCoin:
    coin = Coin(asset=AssetCode(asset), amount=Amount(amount), lock=KeyLock(key=KEY))
    return NewCoin(coin_id=cid(label), coin=coin, role=ROLE_OWN, key_index=index, txid=txid(label))


def pending(label: str, valid_until: int = 10, kind: str = "pay") -> PendingTx:
    return PendingTx(
        txid=txid(label), raw=b"raw " + label.encode(), kind=kind, memo="m " + label,
        valid_until=valid_until, created_ms=1,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path):
    with CoinStore.open(tmp_path / "coins.sqlite") as opened:
        yield opened


def block(height: int, **fields) -> BlockChanges:
    return BlockChanges(height=height, block_hash=h(f"block {height}"), **fields)


def test_a_new_store_is_at_height_zero_in_wal_mode(store, tmp_path):
    assert store.cursor() == (0, None)
    assert store.balances() == {}
    assert store.next_key_index() == 0
    mode = sqlite3.connect(tmp_path / "coins.sqlite").execute("PRAGMA journal_mode").fetchone()
    assert mode[0] == "wal"


def test_keys_are_recorded_once(store):
    store.add_key(0, KEY)
    store.add_key(0, KEY)
    store.add_key(4, PAYEE)
    assert store.keys() == {KEY: 0, PAYEE: 4}
    assert store.next_key_index() == 5


def test_a_block_adds_coins_history_and_moves_the_cursor(store):
    entry = HistoryEntry(
        txid=txid("a"), height=5, kind="receive", asset="CNY", amount_in=300, amount_out=0,
        time_ms=9,
    )  # fmt: skip
    store.apply_block(block(5, created=[own("a", 100), own("b", 200)], history=[entry]))
    assert store.cursor() == (5, h("block 5"))
    assert store.balances() == {"CNY": 300}
    assert [c.coin.amount for c in store.spendable("CNY")] == [200, 100]
    assert store.coin(cid("a")).created_height == 5
    assert store.history() == [entry]


def test_applying_a_block_twice_changes_nothing_more(store):
    changes = block(
        3,
        created=[own("a", 100)],
        history=[HistoryEntry(txid("a"), 3, "receive", "CNY", 100, 0)],
    )
    store.apply_block(changes)
    store.apply_block(changes)
    assert store.balances() == {"CNY": 100}
    assert len(store.history()) == 1


def test_a_block_is_all_or_nothing(store):
    store.apply_block(block(1, created=[own("a", 100)]))
    bad = block(2, created=[own("b", 50)], spent=[(cid("a"), txid("x"))])
    bad.history.append(HistoryEntry(txid("x"), 2, "pay", "CNY", 0, 100))
    bad.history.append(HistoryEntry(txid("y"), 2, "pay", "CNY", 0, 2**70))  # too large
    with pytest.raises(OverflowError):
        store.apply_block(bad)
    assert store.cursor() == (1, h("block 1"))
    assert store.coin(cid("b")) is None
    assert store.coin(cid("a")).spent_txid is None
    assert store.history() == []


def test_spent_coins_leave_the_balance_and_keep_their_spender(store):
    store.apply_block(block(1, created=[own("a", 100), own("b", 50, "USD")]))
    store.apply_block(block(2, spent=[(cid("a"), txid("pay"))]))
    spent = store.coin(cid("a"))
    assert (spent.spent_height, spent.spent_txid) == (2, txid("pay"))
    assert store.balances() == {"USD": 50}
    assert [c.coin_id for c in store.unspent()] == [cid("b")]


def test_pending_inputs_leave_the_balance_until_released(store):
    store.apply_block(block(1, created=[own("a", 100), own("b", 60)]))
    store.add_pending(pending("p"), [cid("a")])
    assert store.balances() == {"CNY": 60}
    assert store.coin(cid("a")).pending_txid == txid("p")
    assert store.pending(txid("p")) == pending("p")
    with pytest.raises(CoinUnavailableError) as info:
        store.add_pending(pending("q"), [cid("b"), cid("a")])
    assert info.value.code == "wallet.coin_unavailable"
    assert info.value.detail["state"] == "already pending"
    # Nothing of the refused send was recorded.
    assert store.coin(cid("b")).pending_txid is None
    assert store.pending(txid("q")) is None
    store.release_pending(txid("p"))
    assert store.balances() == {"CNY": 160}
    assert store.pending_txs() == []


def test_unknown_and_spent_coins_cannot_be_made_pending(store):
    store.apply_block(block(1, created=[own("a", 100)]))
    store.apply_block(block(2, spent=[(cid("a"), txid("s"))]))
    for coin, state in ((cid("a"), "spent"), (cid("zz"), "unknown")):
        with pytest.raises(CoinUnavailableError) as info:
            store.add_pending(pending("p"), [coin])
        assert info.value.detail["state"] == state


def test_a_settled_send_is_forgotten_and_its_unspent_inputs_freed(store):
    store.apply_block(block(1, created=[own("a", 100), own("b", 60)]))
    store.add_pending(pending("p"), [cid("a"), cid("b")])
    # The block spent `a` by the transaction; `b` was not spent (say, it was rejected).
    store.apply_block(block(2, spent=[(cid("a"), txid("p"))], settled=[txid("p")]))
    assert store.pending_txs() == []
    assert store.coin(cid("a")).spent_txid == txid("p")
    assert store.coin(cid("b")).pending_txid is None
    assert store.balances() == {"CNY": 60}


def test_release_expired_frees_only_windows_that_ended(store):
    store.apply_block(block(1, created=[own("a", 100), own("b", 60)]))
    store.add_pending(pending("old", valid_until=5), [cid("a")])
    store.add_pending(pending("new", valid_until=9), [cid("b")])
    assert store.release_expired(6) == [txid("old")]
    assert [p.txid for p in store.pending_txs()] == [txid("new")]
    assert store.balances() == {"CNY": 100}


def test_escrow_coins_keep_their_role_and_expiry_and_are_not_spendable(store):
    escrow = Coin(
        asset=AssetCode("CNY"),
        amount=Amount(500),
        lock=EscrowLock(payer=KEY, payee=PAYEE, expiry=Height(12)),
    )
    store.apply_block(
        block(
            1,
            created=[
                NewCoin(cid("e1"), escrow, ROLE_ESCROW_PAYER, 0, txid("e")),
                NewCoin(cid("e2"), escrow, ROLE_ESCROW_PAYEE, 3, txid("e")),
            ],
        )
    )
    assert store.balances() == {}
    payer = store.unspent(role=ROLE_ESCROW_PAYER)
    assert [(c.coin_id, c.expiry, c.key_index) for c in payer] == [(cid("e1"), 12, 0)]
    assert store.coin(cid("e2")).coin == escrow


def test_history_is_newest_first_with_limit_and_asset(store):
    rows = [
        HistoryEntry(txid(str(i)), i, "receive", "CNY" if i % 2 else "USD", i, 0)
        for i in range(1, 6)
    ]
    for row in rows:
        store.apply_block(block(row.height, history=[row]))
    assert [e.height for e in store.history()] == [5, 4, 3, 2, 1]
    assert [e.height for e in store.history(limit=2)] == [5, 4]
    assert [e.height for e in store.history(asset="USD")] == [4, 2]
    assert store.history()[0].to_json()["txid"] == txid("5").hex()


def test_everything_survives_a_reopen(tmp_path):
    path = tmp_path / "coins.sqlite"
    with CoinStore.open(path) as store:
        store.add_key(0, KEY)
        store.apply_block(block(7, created=[own("a", 100)]))
        store.add_pending(pending("p"), [cid("a")])
    with CoinStore.open(path) as store:
        assert store.cursor() == (7, h("block 7"))
        assert store.keys() == {KEY: 0}
        reopened_coin = store.coin(cid("a"))
        assert reopened_coin is not None
        assert reopened_coin.pending_txid == txid("p")
        assert store.pending(txid("p")) == pending("p")


def test_a_store_of_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "coins.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(WalletFileError, match="schema version 99") as info:
        CoinStore.open(path)
    assert info.value.code == "wallet.file"
