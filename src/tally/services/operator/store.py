"""The operator's book: customers, their keys and deposits, the journal, reserved coins.

SQLAlchemy Core over SQLite or PostgreSQL; every method is one short database transaction,
never held open across a call to the node or the issuer. The journal is the heart of it:

- a row is written, `pending`, before its transaction goes to the ledger, in the same
  database transaction as the deposit it debits (a load) and the coins it reserves;
- it becomes `done` or `failed` in one database transaction together with what that
  settles (an unload's credit, a failed load's refund), and only if it is still pending,
  so that two threads settling the same row cannot both credit;
- `(scope, idempotency_key)` is unique, so the same key can never make a second row, and a
  transaction id belongs to one row that is pending or done, so the same transaction can
  never be credited twice (a row that failed for good lets its transaction id go).

Reservations keep a pending row's input coins out of every other selection until the row is
settled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tally.model.rejection import Rejection
from tally.model.types import MAX_AMOUNT
from tally.services.common.amounts import amount_to_json
from tally.services.common.clock import now_ms
from tally.services.common.db import inserted_id, make_engine, row_as
from tally.wallet.errors import InsufficientFundsError

__all__ = [
    "PENDING",
    "DONE",
    "FAILED",
    "metadata",
    "customers",
    "customer_keys",
    "journal",
    "reservations",
    "KeyTakenError",
    "DepositOverflowError",
    "EntryExistsError",
    "TxAlreadyJournaledError",
    "CustomerRow",
    "JournalRow",
    "OperatorStore",
]

PENDING: Final = "pending"
DONE: Final = "done"
FAILED: Final = "failed"

metadata = sa.MetaData()

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("tier", sa.Integer, nullable=False),
    sa.Column("wallet_key", sa.String(64), unique=True, nullable=True),
    sa.Column("token_hash", sa.String(64), unique=True, nullable=True),
    sa.Column("hosted_index", sa.Integer, unique=True, nullable=True),
    sa.Column("hosted_key", sa.String(64), unique=True, nullable=True),
    sa.Column("deposit", sa.BigInteger, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.CheckConstraint("deposit >= 0", name="deposit_not_negative"),
)
"""One row per customer: self-custody (`wallet_key`) or hosted (`token_hash`, `hosted_*`)."""

customer_keys = sa.Table(
    "customer_keys",
    metadata,
    sa.Column("pubkey", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)
"""The keys a customer's coins sit under: registered, loaded to, unloaded from, or hosted.
A key belongs to one customer at most."""

journal = sa.Table(
    "journal",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("scope", sa.String(40), nullable=False),
    sa.Column("idempotency_key", sa.String(128), nullable=False),
    sa.Column("customer_id", sa.ForeignKey("customers.id"), nullable=True, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(8), nullable=False, index=True),
    sa.Column("tx", sa.LargeBinary, nullable=True),
    sa.Column("txid", sa.String(64), unique=True, nullable=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("response", sa.Text, nullable=True),
    sa.Column("http_status", sa.Integer, nullable=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("scope", "idempotency_key", name="journal_scope_key"),
)
"""Every movement of money, written before it happens and settled after."""

reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("coin_id", sa.String(64), primary_key=True),
    sa.Column("journal_id", sa.ForeignKey("journal.id"), nullable=False, index=True),
)
"""Coins a pending journal row spends; no other selection takes them."""


class KeyTakenError(Rejection):
    """A key is already another customer's (registered, loaded to, or a hosted key)."""

    code = "operator.key_taken"
    http_status = 409


class DepositOverflowError(Rejection):
    """Crediting the amount would take a deposit over 2^63-1 minor units."""

    code = "operator.deposit_overflow"
    http_status = 422


class EntryExistsError(Exception):
    """A journal row with this scope and idempotency key exists (made by a concurrent call)."""


class TxAlreadyJournaledError(Exception):
    """A journal row for this transaction id exists, under another idempotency key."""

    def __init__(self, txid: str, idempotency_key: str) -> None:
        super().__init__(f"transaction {txid} is journaled under key {idempotency_key!r}")
        self.txid = txid
        self.idempotency_key = idempotency_key


@dataclass(frozen=True)
class CustomerRow:
    """A customer as the book holds it."""

    id: int
    name: str
    tier: int
    wallet_key: str | None
    """Hex identity key of a self-custody wallet; None for a hosted customer."""
    token_hash: str | None
    """SHA-256 of a hosted customer's bearer token; None for self-custody."""
    hosted_index: int | None
    """Index of the hosted key under the operator's hosted seed."""
    hosted_key: str | None
    """Hex public key of the hosted wallet."""
    deposit: int
    """The deposit account's balance, minor units."""
    created_ms: int

    @property
    def is_hosted(self) -> bool:
        """Whether the operator holds this customer's wallet key."""
        return self.hosted_key is not None


