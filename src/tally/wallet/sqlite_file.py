"""A wallet's SQLite file: one connection shared between threads, numbered schema migrations.

The coin store and the offline store are both small SQLite files next to the wallet. They
open and migrate the same way: write-ahead logging with full syncs (a payment recorded is on
disk), `PRAGMA user_version` as the schema version, forward-only migrations applied in one
transaction each, and one lock so that the file can be shared by the threads of a wallet.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from tally.wallet.vault import WalletFileError

__all__ = ["SqliteFile"]


class SqliteFile:
    """Base of a wallet store in one SQLite file; subclasses list their `MIGRATIONS`."""

    MIGRATIONS: ClassVar[tuple[str, ...]] = ()
    """SQL scripts (statements separated by `;`); script `n` brings version `n` to `n + 1`."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._lock = threading.RLock()
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Self:
        """Open (creating if needed) the store at `path` and bring its schema up to date.

        Raises:
            WalletFileError: the file was written by a newer version of Tally.
        """
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        store = cls(connection, path)
        try:
            store._migrate()
        except BaseException:
            connection.close()
            raise
        return store

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(self.MIGRATIONS):
            raise WalletFileError(
                f"{self.path} has schema version {version}; this Tally knows up to "
                f"{len(self.MIGRATIONS)}",
                path=str(self.path),
                version=version,
            )
        for number in range(version, len(self.MIGRATIONS)):
            with self._transaction() as db:
                for statement in self.MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                self._after_migration(db, number)
                db.execute(f"PRAGMA user_version = {number + 1}")

    def _after_migration(self, db: sqlite3.Connection, number: int) -> None:
        """Fill in rows that migration `number` needs (in its transaction); none by default."""

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()
