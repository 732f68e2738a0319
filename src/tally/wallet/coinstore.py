"""The wallet's local store: its coins, keys, history, sync cursor and sent transactions.

One SQLite file (`coins.sqlite`, WAL journal, synchronous writes) in the wallet directory.
Its tables:

| table     | one row per                       | what it holds                                 |
| --------- | --------------------------------- | --------------------------------------------- |
| `coins`   | coin the wallet holds or held     | id, asset, amount, encoded lock, expiry, key  |
|           |                                   | index, role, created / spent height and txid, |
|           |                                   | pending txid                                  |
| `keys`    | receive key derived               | index, x-only public key                      |
| `history` | (transaction, asset) touching us  | height, kind, amounts in and out, memo, time  |
| `cursor`  | (one row)                         | last block height processed and its hash      |
| `pending` | transaction the wallet sent       | txid, raw bytes, kind, memo, valid_until      |
| `roots`   | transaction that made an offline  | its inclusion proof (`RootProof` bytes): the  |
|           | coin of the wallet                | root of the trust chain of those coins        |

A coin's role says how the wallet holds it: `own` (a `KeyLock` of one of its keys, the only
coins it spends alone), `escrow_payer` (a pre-payment it made, reclaimable after expiry),
`escrow_payee` (a pre-payment it may capture until expiry) or `offline` (an `OfflineLock` of
one of its keys: its offline purse, spent by `tally.wallet.offline`; the `expiry` column holds
its unlock height). A coin marked pending is an
input of a transaction sent and not yet settled; it does not count in the balance and is
never selected again until the transaction settles or its window passes.

Each block is applied in one SQLite transaction (new coins, spent coins, history, settled
transactions and the cursor together), so a crash never leaves half a block. Applying a
block twice changes nothing the second time. The schema version is SQLite's
`user_version`; migrations are numbered and forward-only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tally.model.coin import Coin
from tally.model.encoding import decode, encode
from tally.model.lock import EscrowLock, Lock, OfflineLock
from tally.model.types import Amount, AssetCode, CoinId, PublicKey, TxId
from tally.wallet.errors import WalletError
from tally.wallet.sqlite_file import SqliteFile

__all__ = [
    "COINS_FILE",
    "ROLE_OWN",
    "ROLE_ESCROW_PAYER",
    "ROLE_ESCROW_PAYEE",
    "ROLE_OFFLINE",
    "ROLES",
    "StoredCoin",
    "NewCoin",
    "HistoryEntry",
    "PendingTx",
    "BlockChanges",
    "CoinStore",
    "CoinUnavailableError",
]

COINS_FILE: Final = "coins.sqlite"
"""The store's file name in the wallet directory."""
ROLE_OWN: Final = "own"
"""A coin under a `KeyLock` of one of the wallet's keys."""
ROLE_ESCROW_PAYER: Final = "escrow_payer"
"""An escrow coin the wallet pre-paid (it is the payer)."""
ROLE_ESCROW_PAYEE: Final = "escrow_payee"
"""An escrow coin the wallet may capture (it is the payee)."""
ROLE_OFFLINE: Final = "offline"
"""A coin under an `OfflineLock` of one of the wallet's keys: its offline purse."""
ROLES: Final = (ROLE_OWN, ROLE_ESCROW_PAYER, ROLE_ESCROW_PAYEE, ROLE_OFFLINE)

