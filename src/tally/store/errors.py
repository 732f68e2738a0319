"""Exceptions of the store layer.

None of these is a `tally.model.Rejection`: a store error means the node itself is misused
or its disk is in trouble, never that a client sent bad input. The node stops loudly on
them rather than answering a client.
"""

from __future__ import annotations

__all__ = [
    "StoreError",
    "StoreClosedError",
    "NestedBatchError",
    "BatchClosedError",
    "InvalidKeyError",
    "StoreFullError",
    "SchemaError",
    "NewerSchemaError",
    "UnversionedStoreError",
    "NotInitialisedError",
    "AlreadyInitialisedError",
    "BlockOrderError",
    "InconsistentBlockError",
]


class StoreError(Exception):
    """The root of every error raised by `tally.store`."""


class StoreClosedError(StoreError):
    """The store was used after `close()`."""


class NestedBatchError(StoreError):
    """`atomic()` was entered again on a thread that already holds a batch.

    Writers are serialised, so waiting here would wait for ourselves forever.
    """


class BatchClosedError(StoreError):
    """A write batch was used after its `atomic()` block ended."""


class InvalidKeyError(StoreError, ValueError):
    """A key is empty or longer than the backends can hold."""

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


class StoreFullError(StoreError):
    """The store could not grow to hold a batch; the batch was discarded."""


class SchemaError(StoreError):
    """The store's layout is not one this code can use."""


class NewerSchemaError(SchemaError):
    """The store was written by a newer version of Tally; this one cannot read it."""

    def __init__(self, message: str, *, found: int, supported: int) -> None:
        super().__init__(message)
        self.found = found
        self.supported = supported


class UnversionedStoreError(SchemaError):
    """The store holds data but no schema version: it is not a Tally store."""


class NotInitialisedError(StoreError):
    """The ledger has no genesis yet; call `LedgerStore.init_genesis` first."""


class AlreadyInitialisedError(StoreError):
    """`LedgerStore.init_genesis` was called on a ledger that has a genesis."""


class BlockOrderError(StoreError):
    """A block does not extend the stored tip: wrong height or wrong parent hash."""

    def __init__(
        self,
        message: str,
        *,
        expected_height: int,
        found_height: int,
        expected_prev_hash: bytes,
        found_prev_hash: bytes,
    ) -> None:
        super().__init__(message)
        self.expected_height = expected_height
        self.found_height = found_height
        self.expected_prev_hash = expected_prev_hash
        self.found_prev_hash = found_prev_hash


class InconsistentBlockError(StoreError):
    """The block, its certificate, its ids and its execution outcome do not belong together."""
