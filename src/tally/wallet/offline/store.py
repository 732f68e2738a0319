"""What a device keeps for offline payments: its trust anchor, limits, coins, payments, hellos.

One SQLite file (`offline.sqlite`, WAL journal, synchronous writes) beside the wallet's coin
store. Its tables:

| table      | one row per                          | what it holds                               |
| ---------- | ------------------------------------ | ------------------------------------------- |
| `settings` | (one row)                            | the genesis (trust anchor), the limits      |
| `coins`    | offline coin the device holds or held| coin, owner key index, its trust chain,     |
|            |                                      | where it came from, the hop that spent it   |
| `payments` | payment sent or received offline     | the payment's bytes, amount, settlement     |
|            |                                      | status, code, and a double-spend proof      |
| `hellos`   | hello the device wrote               | nonce, role, the receive key, when used     |
| `barred`   | key barred for a double spend        | the proof                                   |

A coin here is spendable offline while `spent_by` is empty. Each operation writes in one
SQLite transaction, so a payment is recorded together with the coins it spends and makes,
and a receipt together with the hello it consumes. The schema version is SQLite's
`user_version`; migrations are numbered and forward-only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from tally.model.coin import Coin
from tally.model.encoding import decode, encode
from tally.model.genesis import Genesis
from tally.model.lock import Lock
from tally.model.types import Amount, AssetCode, CoinId, PublicKey, TxId
from tally.wallet.offline.errors import OfflineReplayError
from tally.wallet.offline.limits import DEFAULT_LIMITS, OfflineLimits
from tally.wallet.offline.messages import OfflinePayment, TrustChain, decode_payment, encode_message
from tally.wallet.offline.purse import OfflineCoin
from tally.wallet.sqlite_file import SqliteFile

__all__ = [
    "OFFLINE_FILE",
    "ORIGIN_PURSE",
    "ORIGIN_RECEIVED",
    "ORIGIN_CHANGE",
    "SENT",
    "RECEIVED",
    "UNSETTLED",
    "SETTLED",
    "DOUBLE_SPEND",
    "FAILED",
    "StoredOfflineCoin",
    "PaymentRecord",
    "HelloRecord",
    "OfflineStore",
]

OFFLINE_FILE: Final = "offline.sqlite"
"""The store's file name in the wallet directory."""
ORIGIN_PURSE: Final = "purse"
"""A coin the wallet funded (or that reached the ledger), proved by a root alone."""
ORIGIN_RECEIVED: Final = "received"
"""A coin paid to the device offline."""
ORIGIN_CHANGE: Final = "change"
"""The change of a payment the device made offline."""
SENT: Final = "sent"
"""A payment the device made."""
RECEIVED: Final = "received"
"""A payment the device received."""
UNSETTLED: Final = "unsettled"
"""Not yet on the ledger."""
SETTLED: Final = "settled"
"""Every hop of its chain is applied on the ledger."""
DOUBLE_SPEND: Final = "double_spend"
"""A hop of its chain was a double spend; the payment holds the ledger's proof."""
FAILED: Final = "failed"
"""The ledger refused a hop of its chain for another reason (its code is kept)."""

_MIGRATIONS: Final[tuple[str, ...]] = (
    # 0 -> 1: the first layout.
    """
    CREATE TABLE settings (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        genesis BLOB,
        limits BLOB NOT NULL
    );
    CREATE TABLE coins (
        coin_id BLOB PRIMARY KEY,
        asset TEXT NOT NULL,
        amount INTEGER NOT NULL,
        lock BLOB NOT NULL,
        key_index INTEGER NOT NULL,
        chain BLOB NOT NULL,
        origin TEXT NOT NULL CHECK (origin IN ('purse', 'received', 'change')),
        spent_by BLOB,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX coins_unspent ON coins (asset) WHERE spent_by IS NULL;
    CREATE TABLE payments (
        payment_id BLOB PRIMARY KEY,
        direction TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
        asset TEXT NOT NULL,
        amount INTEGER NOT NULL,
        counterparty BLOB NOT NULL,
        raw BLOB NOT NULL,
        deadline INTEGER NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('unsettled', 'settled', 'double_spend', 'failed')),
        code TEXT,
        proof BLOB,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE hellos (
        nonce BLOB PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('payer', 'payee')),
        key_index INTEGER,
        raw BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        used_by BLOB
    );
    CREATE TABLE barred (
        owner BLOB PRIMARY KEY,
        proof BLOB NOT NULL
    );
    """,
)

_COIN_COLUMNS: Final = "coin_id, asset, amount, lock, key_index, chain, origin, spent_by"
_PAYMENT_COLUMNS: Final = (
    "payment_id, direction, asset, amount, counterparty, raw, deadline, status, code, proof, "
    "created_ms, updated_ms"
)
_LOCK_TYPE: Any = Lock  # Any: a union is not a `type[T]` for mypy


