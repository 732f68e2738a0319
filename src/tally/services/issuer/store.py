"""The issuer's database: operators and their reserve accounts, issuances, redemptions.

SQLAlchemy Core tables that run the same on SQLite and PostgreSQL. Every change of a reserve
account happens in one transaction that first locks the operator's row (`SELECT ... FOR
UPDATE` on PostgreSQL; on SQLite `make_engine` begins every transaction with `BEGIN
IMMEDIATE`, which takes the database's write lock), so that a balance read and the write
that follows cannot interleave with another request's.

Tables:
    operators: one row per operator: its signing key, its float key, and its reserve
        account (`available`, `frozen`; amounts in minor units).
    reserve_deposits: credits to a reserve account, one per (operator, idempotency key).
    issuances: one per (operator, idempotency key): the amount frozen, the signed freeze
        certificate, the `Issue` transaction and its fate (pending, committed, failed).
    redemptions: one per committed `Redeem` transaction released (unique txid).
    cursors: how far the block follower has scanned.

The functions take a `Connection` inside the caller's transaction and return plain rows
(frozen dataclasses), never SQLAlchemy objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypeVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.sql import Select

from tally.services.common.clock import now_ms
from tally.services.common.db import inserted_id, row_as

__all__ = [
    "PENDING",
    "COMMITTED",
    "FAILED",
    "metadata",
    "operators",
    "reserve_deposits",
    "issuances",
    "redemptions",
    "cursors",
    "OperatorRow",
    "DepositRow",
    "IssuanceRow",
    "RedemptionRow",
    "Totals",
    "create_tables",
    "insert_operator",
    "operator_by_id",
    "operator_by_key",
    "lock_operator",
    "list_operators",
    "adjust_reserve",
    "find_deposit",
    "insert_deposit",
    "insert_issuance",
    "set_issuance_tx",
    "issuance_by_id",
    "issuance_by_key",
    "issuance_by_txid",
    "issuance_by_reserve_ref",
    "list_issuances",
    "pending_issuances",
    "set_issuance_status",
    "find_redemption",
    "insert_redemption",
    "cursor_height",
    "set_cursor",
    "operator_totals",
    "totals",
]

PENDING: Final = "pending"
"""An issuance whose reserve is frozen and whose `Issue` is not known to be committed."""
COMMITTED: Final = "committed"
"""An issuance whose `Issue` the ledger committed and accepted."""
FAILED: Final = "failed"
"""An issuance the ledger refused; its reserve was released again."""

_KEY_HEX = 64  # an x-only public key, hex
_ID_HEX = 64  # a transaction id or hash, hex

# SQLite numbers a table's rows only for an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits.
_Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

operators = Table(
    "operators",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("key", String(_KEY_HEX), nullable=False, unique=True),
    Column("float_key", String(_KEY_HEX), nullable=False),
    Column("available", BigInteger, nullable=False, default=0),
    Column("frozen", BigInteger, nullable=False, default=0),
    Column("created_ms", BigInteger, nullable=False),
)

reserve_deposits = Table(
    "reserve_deposits",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("operator_id", _Id, ForeignKey("operators.id"), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    UniqueConstraint("operator_id", "idempotency_key", name="reserve_deposits_key"),
    CheckConstraint("amount > 0", name="reserve_deposits_amount_positive"),
)

issuances = Table(
    "issuances",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("operator_id", _Id, ForeignKey("operators.id"), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("float_key", String(_KEY_HEX), nullable=False),
    Column("certificate", LargeBinary, nullable=True),
    Column("reserve_ref", String(_ID_HEX), nullable=True, unique=True),
    Column("tx", LargeBinary, nullable=True),
    Column("txid", String(_ID_HEX), nullable=True, unique=True),
    Column("coin_id", String(_ID_HEX), nullable=True),
    Column("valid_until", BigInteger, nullable=True),
    Column("status", String(16), nullable=False),
    Column("height", BigInteger, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", String(500), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    UniqueConstraint("operator_id", "idempotency_key", name="issuances_key"),
    CheckConstraint("amount > 0", name="issuances_amount_positive"),
    CheckConstraint(
        f"status IN ('{PENDING}', '{COMMITTED}', '{FAILED}')", name="issuances_status_known"
    ),
)

redemptions = Table(
    "redemptions",
    metadata,
    Column("txid", String(_ID_HEX), primary_key=True),
    Column("operator_id", _Id, ForeignKey("operators.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("height", BigInteger, nullable=False),
    Column("source", String(16), nullable=False),
    Column("released_ms", BigInteger, nullable=False),
    CheckConstraint("amount > 0", name="redemptions_amount_positive"),
)

cursors = Table(
    "cursors",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("height", BigInteger, nullable=False),
)

_FOLLOWER = "blocks"


@dataclass(frozen=True)
class OperatorRow:
    """An operator and its reserve account."""

    id: int
    name: str
    key: str
    """The operator's signing key (hex, x-only): who it is at the issuer."""
    float_key: str
    """The key its issued coins are locked to (hex, x-only)."""
    available: int
    """Reserve the operator may have frozen for issuance."""
    frozen: int
    """Reserve frozen behind coins outstanding (issued minus redeemed by this operator).

    Below zero when the operator redeemed more than was issued to it: coins that reached
    it from other operators' customers. The sum over operators is what the ledger has out."""
    created_ms: int