_MIGRATIONS: Final[tuple[str, ...]] = (
    # 0 -> 1: the first layout.
    """
    CREATE TABLE coins (
        coin_id BLOB PRIMARY KEY,
        asset TEXT NOT NULL,
        amount INTEGER NOT NULL,
        lock BLOB NOT NULL,
        expiry INTEGER,
        key_index INTEGER,
        role TEXT NOT NULL CHECK (role IN ('own', 'escrow_payer', 'escrow_payee')),
        created_height INTEGER NOT NULL,
        created_txid BLOB NOT NULL,
        spent_height INTEGER,
        spent_txid BLOB,
        pending_txid BLOB
    );
    CREATE INDEX coins_unspent ON coins (asset, role) WHERE spent_txid IS NULL;
    CREATE INDEX coins_pending ON coins (pending_txid) WHERE pending_txid IS NOT NULL;
    CREATE TABLE keys (
        key_index INTEGER PRIMARY KEY,
        pubkey BLOB NOT NULL UNIQUE
    );
    CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        txid BLOB NOT NULL,
        height INTEGER NOT NULL,
        kind TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount_in INTEGER NOT NULL,
        amount_out INTEGER NOT NULL,
        memo TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        UNIQUE (txid, asset)
    );
    CREATE TABLE cursor (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        height INTEGER NOT NULL,
        block_hash BLOB
    );
    INSERT INTO cursor (id, height, block_hash) VALUES (1, 0, NULL);
    CREATE TABLE pending (
        txid BLOB PRIMARY KEY,
        raw BLOB NOT NULL,
        kind TEXT NOT NULL,
        memo TEXT NOT NULL,
        valid_until INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
    );
    """,
    # 1 -> 2: offline coins (role `offline`) and the roots of their trust chains. SQLite
    # cannot change a CHECK constraint in place, so the coins table is copied.
    """
    CREATE TABLE coins_v2 (
        coin_id BLOB PRIMARY KEY,
        asset TEXT NOT NULL,
        amount INTEGER NOT NULL,
        lock BLOB NOT NULL,
        expiry INTEGER,
        key_index INTEGER,
        role TEXT NOT NULL
            CHECK (role IN ('own', 'escrow_payer', 'escrow_payee', 'offline')),
        created_height INTEGER NOT NULL,
        created_txid BLOB NOT NULL,
        spent_height INTEGER,
        spent_txid BLOB,
        pending_txid BLOB
    );
    INSERT INTO coins_v2 SELECT coin_id, asset, amount, lock, expiry, key_index, role,
        created_height, created_txid, spent_height, spent_txid, pending_txid FROM coins;
    DROP TABLE coins;
    ALTER TABLE coins_v2 RENAME TO coins;
    CREATE INDEX coins_unspent ON coins (asset, role) WHERE spent_txid IS NULL;
    CREATE INDEX coins_pending ON coins (pending_txid) WHERE pending_txid IS NOT NULL;
    CREATE TABLE roots (
        txid BLOB PRIMARY KEY,
        root BLOB NOT NULL
    );
    """,
)

_COIN_COLUMNS: Final = (
    "coin_id, asset, amount, lock, key_index, role, created_height, created_txid, "
    "spent_height, spent_txid, pending_txid"
)
_LOCK_TYPE: Any = Lock  # Any: a union is not a `type[T]` for mypy


class CoinUnavailableError(WalletError):
    """A coin the wallet meant to spend is unknown, already spent or already in a pending send."""

    code = "wallet.coin_unavailable"
    http_status = 409


@dataclass(frozen=True)
class StoredCoin:
    """A coin as the wallet keeps it, with what the wallet knows about it."""

    coin_id: CoinId
    """The coin's id."""
    coin: Coin
    """The coin itself (asset, amount, lock)."""
    role: str
    """How the wallet holds it: `own`, `escrow_payer`, `escrow_payee` or `offline`."""
    key_index: int | None
    """The index of the wallet's key that spends it (the payer's or payee's for escrow, the
    owner's for an offline coin)."""
    created_height: int
    """The height of the block that created it."""
    created_txid: TxId
    """The transaction that created it."""
    spent_height: int | None = None
    """The height of the block that spent it, if spent."""
    spent_txid: TxId | None = None
    """The transaction that spent it, if spent."""
    pending_txid: TxId | None = None
    """The transaction sent and not yet settled that spends it, if any."""

    @property
    def expiry(self) -> int | None:
        """The escrow's expiry height, for an escrow coin."""
        lock = self.coin.lock
        return lock.expiry if isinstance(lock, EscrowLock) else None

    @property
    def unlock_height(self) -> int | None:
        """The height after which an offline coin may be spent online freely."""
        lock = self.coin.lock
        return lock.unlock_height if isinstance(lock, OfflineLock) else None

    def to_json(self) -> dict[str, Any]:
        """A JSON view: hex ids, the amount as a string."""
        return {
            "coin_id": self.coin_id.hex(),
            "asset": self.coin.asset,
            "amount": str(self.coin.amount),
            "role": self.role,
            "key_index": self.key_index,
            "expiry": self.expiry,
            "unlock_height": self.unlock_height,
            "created_height": self.created_height,
            "pending_txid": self.pending_txid.hex() if self.pending_txid else None,
        }


@dataclass(frozen=True)
class NewCoin:
    """A coin a block creates for the wallet."""

    coin_id: CoinId
    """The coin's id."""
    coin: Coin
    """The coin."""
    role: str
    """`own`, `escrow_payer`, `escrow_payee` or `offline`."""
    key_index: int
    """The wallet key that spends it."""
    txid: TxId
    """The creating transaction."""