@dataclass(frozen=True)
class StoredOfflineCoin:
    """An offline coin as the device keeps it."""

    offline: OfflineCoin
    """The coin, its owner key index and its chain."""
    origin: str
    """`purse`, `received` or `change`."""
    spent_by: TxId | None
    """The hop (or ledger transaction) that spent it, if any."""

    @property
    def coin_id(self) -> CoinId:
        """The coin's id."""
        return self.offline.coin_id

    def to_json(self) -> dict[str, Any]:
        """A JSON view: hex ids, the amount as a string."""
        coin = self.offline.coin
        return {
            "coin_id": self.coin_id.hex(),
            "asset": coin.asset,
            "amount": str(coin.amount),
            "unlock_height": self.offline.unlock_height,
            "hops": self.offline.hops,
            "origin": self.origin,
            "spent_by": self.spent_by.hex() if self.spent_by else None,
        }


@dataclass(frozen=True)
class PaymentRecord:
    """A payment the device sent or received offline, and what became of it."""

    payment_id: TxId
    """The id of its last hop."""
    direction: str
    """`sent` or `received`."""
    asset: str
    """The asset."""
    amount: int
    """The amount, in minor units."""
    counterparty: PublicKey
    """The payee's key (sent) or the payer's (received)."""
    payment: OfflinePayment
    """The payment itself, chain included."""
    deadline: int
    """The last height at which it can be settled safely."""
    status: str
    """`unsettled`, `settled`, `double_spend` or `failed`."""
    code: str | None
    """The ledger's code for a hop that was not applied."""
    proof: bytes | None
    """The encoded `DoubleSpendProof`, for a double spend."""
    created_ms: int
    """When it was made or received."""
    updated_ms: int
    """When its status last changed."""

    def to_json(self) -> dict[str, Any]:
        """A JSON view: hex ids, the amount as a string."""
        return {
            "payment_id": self.payment_id.hex(),
            "direction": self.direction,
            "asset": self.asset,
            "amount": str(self.amount),
            "counterparty": self.counterparty.hex(),
            "hops": len(self.payment.chain.hops),
            "deadline": self.deadline,
            "status": self.status,
            "code": self.code,
            "proof": self.proof.hex() if self.proof else None,
        }


@dataclass(frozen=True)
class HelloRecord:
    """A hello the device wrote."""

    nonce: bytes
    """Its nonce."""
    role: str
    """`payer` or `payee`."""
    key_index: int | None
    """The receive key's index (a payee's hello)."""
    raw: bytes
    """The hello's bytes."""
    used_by: TxId | None
    """The payment that consumed it, once one did."""


def _row_to_coin(row: sqlite3.Row) -> StoredOfflineCoin:
    lock = decode(row["lock"], _LOCK_TYPE)
    coin = Coin(asset=AssetCode(row["asset"]), amount=Amount(row["amount"]), lock=lock)
    return StoredOfflineCoin(
        offline=OfflineCoin(
            coin_id=CoinId(row["coin_id"]),
            coin=coin,
            key_index=row["key_index"],
            chain=decode(row["chain"], TrustChain),
        ),
        origin=row["origin"],
        spent_by=TxId(row["spent_by"]) if row["spent_by"] is not None else None,
    )


def _row_to_payment(row: sqlite3.Row) -> PaymentRecord:
    return PaymentRecord(
        payment_id=TxId(row["payment_id"]),
        direction=row["direction"],
        asset=row["asset"],
        amount=row["amount"],
        counterparty=PublicKey(row["counterparty"]),
        payment=decode_payment(row["raw"]),
        deadline=row["deadline"],
        status=row["status"],
        code=row["code"],
        proof=row["proof"],
        created_ms=row["created_ms"],
        updated_ms=row["updated_ms"],
    )


