"""Service databases: SQLAlchemy engines, SQLite by default, PostgreSQL in production.

Services use SQLAlchemy Core (tables and statements, no ORM) so that the same statements run on
both. SQLite gets write-ahead logging and foreign keys, and a busy timeout so that the API's
threads wait for each other instead of failing; PostgreSQL runs at its default isolation with
row locks (`SELECT ... FOR UPDATE`) where a balance is read and then changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import CursorResult, Engine, create_engine, event
from sqlalchemy.engine.url import make_url

__all__ = ["make_engine", "sqlite_url", "is_sqlite", "inserted_id", "row_as"]

_Row = TypeVar("_Row")

_SQLITE_BUSY_MS = 10_000


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite database file."""
    return f"sqlite:///{Path(path).resolve()}"


def is_sqlite(engine: Engine) -> bool:
    """Whether `engine` is SQLite (which has no row locks: a write lock covers the database)."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    """An engine for `url` (`sqlite:///file` or `postgresql+psycopg://user@host/db`).

    Raises:
        ValueError: a URL that is neither SQLite nor PostgreSQL.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_MS / 1000})

        @event.listens_for(engine, "connect")
        def _on_connect(connection: Any, _record: Any) -> None:
            # pysqlite opens transactions lazily; take the write lock at BEGIN instead, so
            # that a read-then-write in one transaction cannot interleave with another one.
            connection.isolation_level = None
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql+psycopg://")


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an `INSERT` made.

    Raises:
        LookupError: the database did not say (a statement that inserted nothing).
    """
    key = result.inserted_primary_key
    if key is None or key[0] is None:
        raise LookupError("the database did not return the new row's id")
    return int(key[0])


def row_as(kind: type[_Row], row: Mapping[Any, Any]) -> _Row:  # Any: a row's columns
    """A frozen dataclass of plain values from a row mapping, one column per field."""
    return kind(**{name: row[name] for name in kind.__dataclass_fields__})  # type: ignore[attr-defined]
