"""`MemoryStore`: the in-memory twin of the LMDB store, for tests and throwaway networks.

It keeps the same promises as `LmdbStore` except durability: sorted prefix iteration,
batches that commit whole or not at all, reads inside a batch that see its writes,
iterators and snapshots that later commits leave alone, one writer at a time.

Committed state is never changed in place. A batch writes into a private copy of the
table, and a commit publishes the copy by swapping one reference, so readers on other
threads need no lock and an iterator or snapshot keeps seeing the table it started on.
The price is a copy of the whole table per commit, which is fine at the sizes tests and
demos reach; a node that keeps real money uses LMDB.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tally.store.errors import BatchClosedError, NestedBatchError, StoreClosedError, StoreError
from tally.store.kv import KeyValueReader, KeyValueStore, WriteBatch, check_key

__all__ = ["MemoryStore"]


class _Table:
    """A sorted map: a dict for lookups and a sorted list of its keys for prefix scans."""

    __slots__ = ("_keys", "_values")

    def __init__(self, values: dict[bytes, bytes], keys: list[bytes]) -> None:
        self._values = values
        self._keys = keys

    def copy(self) -> _Table:
        return _Table(dict(self._values), list(self._keys))

    def get(self, key: bytes) -> bytes | None:
        check_key(key)
        return self._values.get(key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        keys, values = self._keys, self._values
        index = bisect.bisect_left(keys, prefix)
        last: bytes | None = None
        while True:
            # Seek again after every item: the owner of a draft table may have inserted
            # or deleted keys while we were suspended, shifting every index.
            if last is not None:
                index = bisect.bisect_right(keys, last)
            if index >= len(keys) or not keys[index].startswith(prefix):
                return
            last = keys[index]
            yield last, values[last]

    def put(self, key: bytes, value: bytes) -> None:
        check_key(key)
        if key not in self._values:
            bisect.insort(self._keys, key)
        self._values[key] = value

    def delete(self, key: bytes) -> None:
        check_key(key)
        if self._values.pop(key, None) is not None:
            del self._keys[bisect.bisect_left(self._keys, key)]


class _MemoryBatch(WriteBatch):
    """Writes into a private copy of the table, published by the store on commit."""

    def __init__(self, table: _Table) -> None:
        self.table = table
        self.closed = False

    def _check_open(self) -> None:
        if self.closed:
            raise BatchClosedError("this write batch's atomic() block has ended")

    def get(self, key: bytes) -> bytes | None:
        self._check_open()
        return self.table.get(key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        return self.table.iter_prefix(prefix)

    def put(self, key: bytes, value: bytes) -> None:
        self._check_open()
        # bytes() of a bytes object is the object itself; of a bytearray, a copy that the
        # caller can no longer change under us.
        self.table.put(bytes(key), bytes(value))

    def delete(self, key: bytes) -> None:
        self._check_open()
        self.table.delete(key)


class MemoryStore(KeyValueStore):
    """A `KeyValueStore` in a dictionary; lost when the process ends."""

    def __init__(self) -> None:
        self._table = _Table({}, [])
        self._writer = threading.Lock()
        self._writer_thread: int | None = None
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the memory store is closed")

    def get(self, key: bytes) -> bytes | None:
        """The value stored at `key`, or None if there is none."""
        self._check_open()
        return self._table.get(key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every `(key, value)` whose key starts with `prefix`, in ascending key order."""
        self._check_open()
        # A published table is never written again, so the iterator is a snapshot.
        return self._table.iter_prefix(prefix)

    @contextmanager
    def snapshot(self) -> Iterator[KeyValueReader]:
        """A view of the latest committed state that later commits leave alone."""
        self._check_open()
        yield self._table

    @contextmanager
    def atomic(self) -> Iterator[WriteBatch]:
        """A write batch that commits when the block exits normally.

        Raises:
            NestedBatchError: this thread already holds an open batch.
            StoreClosedError: the store is closed.
        """
        self._check_open()
        if self._writer_thread == threading.get_ident():
            raise NestedBatchError("this thread already holds an open write batch")
        with self._writer:
            self._check_open()
            self._writer_thread = threading.get_ident()
            batch = _MemoryBatch(self._table.copy())
            try:
                yield batch
                # Reached only when the block exited normally: publish the new table.
                self._table = batch.table
            finally:
                batch.closed = True
                self._writer_thread = None

    def close(self) -> None:
        """Drop the data; later calls raise `StoreClosedError`.

        Raises:
            StoreError: called inside this thread's own `atomic()` block.
        """
        if self._writer_thread == threading.get_ident():
            raise StoreError("cannot close the store inside its own atomic() block")
        with self._writer:
            self._closed = True
            self._table = _Table({}, [])