@dataclass(frozen=True)
class HistoryEntry:
    """What one transaction did to the wallet's holdings of one asset.

    `amount_in` and `amount_out` are the changes to the wallet's own spendable coins (escrow
    coins it pre-paid count as out when made and in when they come back), so that the sum of
    `amount_in - amount_out` over the history is the balance.
    """

    txid: TxId
    """The transaction."""
    height: int
    """The height of its block."""
    kind: str
    """`receive`, `pay`, `merge`, `split`, `preauth`, `capture`, `reclaim`, or for the
    offline purse `offline_fund`, `offline_pay`, `offline_receive`, `offline_unlock`,
    `offline_sweep`."""
    asset: str
    """The asset."""
    amount_in: int
    """Minor units that came to the wallet's own coins."""
    amount_out: int
    """Minor units that left the wallet's own coins."""
    memo: str = ""
    """A note the wallet kept with a payment it made."""
    time_ms: int = 0
    """The block's time, in milliseconds since the Unix epoch."""

    def to_json(self) -> dict[str, Any]:
        """A JSON view: hex txid, amounts as strings."""
        return {
            "txid": self.txid.hex(),
            "height": self.height,
            "kind": self.kind,
            "asset": self.asset,
            "amount_in": str(self.amount_in),
            "amount_out": str(self.amount_out),
            "memo": self.memo,
            "time_ms": self.time_ms,
        }


@dataclass(frozen=True)
class PendingTx:
    """A transaction the wallet sent that no block has settled yet."""

    txid: TxId
    """Its id."""
    raw: bytes
    """Its canonical bytes, to send again if needed."""
    kind: str
    """What it does, as a history kind (`pay`, `preauth`, …)."""
    memo: str
    """The wallet's note."""
    valid_until: int
    """The last height it may be committed at; after that its inputs are free again."""
    created_ms: int
    """When it was made."""


@dataclass
class BlockChanges:
    """Everything one block changes in the store, applied in one transaction."""

    height: int
    """The block's height; the cursor moves to it."""
    block_hash: bytes
    """The block's hash."""
    created: list[NewCoin] = field(default_factory=list)
    """Coins the block creates for the wallet."""
    spent: list[tuple[CoinId, TxId]] = field(default_factory=list)
    """The wallet's coins the block spends, with the spending transaction."""
    history: list[HistoryEntry] = field(default_factory=list)
    """History rows for the block's transactions that touched the wallet."""
    settled: list[TxId] = field(default_factory=list)
    """Transactions the wallet sent that the block ordered (accepted or rejected)."""
    offline_txids: list[TxId] = field(default_factory=list)
    """Transactions of the block that create offline coins of the wallet, each once."""
    roots: list[tuple[TxId, bytes]] = field(default_factory=list)
    """Inclusion proofs (`RootProof` bytes) of those transactions, once fetched."""


def _row_to_coin(row: sqlite3.Row) -> StoredCoin:
    lock: Lock = decode(row["lock"], _LOCK_TYPE)
    return StoredCoin(
        coin_id=CoinId(row["coin_id"]),
        coin=Coin(asset=AssetCode(row["asset"]), amount=Amount(row["amount"]), lock=lock),
        role=row["role"],
        key_index=row["key_index"],
        created_height=row["created_height"],
        created_txid=TxId(row["created_txid"]),
        spent_height=row["spent_height"],
        spent_txid=TxId(row["spent_txid"]) if row["spent_txid"] is not None else None,
        pending_txid=TxId(row["pending_txid"]) if row["pending_txid"] is not None else None,
    )


def _row_to_history(row: sqlite3.Row) -> HistoryEntry:
    return HistoryEntry(
        txid=TxId(row["txid"]),
        height=row["height"],
        kind=row["kind"],
        asset=row["asset"],
        amount_in=row["amount_in"],
        amount_out=row["amount_out"],
        memo=row["memo"],
        time_ms=row["time_ms"],
    )


def _row_to_pending(row: sqlite3.Row) -> PendingTx:
    return PendingTx(
        txid=TxId(row["txid"]),
        raw=row["raw"],
        kind=row["kind"],
        memo=row["memo"],
        valid_until=row["valid_until"],
        created_ms=row["created_ms"],
    )


