"""Durable state and block storage: a small key-value interface, LMDB and in-memory backends.

- `KeyValueStore`, `WriteBatch`, `KeyValueReader`: the storage protocol (`tally.store.kv`).
- `LmdbStore`: the durable backend; `MemoryStore`: its in-memory twin for tests.
- `tally.store.schema`: every key and row format, the schema version and migrations.
- `LedgerStore`: the ledger over a store; implements the rules' `StateView` and writes
  each block in one atomic batch.
"""

from tally.store.errors import (
    AlreadyInitialisedError,
    BatchClosedError,
    BlockOrderError,
    InconsistentBlockError,
    InvalidKeyError,
    NestedBatchError,
    NewerSchemaError,
    NotInitialisedError,
    SchemaError,
    StoreClosedError,
    StoreError,
    StoreFullError,
    UnversionedStoreError,
)
from tally.store.kv import MAX_KEY_SIZE, KeyValueReader, KeyValueStore, WriteBatch
from tally.store.ledger import (
    DoubleSpendRecord,
    HistoryEntry,
    Inclusion,
    LedgerStore,
    Origin,
    TxRecord,
)
from tally.store.lmdb_store import DEFAULT_MAP_SIZE, LmdbStore
from tally.store.memory import MemoryStore
from tally.store.schema import SCHEMA_VERSION, migrate, schema_version

__all__ = [
    # storage protocol and backends
    "KeyValueReader",
    "WriteBatch",
    "KeyValueStore",
    "MAX_KEY_SIZE",
    "LmdbStore",
    "DEFAULT_MAP_SIZE",
    "MemoryStore",
    # schema
    "SCHEMA_VERSION",
    "migrate",
    "schema_version",
    # ledger
    "LedgerStore",
    "TxRecord",
    "Origin",
    "HistoryEntry",
    "DoubleSpendRecord",
    "Inclusion",
    # errors
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
