"""`LmdbStore`: the durable `KeyValueStore` of a node, on LMDB.

LMDB is a B+tree in a memory-mapped file with copy-on-write pages: a committed write
transaction is atomic, and with `sync=True` it is on disk when `commit` returns, so what
the node acknowledges survives `kill -9` and power loss alike. Readers never block the
writer and see a fixed snapshot for as long as their read transaction lives.

How this module uses it:

- One keyspace (LMDB's unnamed database); `tally.store.schema` separates the tables by
  key prefix, so one write transaction covers everything a block changes.
- One LMDB write transaction per `atomic()` block. Writers are serialised by a lock in
  this process; a second process must not write the same directory.
- Reads outside a batch each run in a short read transaction of their own, so any number
  of API threads may read while the writer commits. An `iter_prefix` iterator keeps its
  read transaction until it is exhausted or dropped.
- The map is reserved large (64 GiB on 64-bit machines: address space, not disk; the file
  grows as data is written). Should it fill anyway, the batch is replayed into a map twice
  the size: LMDB cannot grow a map under a live transaction, so every write of the batch
  is logged, the transaction aborted, the map grown once no read transaction is open,
  and the log written again into a fresh transaction.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import lmdb

from tally.store.errors import (
    BatchClosedError,
    NestedBatchError,
    StoreClosedError,
    StoreError,
    StoreFullError,
)
from tally.store.kv import KeyValueReader, KeyValueStore, WriteBatch, check_key

__all__ = ["LmdbStore", "DEFAULT_MAP_SIZE"]

DEFAULT_MAP_SIZE: Final = 64 * 2**30 if sys.maxsize > 2**32 else 2**30
"""Address space reserved for the map: 64 GiB on 64-bit machines, 1 GiB on 32-bit ones."""

_MAX_READERS: Final = 1024
"""Read transactions open at once: API threads plus open iterators (LMDB's default is 126)."""

_READER_DRAIN_TIMEOUT_S: Final = 30.0
"""How long growing the map waits for open read transactions to end before giving up."""

_SCAN_CHUNK: Final = 256
"""Entries read per cursor pass when iterating inside a write batch."""


class _ReaderGate:
    """Counts open read transactions and holds new ones back while the map is regrown.

    LMDB replaces the memory map when it grows, which would pull the pages out from
    under any read transaction open in this process; py-lmdb invalidates them instead,
    so a reader would fail. Growing therefore waits until no read transaction is open.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._growing = False

    def enter(self) -> None:
        """Count one more open read transaction, waiting while the map is regrown."""
        with self._condition:
            if self._growing:
                self._condition.wait_for(lambda: not self._growing)
            self._readers += 1

    def leave(self) -> None:
        """Count one read transaction fewer; wakes the writer waiting to grow the map."""
        with self._condition:
            self._readers -= 1
            if self._growing:
                self._condition.notify_all()

    @contextmanager
    def reading(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    @contextmanager
    def exclusive(self, timeout: float) -> Iterator[None]:
        with self._condition:
            self._growing = True
            try:
                if not self._condition.wait_for(lambda: self._readers == 0, timeout):
                    raise StoreFullError(
                        f"the store's map is full and {self._readers} read transactions"
                        f" stayed open for {timeout:g} s, so it could not grow; close"
                        " iterators and snapshots promptly"
                    )
                yield
            finally:
                self._growing = False
                self._condition.notify_all()


def _fsync_directory(path: str) -> None:
    """Make the directory entries of the store's files durable, not only their contents."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scan(txn: lmdb.Transaction[bytes], prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Iterate `prefix` in a read transaction, which nothing can change under the cursor."""
    cursor = txn.cursor()
    if not cursor.set_range(prefix):
        return
    for key, value in cursor.iternext():
        if not key.startswith(prefix):
            return
        yield key, value


class _LmdbBatch(WriteBatch):
    """One LMDB write transaction, plus a log of its writes to replay if the map must grow."""

    def __init__(self, store: LmdbStore) -> None:
        self._store = store
        self._txn = store._env.begin(write=True)
        self._log: list[tuple[bytes, bytes | None]] = []
        self._done = False

    def _check_open(self) -> None:
        if self._done:
            raise BatchClosedError("this write batch's atomic() block has ended")

    def get(self, key: bytes) -> bytes | None:
        self._check_open()
        check_key(key)
        return self._txn.get(key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        return self._scan_in_chunks(prefix)

    def _scan_in_chunks(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        # The caller may write between two items, and a cursor must not be relied on
        # across writes of its own transaction (nor across a replay into a new one), so
        # read a chunk, release the cursor, and seek again past the last key yielded.
        after: bytes | None = None
        while True:
            self._check_open()
            chunk: list[tuple[bytes, bytes]] = []
            exhausted = True
            cursor = self._txn.cursor()
            found = cursor.set_range(prefix if after is None else after)
            while found:
                key = cursor.key()
                if not key.startswith(prefix):
                    break
                if key != after:
                    if len(chunk) == _SCAN_CHUNK:
                        exhausted = False
                        break
                    chunk.append((key, cursor.value()))
                found = cursor.next()
            cursor.close()
            yield from chunk
            if exhausted:
                return
            after = chunk[-1][0]

    def put(self, key: bytes, value: bytes) -> None:
        self._check_open()
        check_key(key)
        self._write(bytes(key), bytes(value))

    def delete(self, key: bytes) -> None:
        self._check_open()
        check_key(key)
        self._write(bytes(key), None)

    def _write(self, key: bytes, value: bytes | None) -> None:
        self._log.append((key, value))
        try:
            self._apply(key, value)
        except lmdb.MapFullError:
            self._replay_into_larger_map()

    def _apply(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self._txn.delete(key)
        else:
            self._txn.put(key, value)

    def _replay_into_larger_map(self) -> None:
        # The writer lock is held throughout, so no other batch can commit between the
        # abort and the replay: the new transaction starts from the same state.
        while True:
            self._txn.abort()
            self._store._grow_map()
            self._txn = self._store._env.begin(write=True)
            try:
                for key, value in self._log:
                    self._apply(key, value)
            except lmdb.MapFullError:
                continue
            return

    def commit(self) -> None:
        self._check_open()
        try:
            while True:
                try:
                    self._txn.commit()
                except lmdb.MapFullError:
                    self._replay_into_larger_map()
                else:
                    return
        finally:
            self._done = True

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._txn.abort()


class LmdbStore(KeyValueStore):
    """A durable `KeyValueStore` in an LMDB environment (a directory).

    Args:
        path: The directory; created if missing.
        map_size: Bytes of address space to reserve for the map; grown on demand.
    """

    def __init__(self, path: str | os.PathLike[str], map_size: int = DEFAULT_MAP_SIZE) -> None:
        directory = os.fspath(path)
        os.makedirs(directory, exist_ok=True)
        self._env = lmdb.open(
            directory,
            map_size=map_size,
            subdir=True,
            # Both syncs on: a commit returns only when data and meta page are on disk.
            sync=True,
            metasync=True,
            lock=True,
            # Lookups are random; read-ahead only evicts useful pages once the database
            # outgrows memory.
            readahead=False,
            max_readers=_MAX_READERS,
            max_dbs=0,
        )
        _fsync_directory(directory)
        _fsync_directory(os.path.dirname(os.path.abspath(directory)))
        self._path = directory
        self._gate = _ReaderGate()
        self._writer = threading.Lock()
        self._writer_thread: int | None = None
        self._closed = False

    @property
    def path(self) -> str:
        """The environment's directory."""
        return self._path

    def map_size(self) -> int:
        """Bytes of address space currently reserved for the map."""
        self._check_open()
        return int(self._env.info()["map_size"])

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"the LMDB store at {self._path} is closed")

    @contextmanager
    def _read_txn(self) -> Iterator[lmdb.Transaction[bytes]]:
        self._check_open()
        with self._gate.reading(), self._env.begin() as txn:
            yield txn

    def get(self, key: bytes) -> bytes | None:
        """The value stored at `key`, or None if there is none.

        Raises:
            InvalidKeyError: `key` is empty or longer than `MAX_KEY_SIZE`.
        """
        check_key(key)
        # The hot path of every read outside a snapshot: the gate and the read transaction
        # without the generator-based context managers, which cost more than the lookup.
        if self._closed:
            raise StoreClosedError(f"the LMDB store at {self._path} is closed")
        gate = self._gate
        gate.enter()
        try:
            txn = self._env.begin()
            try:
                return txn.get(key)
            finally:
                txn.abort()
        finally:
            gate.leave()

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every `(key, value)` whose key starts with `prefix`, in ascending key order.

        The iterator holds a read transaction (one snapshot) until it is exhausted or
        dropped.
        """
        self._check_open()
        return self._iter_snapshot(prefix)

    def _iter_snapshot(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        with self._read_txn() as txn:
            yield from _scan(txn, prefix)

    @contextmanager
    def snapshot(self) -> Iterator[KeyValueReader]:
        """A view of the latest committed state that later commits leave alone."""
        with self._read_txn() as txn:
            yield _Snapshot(txn)

    @contextmanager
    def atomic(self) -> Iterator[WriteBatch]:
        """One LMDB write transaction, committed (and synced) when the block exits normally.

        Raises:
            NestedBatchError: this thread already holds an open batch.
            StoreClosedError: the store is closed.
            StoreFullError: the map was full and could not be grown; nothing was written.
        """
        self._check_open()
        if self._writer_thread == threading.get_ident():
            raise NestedBatchError("this thread already holds an open write batch")
        with self._writer:
            self._check_open()
            self._writer_thread = threading.get_ident()
            try:
                batch = _LmdbBatch(self)
                try:
                    yield batch
                except BaseException:
                    batch.abort()
                    raise
                try:
                    batch.commit()
                except BaseException:
                    batch.abort()
                    raise
            finally:
                self._writer_thread = None

    def _grow_map(self) -> None:
        """Double the map; called by the writer between an abort and a replay."""
        with self._gate.exclusive(_READER_DRAIN_TIMEOUT_S):
            self._env.set_mapsize(2 * int(self._env.info()["map_size"]))

    def close(self) -> None:
        """Wait for an open batch to finish, then close the environment.

        Raises:
            StoreError: called inside this thread's own `atomic()` block.
        """
        if self._writer_thread == threading.get_ident():
            raise StoreError("cannot close the store inside its own atomic() block")
        with self._writer:
            if not self._closed:
                self._closed = True
                self._env.close()


class _Snapshot(KeyValueReader):
    """Reads from one read transaction, valid inside `LmdbStore.snapshot()`."""

    def __init__(self, txn: lmdb.Transaction[bytes]) -> None:
        self._txn = txn

    def get(self, key: bytes) -> bytes | None:
        check_key(key)
        return self._txn.get(key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return _scan(self._txn, prefix)