@dataclass(frozen=True)
class JournalRow:
    """One movement of money and how it ended."""

    id: int
    scope: str
    idempotency_key: str
    customer_id: int | None
    kind: str
    """load, unload, pay, deposit, issuance, redeem, split or merge."""
    amount: int
    status: str
    """pending, done or failed."""
    tx: bytes | None
    """The signed transaction's canonical bytes, when the movement is one."""
    txid: str | None
    request_hash: str
    detail: dict[str, Any]  # Any: JSON written by the service
    response: dict[str, Any] | None  # Any: the JSON answered when the row was settled
    http_status: int | None
    created_ms: int
    updated_ms: int


def _customer(row: sa.Row[Any]) -> CustomerRow:
    return row_as(CustomerRow, row._mapping)


def _entry(row: sa.Row[Any]) -> JournalRow:
    return JournalRow(
        id=row.id,
        scope=row.scope,
        idempotency_key=row.idempotency_key,
        customer_id=row.customer_id,
        kind=row.kind,
        amount=int(row.amount),
        status=row.status,
        tx=bytes(row.tx) if row.tx is not None else None,
        txid=row.txid,
        request_hash=row.request_hash,
        detail=json.loads(row.detail),
        response=json.loads(row.response) if row.response is not None else None,
        http_status=row.http_status,
        created_ms=int(row.created_ms),
        updated_ms=int(row.updated_ms),
    )