class OfflineStore(SqliteFile):
    """The device's offline SQLite store; one lock serialises its use between threads."""

    MIGRATIONS = tuple(_MIGRATIONS)

    def _after_migration(self, db: sqlite3.Connection, number: int) -> None:
        if number == 0:
            db.execute(
                "INSERT INTO settings (id, genesis, limits) VALUES (1, NULL, ?)",
                (encode(DEFAULT_LIMITS),),
            )

    # -- settings --------------------------------------------------------------------------

    def genesis(self) -> Genesis | None:
        """The genesis the device checks certificates against, if it was given one."""
        raw = self._query("SELECT genesis FROM settings WHERE id = 1")[0]["genesis"]
        return None if raw is None else decode(raw, Genesis)

    def set_genesis(self, genesis: Genesis) -> None:
        """Keep `genesis` as the device's trust anchor."""
        with self._transaction() as db:
            db.execute("UPDATE settings SET genesis = ? WHERE id = 1", (encode(genesis),))

    def limits(self) -> OfflineLimits:
        """The device's offline limits."""
        raw = self._query("SELECT limits FROM settings WHERE id = 1")[0]["limits"]
        return decode(raw, OfflineLimits)

    def set_limits(self, limits: OfflineLimits) -> None:
        """Replace the device's offline limits."""
        with self._transaction() as db:
            db.execute("UPDATE settings SET limits = ? WHERE id = 1", (encode(limits),))

    # -- coins -----------------------------------------------------------------------------

    def coin(self, coin_id: bytes) -> StoredOfflineCoin | None:
        """The offline coin with this id, spent or not."""
        rows = self._query(
            f"SELECT {_COIN_COLUMNS} FROM coins WHERE coin_id = ?",  # noqa: S608 - constant columns
            (bytes(coin_id),),
        )
        return _row_to_coin(rows[0]) if rows else None

    def coins(self, *, unspent_only: bool = True) -> list[StoredOfflineCoin]:
        """The offline coins, unspent ones only by default; by asset, amount (largest first)."""
        sql = f"SELECT {_COIN_COLUMNS} FROM coins"  # noqa: S608 - constant columns
        if unspent_only:
            sql += " WHERE spent_by IS NULL"
        sql += " ORDER BY asset, amount DESC, coin_id"
        return [_row_to_coin(row) for row in self._query(sql)]

    def add_coin(self, coin: OfflineCoin, origin: str, now_ms: int) -> None:
        """Keep a coin the device may spend offline (idempotent: a known coin is left as it is)."""
        with self._transaction() as db:
            _insert_coin(db, coin, origin, now_ms)

    def replace_chain(self, coin_id: bytes, chain: TrustChain, origin: str) -> None:
        """Give an unspent coin a new (shorter) chain, once it is on the ledger."""
        with self._transaction() as db:
            db.execute(
                "UPDATE coins SET chain = ?, origin = ? WHERE coin_id = ? AND spent_by IS NULL",
                (encode(chain), origin, bytes(coin_id)),
            )

    def mark_spent(self, coin_id: bytes, spender: bytes) -> None:
        """Record that a ledger transaction spent a coin (idempotent)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE coins SET spent_by = ? WHERE coin_id = ? AND spent_by IS NULL",
                (bytes(spender), bytes(coin_id)),
            )

    # -- payments --------------------------------------------------------------------------

    def record_sent(
        self,
        payment: OfflinePayment,
        payment_id: TxId,
        spent: Sequence[bytes],
        change: OfflineCoin | None,
        hello: HelloRecord,
        deadline: int,
        now_ms: int,
    ) -> None:
        """Record a payment made: its inputs spent, its change kept, the payer's hello, at once.

        Raises:
            OfflineReplayError: an input is already spent (nothing was recorded).
        """
        with self._transaction() as db:
            for coin_id in spent:
                updated = db.execute(
                    "UPDATE coins SET spent_by = ? WHERE coin_id = ? AND spent_by IS NULL",
                    (payment_id, bytes(coin_id)),
                ).rowcount
                if updated != 1:
                    raise OfflineReplayError(
                        f"coin {bytes(coin_id).hex()} is already spent offline",
                        coin_id=bytes(coin_id).hex(),
                    )
            if change is not None:
                _insert_coin(db, change, ORIGIN_CHANGE, now_ms)
            _insert_hello(db, hello, now_ms)
            _insert_payment(db, payment, payment_id, SENT, payment.payee, deadline, now_ms)

    def record_received(
        self,
        payment: OfflinePayment,
        payment_id: TxId,
        coin: OfflineCoin,
        payer: PublicKey,
        nonce: bytes,
        deadline: int,
        now_ms: int,
    ) -> None:
        """Record a payment received: the hello used up, the coin kept, at once.

        Raises:
            OfflineReplayError: the hello was already used (nothing was recorded).
        """
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE hellos SET used_by = ? WHERE nonce = ? AND used_by IS NULL",
                (payment_id, bytes(nonce)),
            ).rowcount
            if updated != 1:
                raise OfflineReplayError(
                    "this device's hello was already answered by another payment",
                    nonce=bytes(nonce).hex(),
                )
            _insert_coin(db, coin, ORIGIN_RECEIVED, now_ms)
            _insert_payment(db, payment, payment_id, RECEIVED, payer, deadline, now_ms)

    def import_payment(self, record: PaymentRecord) -> None:
        """Copy a payment record from another store (migration); a known one is left as it is."""
        with self._transaction() as db:
            db.execute(
                f"INSERT OR IGNORE INTO payments ({_PAYMENT_COLUMNS}) "  # noqa: S608 - constant
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.payment_id,
                    record.direction,
                    record.asset,
                    record.amount,
                    record.counterparty,
                    encode_message(record.payment),
                    record.deadline,
                    record.status,
                    record.code,
                    record.proof,
                    record.created_ms,
                    record.updated_ms,
                ),
            )

    def payments(
        self, status: str | None = None, direction: str | None = None
    ) -> list[PaymentRecord]:
        """Payments, oldest first, by status and direction if given."""
        sql = f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE 1 = 1"  # noqa: S608 - constant
        parameters: list[Any] = []
        if status is not None:
            sql += " AND status = ?"
            parameters.append(status)
        if direction is not None:
            sql += " AND direction = ?"
            parameters.append(direction)
        sql += " ORDER BY created_ms, payment_id"
        return [_row_to_payment(row) for row in self._query(sql, parameters)]

    def payment(self, payment_id: bytes) -> PaymentRecord | None:
        """The payment with this id."""
        rows = self._query(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE payment_id = ?",  # noqa: S608
            (bytes(payment_id),),
        )
        return _row_to_payment(rows[0]) if rows else None

    def unsettled_total(self, direction: str) -> int:
        """The sum of the unsettled payments in one direction."""
        row = self._query(
            "SELECT COALESCE(SUM(amount), 0) AS total FROM payments "
            "WHERE status = 'unsettled' AND direction = ?",
            (direction,),
        )[0]
        return int(row["total"])

    def set_status(
        self,
        payment_id: bytes,
        status: str,
        now_ms: int,
        *,
        code: str | None = None,
        proof: bytes | None = None,
    ) -> None:
        """Record what settlement made of a payment."""
        with self._transaction() as db:
            db.execute(
                "UPDATE payments SET status = ?, code = ?, proof = COALESCE(?, proof), "
                "updated_ms = ? WHERE payment_id = ?",
                (status, code, proof, now_ms, bytes(payment_id)),
            )

    # -- hellos ----------------------------------------------------------------------------

    def add_hello(self, hello: HelloRecord, now_ms: int) -> None:
        """Remember a hello the device wrote."""
        with self._transaction() as db:
            _insert_hello(db, hello, now_ms)

    def hello(self, nonce: bytes) -> HelloRecord | None:
        """The hello with this nonce, if the device wrote it."""
        rows = self._query(
            "SELECT nonce, role, key_index, raw, used_by FROM hellos WHERE nonce = ?",
            (bytes(nonce),),
        )
        if not rows:
            return None
        row = rows[0]
        return HelloRecord(
            nonce=row["nonce"],
            role=row["role"],
            key_index=row["key_index"],
            raw=row["raw"],
            used_by=TxId(row["used_by"]) if row["used_by"] is not None else None,
        )

    # -- barred keys -----------------------------------------------------------------------

    def add_barred(self, owner: bytes, proof: bytes) -> None:
        """Remember that `owner` is barred, with the proof (idempotent)."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO barred (owner, proof) VALUES (?, ?)",
                (bytes(owner), bytes(proof)),
            )

    def barred(self) -> dict[PublicKey, bytes]:
        """Every key the device knows to be barred, with its proof."""
        rows = self._query("SELECT owner, proof FROM barred")
        return {PublicKey(row["owner"]): row["proof"] for row in rows}