class CoinStore(SqliteFile):
    """The wallet's SQLite store; safe to share between threads (one lock serialises use).

    Open it with `CoinStore.open`; close it with `close()` or use it as a context manager.
    """

    MIGRATIONS = tuple(_MIGRATIONS)

    # -- keys ----------------------------------------------------------------------------

    def add_key(self, index: int, public_key: bytes) -> None:
        """Remember that the wallet derived key `index` (idempotent)."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO keys (key_index, pubkey) VALUES (?, ?)",
                (index, bytes(public_key)),
            )

    def keys(self) -> dict[PublicKey, int]:
        """Every key the wallet derived, public key to index."""
        rows = self._query("SELECT key_index, pubkey FROM keys")
        return {PublicKey(row["pubkey"]): row["key_index"] for row in rows}

    def next_key_index(self) -> int:
        """One past the highest key index recorded (0 when there is none)."""
        row = self._query("SELECT MAX(key_index) AS top FROM keys")[0]
        return 0 if row["top"] is None else int(row["top"]) + 1

    # -- cursor --------------------------------------------------------------------------

    def cursor(self) -> tuple[int, bytes | None]:
        """The last block height processed and its hash (None before the first block)."""
        row = self._query("SELECT height, block_hash FROM cursor WHERE id = 1")[0]
        return int(row["height"]), row["block_hash"]

    def set_cursor(self, height: int, block_hash: bytes | None) -> None:
        """Move the cursor without applying blocks (a new wallet starts at the tip)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE cursor SET height = ?, block_hash = ? WHERE id = 1", (height, block_hash)
            )

    # -- coins ---------------------------------------------------------------------------

    def coin(self, coin_id: bytes) -> StoredCoin | None:
        """The coin with this id, spent or not, if the wallet ever held it."""
        rows = self._query(
            f"SELECT {_COIN_COLUMNS} FROM coins WHERE coin_id = ?",  # noqa: S608 - constant columns
            (bytes(coin_id),),
        )
        return _row_to_coin(rows[0]) if rows else None

    def unspent(self, asset: str | None = None, role: str | None = None) -> list[StoredCoin]:
        """The unspent coins (pending ones included), by asset and role if given.

        Ordered by asset, amount (largest first) and coin id.
        """
        sql = f"SELECT {_COIN_COLUMNS} FROM coins WHERE spent_txid IS NULL"  # noqa: S608
        parameters: list[Any] = []
        if asset is not None:
            sql += " AND asset = ?"
            parameters.append(asset)
        if role is not None:
            sql += " AND role = ?"
            parameters.append(role)
        sql += " ORDER BY asset, amount DESC, coin_id"
        return [_row_to_coin(row) for row in self._query(sql, parameters)]

    def spendable(self, asset: str | None = None) -> list[StoredCoin]:
        """The wallet's own unspent coins that no pending transaction spends."""
        return [coin for coin in self.unspent(asset, ROLE_OWN) if coin.pending_txid is None]

    def balances(self) -> dict[str, int]:
        """The sum of the spendable coins per asset (assets with none are left out)."""
        totals: dict[str, int] = {}
        for coin in self.spendable():
            totals[coin.coin.asset] = totals.get(coin.coin.asset, 0) + coin.coin.amount
        return totals

    # -- pending transactions ------------------------------------------------------------

    def add_pending(self, pending: PendingTx, inputs: Sequence[bytes]) -> None:
        """Record a transaction about to be sent and mark its inputs pending, atomically.

        Raises:
            CoinUnavailableError: an input is not one of the wallet's unspent coins, or a
                pending transaction already spends it; nothing was recorded.
        """
        with self._transaction() as db:
            for coin_id in inputs:
                row = db.execute(
                    "SELECT spent_txid, pending_txid FROM coins WHERE coin_id = ?",
                    (bytes(coin_id),),
                ).fetchone()
                if row is None or row["spent_txid"] is not None or row["pending_txid"] is not None:
                    state = (
                        "unknown"
                        if row is None
                        else "spent"
                        if row["spent_txid"] is not None
                        else "already pending"
                    )
                    raise CoinUnavailableError(
                        f"coin {bytes(coin_id).hex()} cannot be spent: {state}",
                        coin_id=bytes(coin_id).hex(),
                        state=state,
                    )
                db.execute(
                    "UPDATE coins SET pending_txid = ? WHERE coin_id = ?",
                    (pending.txid, bytes(coin_id)),
                )
            db.execute(
                "INSERT INTO pending (txid, raw, kind, memo, valid_until, created_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    pending.txid,
                    pending.raw,
                    pending.kind,
                    pending.memo,
                    pending.valid_until,
                    pending.created_ms,
                ),
            )

    def release_pending(self, txid: bytes) -> None:
        """Forget a sent transaction that will not be committed: its inputs are free again."""
        with self._transaction() as db:
            _release(db, txid)

    def pending(self, txid: bytes) -> PendingTx | None:
        """The pending transaction `txid`, if the wallet sent it and it is not settled."""
        rows = self._query("SELECT * FROM pending WHERE txid = ?", (bytes(txid),))
        return _row_to_pending(rows[0]) if rows else None

    def pending_txs(self) -> list[PendingTx]:
        """Every pending transaction, oldest first."""
        rows = self._query("SELECT * FROM pending ORDER BY created_ms, txid")
        return [_row_to_pending(row) for row in rows]

    def release_expired(self, height: int) -> list[TxId]:
        """Release the pending transactions whose window ended before `height`.

        Call it only once every block up to `height` has been applied: a transaction those
        blocks did not settle can then never be committed.

        Returns:
            The ids of the transactions released.
        """
        with self._transaction() as db:
            rows = db.execute(
                "SELECT txid FROM pending WHERE valid_until < ?", (height,)
            ).fetchall()
            for row in rows:
                _release(db, row["txid"])
        return [TxId(row["txid"]) for row in rows]

    # -- blocks and history ----------------------------------------------------------------

    def apply_block(self, changes: BlockChanges) -> None:
        """Apply one block's changes and move the cursor to it, in one transaction."""
        with self._transaction() as db:
            for new in changes.created:
                lock = new.coin.lock
                db.execute(
                    "INSERT OR IGNORE INTO coins (coin_id, asset, amount, lock, expiry, "
                    "key_index, role, created_height, created_txid) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        bytes(new.coin_id),
                        new.coin.asset,
                        new.coin.amount,
                        encode(lock),
                        _expiry_of(lock),
                        new.key_index,
                        new.role,
                        changes.height,
                        bytes(new.txid),
                    ),
                )
            for coin_id, txid in changes.spent:
                db.execute(
                    "UPDATE coins SET spent_height = ?, spent_txid = ?, pending_txid = NULL "
                    "WHERE coin_id = ? AND spent_txid IS NULL",
                    (changes.height, bytes(txid), bytes(coin_id)),
                )
            for entry in changes.history:
                db.execute(
                    "INSERT OR IGNORE INTO history (txid, height, kind, asset, amount_in, "
                    "amount_out, memo, time_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        bytes(entry.txid),
                        entry.height,
                        entry.kind,
                        entry.asset,
                        entry.amount_in,
                        entry.amount_out,
                        entry.memo,
                        entry.time_ms,
                    ),
                )
            for txid in changes.settled:
                _release(db, txid)
            for txid, root in changes.roots:
                db.execute(
                    "INSERT OR IGNORE INTO roots (txid, root) VALUES (?, ?)",
                    (bytes(txid), bytes(root)),
                )
            db.execute(
                "UPDATE cursor SET height = ?, block_hash = ? WHERE id = 1",
                (changes.height, bytes(changes.block_hash)),
            )

    def offline_coins(self, asset: str | None = None) -> list[StoredCoin]:
        """The unspent offline coins (role `offline`), pending ones included."""
        return self.unspent(asset, ROLE_OFFLINE)

    def root(self, txid: bytes) -> bytes | None:
        """The inclusion proof (`RootProof` bytes) kept for transaction `txid`, if any."""
        rows = self._query("SELECT root FROM roots WHERE txid = ?", (bytes(txid),))
        return bytes(rows[0]["root"]) if rows else None

    def add_root(self, txid: bytes, root: bytes) -> None:
        """Keep the inclusion proof of `txid` (idempotent), as sync does for offline coins."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO roots (txid, root) VALUES (?, ?)", (bytes(txid), bytes(root))
            )

    def history(self, limit: int | None = None, asset: str | None = None) -> list[HistoryEntry]:
        """History rows, newest first.

        Args:
            limit: The most rows to return; all when None.
            asset: Only rows of this asset, if given.
        """
        sql = "SELECT * FROM history"
        parameters: list[Any] = []
        if asset is not None:
            sql += " WHERE asset = ?"
            parameters.append(asset)
        sql += " ORDER BY height DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            parameters.append(max(0, limit))
        return [_row_to_history(row) for row in self._query(sql, parameters)]


def _expiry_of(lock: Lock) -> int | None:
    """What the `expiry` column holds: an escrow's expiry, an offline coin's unlock height."""
    if isinstance(lock, EscrowLock):
        return int(lock.expiry)
    if isinstance(lock, OfflineLock):
        return int(lock.unlock_height)
    return None


def _release(db: sqlite3.Connection, txid: bytes) -> None:
    """Free the unspent inputs of a sent transaction and forget the transaction."""
    db.execute(
        "UPDATE coins SET pending_txid = NULL WHERE pending_txid = ? AND spent_txid IS NULL",
        (bytes(txid),),
    )
    db.execute("DELETE FROM pending WHERE txid = ?", (bytes(txid),))