class OperatorStore:
    """The operator's database, one short transaction per method."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> OperatorStore:
        """Connect to `url` and create the tables that are missing."""
        engine = make_engine(url)
        metadata.create_all(engine)
        return cls(engine)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def _customer_where(self, condition: sa.ColumnElement[bool]) -> CustomerRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(customers.select().where(condition)).first()
        return _customer(row) if row is not None else None

    def _entry_where(self, *conditions: sa.ColumnElement[bool]) -> JournalRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(journal.select().where(*conditions)).first()
        return _entry(row) if row is not None else None

    # -- customers ---------------------------------------------------------------------------

    def create_customer(
        self,
        name: str,
        tier: int,
        *,
        wallet_key: str | None = None,
        token_hash: str | None = None,
        hosted_key_of: Callable[[int], str] | None = None,
    ) -> CustomerRow:
        """Add a customer: self-custody with `wallet_key`, or hosted with `token_hash`.

        A hosted customer's key index is its id; `hosted_key_of(index)` gives the key.

        Raises:
            KeyTakenError: `wallet_key` is another customer's.
        """
        try:
            with self.engine.begin() as conn:
                new_id = inserted_id(
                    conn.execute(
                        customers.insert().values(
                            name=name,
                            tier=tier,
                            wallet_key=wallet_key,
                            token_hash=token_hash,
                            deposit=0,
                            created_ms=now_ms(),
                        )
                    )
                )
                if hosted_key_of is not None:
                    hosted_key = hosted_key_of(int(new_id))
                    conn.execute(
                        customers.update()
                        .where(customers.c.id == new_id)
                        .values(hosted_index=new_id, hosted_key=hosted_key)
                    )
                    conn.execute(
                        customer_keys.insert().values(
                            pubkey=hosted_key, customer_id=new_id, created_ms=now_ms()
                        )
                    )
                row = conn.execute(customers.select().where(customers.c.id == new_id)).one()
        except IntegrityError:
            raise KeyTakenError(
                "that wallet key is already a customer's", wallet_key=wallet_key
            ) from None
        return _customer(row)

    def customer(self, customer_id: int) -> CustomerRow | None:
        """The customer with this id, or None."""
        return self._customer_where(customers.c.id == customer_id)

    def customer_by_wallet_key(self, key_hex: str) -> CustomerRow | None:
        """The self-custody customer whose wallet identity key is `key_hex`, or None."""
        return self._customer_where(customers.c.wallet_key == key_hex)

    def customer_by_token_hash(self, token_hash: str) -> CustomerRow | None:
        """The hosted customer whose token hashes to `token_hash`, or None."""
        return self._customer_where(customers.c.token_hash == token_hash)

    def all_customers(self) -> list[CustomerRow]:
        """Every customer, by id."""
        with self.engine.connect() as conn:
            rows = conn.execute(customers.select().order_by(customers.c.id)).all()
        return [_customer(row) for row in rows]

    def keys_of(self, customer_id: int) -> list[str]:
        """The keys the customer's coins sit under (hex), in registration order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(customer_keys.c.pubkey)
                .where(customer_keys.c.customer_id == customer_id)
                .order_by(customer_keys.c.created_ms, customer_keys.c.pubkey)
            ).all()
        return [row.pubkey for row in rows]

    def owners_of(self, keys: Iterable[str]) -> dict[str, int]:
        """Which customer each of `keys` belongs to (keys nobody has are left out)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(customer_keys.c.pubkey, customer_keys.c.customer_id).where(
                    customer_keys.c.pubkey.in_(wanted)
                )
            ).all()
        return {row.pubkey: row.customer_id for row in rows}

    def register_keys(self, customer_id: int, keys: Sequence[str]) -> list[str]:
        """Give `keys` to the customer; the customer's keys after it.

        Raises:
            KeyTakenError: one of them is another customer's (then none is registered).
        """
        for attempt in (1, 2):
            try:
                with self.engine.begin() as conn:
                    _claim_keys(conn, customer_id, keys, strict=True)
                break
            except IntegrityError:
                if attempt == 2:
                    raise KeyTakenError("a key was registered by another customer") from None
        return self.keys_of(customer_id)

    # -- journal -----------------------------------------------------------------------------

    def entry(self, scope: str, idempotency_key: str) -> JournalRow | None:
        """The journal row of this idempotency key in `scope`, or None."""
        return self._entry_where(
            journal.c.scope == scope, journal.c.idempotency_key == idempotency_key
        )

    def entry_by_id(self, entry_id: int) -> JournalRow | None:
        """The journal row with this id, or None."""
        return self._entry_where(journal.c.id == entry_id)

    def entry_by_txid(self, txid: str) -> JournalRow | None:
        """The journal row of this transaction, or None."""
        return self._entry_where(journal.c.txid == txid)

    def pending_entries(self, kinds: Sequence[str] | None = None) -> list[JournalRow]:
        """Every pending row (of `kinds`, if given), oldest first."""
        query = journal.select().where(journal.c.status == PENDING)
        if kinds is not None:
            query = query.where(journal.c.kind.in_(list(kinds)))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(journal.c.id)).all()
        return [_entry(row) for row in rows]

    def entries(
        self, *, customer_id: int | None = None, scope: str | None = None, limit: int = 1000
    ) -> list[JournalRow]:
        """Journal rows, newest first, of one customer or scope if given."""
        query = journal.select()
        if customer_id is not None:
            query = query.where(journal.c.customer_id == customer_id)
        if scope is not None:
            query = query.where(journal.c.scope == scope)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(journal.c.id.desc()).limit(limit)).all()
        return [_entry(row) for row in rows]

    def pending_total(self, customer_id: int, kind: str) -> int:
        """The sum of the customer's pending rows of `kind`."""
        with self.engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(journal.c.amount), 0)).where(
                    journal.c.customer_id == customer_id,
                    journal.c.kind == kind,
                    journal.c.status == PENDING,
                )
            ).scalar_one()
        return int(total)

    def reserved_coins(self) -> set[bytes]:
        """Ids of the coins pending rows spend."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(reservations.c.coin_id)).all()
        return {bytes.fromhex(row.coin_id) for row in rows}

    def open_entry(
        self,
        *,
        scope: str,
        idempotency_key: str,
        kind: str,
        amount: int,
        request_hash: str,
        customer_id: int | None = None,
        tx: bytes | None = None,
        txid: str | None = None,
        detail: dict[str, Any] | None = None,  # Any: JSON
        reserve: Iterable[bytes] = (),
        debit: int = 0,
        claim_keys: Sequence[str] = (),
    ) -> JournalRow:
        """Write a pending row, in one transaction with what must happen with it.

        Args:
            scope: Whose idempotency keys (`customer:7`, `float`).
            idempotency_key: The caller's key.
            kind: What moves.
            amount: How much, minor units.
            request_hash: Hash of the request, to tell a repeat from a conflict.
            customer_id: The customer it concerns.
            tx: The signed transaction's bytes.
            txid: Its id, hex.
            detail: What else the service needs to settle or show the row.
            reserve: Coin ids the transaction spends.
            debit: Taken from the customer's deposit now (a load).
            claim_keys: Keys that become the customer's (a load's destination).

        Raises:
            InsufficientFundsError: the deposit is less than `debit`.
            KeyTakenError: a key of `claim_keys` is another customer's.
            EntryExistsError: a row with this scope and key exists.
            TxAlreadyJournaledError: a row with this txid exists.
        """
        try:
            with self.engine.begin() as conn:
                _check_key_free(conn, scope, idempotency_key)
                if txid is not None:
                    _claim_txid(conn, txid)
                if debit and customer_id is not None:
                    _debit(conn, customer_id, debit)
                if claim_keys and customer_id is not None:
                    _claim_keys(conn, customer_id, claim_keys, strict=True)
                entry_id = _insert_entry(
                    conn,
                    scope=scope,
                    idempotency_key=idempotency_key,
                    customer_id=customer_id,
                    kind=kind,
                    amount=amount,
                    status=PENDING,
                    tx=tx,
                    txid=txid,
                    request_hash=request_hash,
                    detail=json.dumps(detail or {}),
                )
                coin_rows = [{"coin_id": cid.hex(), "journal_id": entry_id} for cid in reserve]
                if coin_rows:
                    conn.execute(reservations.insert(), coin_rows)
                return _read_entry(conn, entry_id)
        except IntegrityError:
            self._explain_race(scope, idempotency_key, txid)
            raise

    def record_deposit(
        self,
        *,
        scope: str,
        idempotency_key: str,
        customer_id: int,
        amount: int,
        request_hash: str,
        response_of: Callable[[int, int], dict[str, Any]],  # Any: JSON
    ) -> JournalRow:
        """Credit cash paid in at the counter: a `done` row and the credit, together.

        `response_of(entry id, deposit after)` makes the answer stored with the row.

        Raises:
            DepositOverflowError: the deposit would go over 2^63-1.
            EntryExistsError: a row with this scope and key exists.
        """
        try:
            with self.engine.begin() as conn:
                _check_key_free(conn, scope, idempotency_key)
                deposit = _credit(conn, customer_id, amount)
                entry_id = _insert_entry(
                    conn,
                    scope=scope,
                    idempotency_key=idempotency_key,
                    customer_id=customer_id,
                    kind="deposit",
                    amount=amount,
                    status=DONE,
                    request_hash=request_hash,
                    detail="{}",
                )
                response = response_of(entry_id, deposit)
                conn.execute(
                    journal.update()
                    .where(journal.c.id == entry_id)
                    .values(response=json.dumps(response), http_status=200)
                )
                return _read_entry(conn, entry_id)
        except IntegrityError:
            self._explain_race(scope, idempotency_key)
            raise

    def _explain_race(self, scope: str, idempotency_key: str, txid: str | None = None) -> None:
        """After a refused insert: say which concurrent call won the key or the txid.

        Raises:
            EntryExistsError: a row of this key was written meanwhile.
            TxAlreadyJournaledError: a row of this txid was written meanwhile.
        """
        if self.entry(scope, idempotency_key) is not None:
            raise EntryExistsError(idempotency_key) from None
        other = None if txid is None else self.entry_by_txid(txid)
        if other is not None and txid is not None:
            raise TxAlreadyJournaledError(txid, other.idempotency_key) from None

    def finish_entry(
        self,
        entry_id: int,
        *,
        status: str,
        response_of: Callable[[int | None], dict[str, Any]],  # Any: JSON
        http_status: int,
        credit: int = 0,
        claim_keys: Sequence[str] = (),
        detail: dict[str, Any] | None = None,  # Any: JSON
    ) -> JournalRow | None:
        """Settle a pending row as `done` or `failed`, with its credit, in one transaction.

        Args:
            entry_id: The row.
            status: `done` or `failed`.
            response_of: Makes the stored answer from the customer's deposit after the
                credit (None for rows of no customer).
            http_status: The status the answer goes with.
            credit: Added to the customer's deposit (an unload, a failed load's refund).
            claim_keys: Keys to give the customer where nobody has them yet.
            detail: Replaces the row's detail, if given.

        Returns:
            The settled row, or None if the row was no longer pending (settled by another
            thread): nothing was done then.
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                journal.select().where(journal.c.id == entry_id).with_for_update()
            ).one()
            if row.status != PENDING:
                return None
            deposit: int | None = None
            if row.customer_id is not None:
                if credit:
                    deposit = _credit(conn, row.customer_id, credit)
                else:
                    deposit = int(
                        conn.execute(
                            sa.select(customers.c.deposit).where(customers.c.id == row.customer_id)
                        ).scalar_one()
                    )
                if claim_keys:
                    _claim_keys(conn, row.customer_id, claim_keys, strict=False)
            values: dict[str, Any] = {
                "status": status,
                "response": json.dumps(response_of(deposit)),
                "http_status": http_status,
                "updated_ms": now_ms(),
            }
            if detail is not None:
                values["detail"] = json.dumps(detail)
            conn.execute(journal.update().where(journal.c.id == entry_id).values(**values))
            conn.execute(reservations.delete().where(reservations.c.journal_id == entry_id))
            return _read_entry(conn, entry_id)

    def touch_entry(self, entry_id: int, detail: dict[str, Any] | None = None) -> None:
        """Note an attempt to settle a pending row (and update its detail, if given)."""
        values: dict[str, Any] = {"updated_ms": now_ms()}
        if detail is not None:
            values["detail"] = json.dumps(detail)
        with self.engine.begin() as conn:
            conn.execute(
                journal.update()
                .where(journal.c.id == entry_id, journal.c.status == PENDING)
                .values(**values)
            )