@dataclass(frozen=True)
class DepositRow:
    """A credit to an operator's reserve account."""

    id: int
    operator_id: int
    idempotency_key: str
    amount: int
    created_ms: int


@dataclass(frozen=True)
class IssuanceRow:
    """An issuance and its fate."""

    id: int
    """Also the certificate's `sequence` and the `Issue` nonce."""
    operator_id: int
    idempotency_key: str
    amount: int
    float_key: str
    certificate: bytes | None
    reserve_ref: str | None
    tx: bytes | None
    txid: str | None
    coin_id: str | None
    valid_until: int | None
    status: str
    height: int | None
    error_code: str | None
    error_message: str | None
    created_ms: int
    updated_ms: int


@dataclass(frozen=True)
class RedemptionRow:
    """A committed `Redeem` whose amount went from frozen back to available."""

    txid: str
    operator_id: int
    amount: int
    height: int
    source: str
    """Who released it first: `api` (the operator's call) or `follower` (the block scan)."""
    released_ms: int


@dataclass(frozen=True)
class Totals:
    """Sums over one operator or all of them."""

    available: int
    frozen: int
    issued: int
    """Committed issuances."""
    redeemed: int
    """Released redemptions."""
    pending: int
    """Issuances frozen but not yet committed or failed."""


def create_tables(engine: Engine) -> None:
    """Create the tables that do not exist yet."""
    metadata.create_all(engine)


_Row = TypeVar("_Row")


def _first(conn: Connection, statement: Select[Any], kind: type[_Row]) -> _Row | None:
    """The first row `statement` selects, as `kind`; None when there is none."""
    found = conn.execute(statement).mappings().first()
    return None if found is None else row_as(kind, found)


def _all(conn: Connection, statement: Select[Any], kind: type[_Row]) -> list[_Row]:
    """Every row `statement` selects, as `kind`."""
    return [row_as(kind, row) for row in conn.execute(statement).mappings()]


def _issuance(conn: Connection, issuance_id: int) -> IssuanceRow:
    """An issuance this transaction has just written."""
    found = issuance_by_id(conn, issuance_id)
    if found is None:
        raise LookupError(f"issuance {issuance_id} vanished inside its own transaction")
    return found


# -- operators -------------------------------------------------------------------------------


def insert_operator(conn: Connection, name: str, key: str, float_key: str) -> OperatorRow:
    """Register an operator with an empty reserve account.

    Raises:
        sqlalchemy.exc.IntegrityError: an operator with this key exists.
    """
    created = now_ms()
    result = conn.execute(
        operators.insert().values(
            name=name, key=key, float_key=float_key, available=0, frozen=0, created_ms=created
        )
    )
    operator_id = inserted_id(result)
    return OperatorRow(operator_id, name, key, float_key, 0, 0, created)


def operator_by_id(conn: Connection, operator_id: int) -> OperatorRow | None:
    """The operator with this id, or None."""
    return _first(conn, select(operators).where(operators.c.id == operator_id), OperatorRow)


def operator_by_key(conn: Connection, key: str) -> OperatorRow | None:
    """The operator whose signing key is `key` (hex), or None."""
    return _first(conn, select(operators).where(operators.c.key == key), OperatorRow)