def _insert_coin(db: sqlite3.Connection, coin: OfflineCoin, origin: str, now_ms: int) -> None:
    db.execute(
        "INSERT OR IGNORE INTO coins (coin_id, asset, amount, lock, key_index, chain, origin, "
        "spent_by, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
        (
            bytes(coin.coin_id),
            coin.coin.asset,
            coin.coin.amount,
            encode(coin.coin.lock),
            coin.key_index,
            encode(coin.chain),
            origin,
            now_ms,
        ),
    )


def _insert_hello(db: sqlite3.Connection, hello: HelloRecord, now_ms: int) -> None:
    db.execute(
        "INSERT INTO hellos (nonce, role, key_index, raw, created_ms, used_by) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (bytes(hello.nonce), hello.role, hello.key_index, hello.raw, now_ms, hello.used_by),
    )


def _insert_payment(
    db: sqlite3.Connection,
    payment: OfflinePayment,
    payment_id: TxId,
    direction: str,
    counterparty: PublicKey,
    deadline: int,
    now_ms: int,
) -> None:
    try:
        db.execute(
            f"INSERT INTO payments ({_PAYMENT_COLUMNS}) "  # noqa: S608 - constant columns
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'unsettled', NULL, NULL, ?, ?)",
            (
                payment_id,
                direction,
                payment.asset,
                payment.amount,
                bytes(counterparty),
                encode_message(payment),
                deadline,
                now_ms,
                now_ms,
            ),
        )
    except sqlite3.IntegrityError:
        raise OfflineReplayError(
            f"payment {payment_id.hex()} is already recorded", payment_id=payment_id.hex()
        ) from None