def _check_key_free(conn: sa.Connection, scope: str, idempotency_key: str) -> None:
    """Refuse a second row of one idempotency key in `scope`.

    Raises:
        EntryExistsError: there is one.
    """
    taken = conn.execute(
        sa.select(journal.c.id).where(
            journal.c.scope == scope, journal.c.idempotency_key == idempotency_key
        )
    ).first()
    if taken is not None:
        raise EntryExistsError(idempotency_key)


def _insert_entry(conn: sa.Connection, **values: Any) -> int:  # Any: column values
    """Insert a journal row, stamped now; its id."""
    now = now_ms()
    return inserted_id(
        conn.execute(journal.insert().values(created_ms=now, updated_ms=now, **values))
    )


def _read_entry(conn: sa.Connection, entry_id: int) -> JournalRow:
    return _entry(conn.execute(journal.select().where(journal.c.id == entry_id)).one())


def _claim_txid(conn: sa.Connection, txid: str) -> None:
    """Make way for a new row of `txid`.

    Refused while another row holds the txid, unless that row failed for good (the ledger
    will never commit it), which then lets it go.
    """
    other = conn.execute(
        sa.select(journal.c.id, journal.c.idempotency_key, journal.c.status, journal.c.detail)
        .where(journal.c.txid == txid)
        .with_for_update()
    ).first()
    if other is None:
        return
    if other.status != FAILED:
        raise TxAlreadyJournaledError(txid, other.idempotency_key)
    detail = {**json.loads(other.detail), "released_txid": txid}
    conn.execute(
        journal.update()
        .where(journal.c.id == other.id)
        .values(txid=None, detail=json.dumps(detail))
    )


