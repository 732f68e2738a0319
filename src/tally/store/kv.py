"""The storage interface: a sorted bytes-to-bytes map with atomic write batches.

Everything the node keeps on disk goes through `KeyValueStore`, a deliberately narrow
protocol that LMDB (`tally.store.lmdb_store`) and a dictionary (`tally.store.memory`)
both implement, and that one conformance test class checks for both. Keys are compared
as unsigned bytes, so big-endian integers in keys iterate in numeric order.

Reads outside a batch each see some committed state. An iterator from `iter_prefix`
sees one committed state from start to end, whatever commits meanwhile; to see several
keys from the same state, read them inside one `snapshot()`. Writes happen only inside
`atomic()`: everything written in the block becomes visible and durable at once when it
exits normally, and nothing does if it raises. One batch is open at a time; other
threads entering `atomic()` wait their turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Final, Protocol

from tally.store.errors import InvalidKeyError

__all__ = ["KeyValueReader", "WriteBatch", "KeyValueStore", "MAX_KEY_SIZE", "check_key"]

MAX_KEY_SIZE: Final = 511
"""Longest key in bytes: LMDB's limit in its default build, enforced by every backend alike."""


class KeyValueReader(Protocol):
    """Read access to a sorted bytes-to-bytes map."""

    def get(self, key: bytes) -> bytes | None:
        """The value stored at `key`, or None if there is none."""
        ...

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every `(key, value)` whose key starts with `prefix`, in ascending key order.

        An empty prefix iterates the whole store.
        """
        ...


class WriteBatch(KeyValueReader, Protocol):
    """The writes of one `atomic()` block; its reads see its own writes.

    The batch may be written while one of its own `iter_prefix` iterators is open (to
    delete the entries it yields, say): the iterator goes on from the last key it yielded.
    Whether it yields a key written after it started, past its position, is unspecified.
    A batch must not be used after its block has ended.
    """

    def put(self, key: bytes, value: bytes) -> None:
        """Set `key` to `value`, replacing any value it had.

        Raises:
            InvalidKeyError: `key` is empty or longer than `MAX_KEY_SIZE`.
        """
        ...

    def delete(self, key: bytes) -> None:
        """Remove `key`; removing a key that is absent does nothing."""
        ...


class KeyValueStore(KeyValueReader, Protocol):
    """A durable (or, for tests, in-memory) sorted map written in atomic batches."""

    def atomic(self) -> AbstractContextManager[WriteBatch]:
        """Open a write batch that commits when the block exits normally.

        If the block raises, the batch is discarded and the exception propagates. When
        the block has exited normally, its writes are committed (for a durable store, on
        disk); the batch is the unit of atomicity and durability.

        Raises:
            NestedBatchError: this thread already holds an open batch.
            StoreClosedError: the store is closed.
        """
        ...

    def snapshot(self) -> AbstractContextManager[KeyValueReader]:
        """Open a read-only view of the latest committed state that later commits leave alone.

        Keep it short: a durable store cannot reuse space that an open snapshot still sees.
        """
        ...

    def close(self) -> None:
        """Release the store's resources; later calls raise `StoreClosedError`."""
        ...


def check_key(key: bytes) -> None:
    """Refuse a key no backend can hold, so that every backend refuses the same keys.

    Raises:
        InvalidKeyError: `key` is empty or longer than `MAX_KEY_SIZE`.
    """
    if not 0 < len(key) <= MAX_KEY_SIZE:
        raise InvalidKeyError(f"a key is 1 to {MAX_KEY_SIZE} bytes, got {len(key)}", size=len(key))