def lock_operator(conn: Connection, operator_id: int) -> OperatorRow | None:
    """The operator's row, locked until the transaction ends; None if there is none."""
    statement = select(operators).where(operators.c.id == operator_id).with_for_update()
    return _first(conn, statement, OperatorRow)


def list_operators(conn: Connection) -> list[OperatorRow]:
    """Every operator, by id."""
    return _all(conn, select(operators).order_by(operators.c.id), OperatorRow)


def adjust_reserve(
    conn: Connection, operator_id: int, *, available: int = 0, frozen: int = 0
) -> OperatorRow:
    """Add `available` and `frozen` (either may be negative) to an operator's account.

    The caller holds the row's lock and has checked the result.
    """
    conn.execute(
        operators.update()
        .where(operators.c.id == operator_id)
        .values(
            available=operators.c.available + available,
            frozen=operators.c.frozen + frozen,
        )
    )
    row = operator_by_id(conn, operator_id)
    if row is None:
        raise LookupError(f"operator {operator_id} vanished inside its own transaction")
    return row


# -- reserve deposits ------------------------------------------------------------------------


def find_deposit(conn: Connection, operator_id: int, idempotency_key: str) -> DepositRow | None:
    """The deposit made under this idempotency key, or None."""
    statement = select(reserve_deposits).where(
        reserve_deposits.c.operator_id == operator_id,
        reserve_deposits.c.idempotency_key == idempotency_key,
    )
    return _first(conn, statement, DepositRow)


def insert_deposit(
    conn: Connection, operator_id: int, idempotency_key: str, amount: int
) -> DepositRow:
    """Record a deposit (the caller credits the account in the same transaction)."""
    created = now_ms()
    result = conn.execute(
        reserve_deposits.insert().values(
            operator_id=operator_id,
            idempotency_key=idempotency_key,
            amount=amount,
            created_ms=created,
        )
    )
    deposit_id = inserted_id(result)
    return DepositRow(deposit_id, operator_id, idempotency_key, amount, created)


# -- issuances -------------------------------------------------------------------------------


def insert_issuance(
    conn: Connection, operator_id: int, idempotency_key: str, amount: int, float_key: str
) -> IssuanceRow:
    """A new pending issuance; its id is the sequence number of its certificate."""
    created = now_ms()
    result = conn.execute(
        issuances.insert().values(
            operator_id=operator_id,
            idempotency_key=idempotency_key,
            amount=amount,
            float_key=float_key,
            status=PENDING,
            created_ms=created,
            updated_ms=created,
        )
    )
    return _issuance(conn, inserted_id(result))


def set_issuance_tx(
    conn: Connection,
    issuance_id: int,
    *,
    certificate: bytes,
    reserve_ref: str,
    tx: bytes,
    txid: str,
    coin_id: str,
    valid_until: int,
) -> IssuanceRow:
    """Store the signed certificate and the `Issue` transaction of a pending issuance."""
    conn.execute(
        issuances.update()
        .where(issuances.c.id == issuance_id)
        .values(
            certificate=certificate,
            reserve_ref=reserve_ref,
            tx=tx,
            txid=txid,
            coin_id=coin_id,
            valid_until=valid_until,
            updated_ms=now_ms(),
        )
    )
    return _issuance(conn, issuance_id)


def issuance_by_id(conn: Connection, issuance_id: int) -> IssuanceRow | None:
    """The issuance with this id, or None."""
    return _first(conn, select(issuances).where(issuances.c.id == issuance_id), IssuanceRow)


def issuance_by_key(conn: Connection, operator_id: int, idempotency_key: str) -> IssuanceRow | None:
    """The operator's issuance under this idempotency key, or None."""
    statement = select(issuances).where(
        issuances.c.operator_id == operator_id,
        issuances.c.idempotency_key == idempotency_key,
    )
    return _first(conn, statement, IssuanceRow)


def issuance_by_txid(conn: Connection, txid: str) -> IssuanceRow | None:
    """The issuance whose `Issue` has this id (hex), or None."""
    return _first(conn, select(issuances).where(issuances.c.txid == txid), IssuanceRow)


def issuance_by_reserve_ref(conn: Connection, reserve_ref: str) -> IssuanceRow | None:
    """The issuance whose freeze certificate has this hash (hex), or None."""
    statement = select(issuances).where(issuances.c.reserve_ref == reserve_ref)
    return _first(conn, statement, IssuanceRow)