def _debit(conn: sa.Connection, customer_id: int, amount: int) -> None:
    done = conn.execute(
        customers.update()
        .where(customers.c.id == customer_id, customers.c.deposit >= amount)
        .values(deposit=customers.c.deposit - amount)
    )
    if done.rowcount != 1:
        deposit = conn.execute(
            sa.select(customers.c.deposit).where(customers.c.id == customer_id)
        ).scalar_one()
        raise InsufficientFundsError(
            f"the deposit holds {deposit}, less than the {amount} asked for",
            deposit=amount_to_json(int(deposit)),
            needed=amount_to_json(amount),
        )


def _credit(conn: sa.Connection, customer_id: int, amount: int) -> int:
    """Add `amount` to the deposit without going over 2^63-1; the deposit after."""
    done = conn.execute(
        customers.update()
        .where(customers.c.id == customer_id, customers.c.deposit <= MAX_AMOUNT - amount)
        .values(deposit=customers.c.deposit + amount)
    )
    deposit = int(
        conn.execute(
            sa.select(customers.c.deposit).where(customers.c.id == customer_id)
        ).scalar_one()
    )
    if done.rowcount != 1:
        raise DepositOverflowError(
            f"crediting {amount} would take the deposit of {deposit} over {MAX_AMOUNT}",
            deposit=amount_to_json(deposit),
            amount=amount_to_json(amount),
        )
    return deposit


def _claim_keys(
    conn: sa.Connection, customer_id: int, keys: Iterable[str], *, strict: bool
) -> None:
    """Give the customer each key nobody has yet.

    A key of another customer raises `KeyTakenError` when `strict`, else is skipped.
    """
    wanted = sorted(set(keys))
    if not wanted:
        return
    owners = {
        row.pubkey: row.customer_id
        for row in conn.execute(
            sa.select(customer_keys.c.pubkey, customer_keys.c.customer_id).where(
                customer_keys.c.pubkey.in_(wanted)
            )
        ).all()
    }
    taken = [key for key, owner in owners.items() if owner != customer_id]
    if taken and strict:
        raise KeyTakenError(
            f"key {taken[0]} belongs to another customer of this operator", key=taken[0]
        )
    now = now_ms()
    fresh = [key for key in wanted if key not in owners]
    if fresh:
        conn.execute(
            customer_keys.insert(),
            [{"pubkey": key, "customer_id": customer_id, "created_ms": now} for key in fresh],
        )