def list_issuances(
    conn: Connection, operator_id: int | None = None, status: str | None = None
) -> list[IssuanceRow]:
    """Issuances by id, of one operator and/or in one status when given."""
    statement = select(issuances).order_by(issuances.c.id)
    if operator_id is not None:
        statement = statement.where(issuances.c.operator_id == operator_id)
    if status is not None:
        statement = statement.where(issuances.c.status == status)
    return _all(conn, statement, IssuanceRow)


def pending_issuances(conn: Connection, updated_before_ms: int | None = None) -> list[IssuanceRow]:
    """Pending issuances with a transaction, oldest first (untouched since a time, if given)."""
    statement = (
        select(issuances)
        .where(issuances.c.status == PENDING, issuances.c.tx.is_not(None))
        .order_by(issuances.c.id)
    )
    if updated_before_ms is not None:
        statement = statement.where(issuances.c.updated_ms < updated_before_ms)
    return _all(conn, statement, IssuanceRow)


def set_issuance_status(
    conn: Connection,
    issuance_id: int,
    status: str,
    *,
    height: int | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
) -> IssuanceRow:
    """Record an issuance's new status (the caller adjusts the reserve in the same transaction)."""
    conn.execute(
        issuances.update()
        .where(issuances.c.id == issuance_id)
        .values(
            status=status,
            height=height,
            error_code=error_code,
            error_message=None if error_message is None else error_message[:500],
            updated_ms=now_ms(),
        )
    )
    return _issuance(conn, issuance_id)


# -- redemptions -----------------------------------------------------------------------------


def find_redemption(conn: Connection, txid: str) -> RedemptionRow | None:
    """The release of the `Redeem` with this id (hex), or None."""
    return _first(conn, select(redemptions).where(redemptions.c.txid == txid), RedemptionRow)


def insert_redemption(
    conn: Connection, txid: str, operator_id: int, amount: int, height: int, source: str
) -> RedemptionRow:
    """Record a release (the caller moves the reserve in the same transaction).

    Raises:
        sqlalchemy.exc.IntegrityError: this transaction was released before.
    """
    released = now_ms()
    conn.execute(
        redemptions.insert().values(
            txid=txid,
            operator_id=operator_id,
            amount=amount,
            height=height,
            source=source,
            released_ms=released,
        )
    )
    return RedemptionRow(txid, operator_id, amount, height, source, released)


# -- the follower's cursor -------------------------------------------------------------------


def cursor_height(conn: Connection) -> int:
    """The last block height the follower has scanned (0 before the first)."""
    found = conn.execute(select(cursors.c.height).where(cursors.c.name == _FOLLOWER)).first()
    return 0 if found is None else int(found[0])


def set_cursor(conn: Connection, height: int) -> None:
    """Record that the follower has scanned every block up to `height`."""
    updated = conn.execute(
        cursors.update().where(cursors.c.name == _FOLLOWER).values(height=height)
    )
    if updated.rowcount == 0:
        conn.execute(cursors.insert().values(name=_FOLLOWER, height=height))


# -- sums ------------------------------------------------------------------------------------


def _sum(conn: Connection, column: Any, *conditions: Any) -> int:  # Any: SQL expressions
    value = conn.execute(select(func.coalesce(func.sum(column), 0)).where(*conditions)).scalar()
    return int(value or 0)


def operator_totals(conn: Connection, operator: OperatorRow) -> Totals:
    """The operator's account with its issued, redeemed and pending sums."""
    return Totals(
        available=operator.available,
        frozen=operator.frozen,
        issued=_sum(
            conn,
            issuances.c.amount,
            issuances.c.operator_id == operator.id,
            issuances.c.status == COMMITTED,
        ),
        redeemed=_sum(conn, redemptions.c.amount, redemptions.c.operator_id == operator.id),
        pending=_sum(
            conn,
            issuances.c.amount,
            issuances.c.operator_id == operator.id,
            issuances.c.status == PENDING,
        ),
    )


def totals(conn: Connection) -> Totals:
    """Sums over every operator."""
    return Totals(
        available=_sum(conn, operators.c.available),
        frozen=_sum(conn, operators.c.frozen),
        issued=_sum(conn, issuances.c.amount, issuances.c.status == COMMITTED),
        redeemed=_sum(conn, redemptions.c.amount),
        pending=_sum(conn, issuances.c.amount, issuances.c.status == PENDING),
    )
