"""The key layout, row formats, schema versions and forward-only migrations."""

from __future__ import annotations

import pytest

from tally.model import AssetCode, BlockHash, CoinId, Height, TxId
from tally.store import (
    SCHEMA_VERSION,
    LedgerStore,
    NewerSchemaError,
    UnversionedStoreError,
    WriteBatch,
    migrate,
    schema,
    schema_version,
)

from .conftest import Backend

ID = bytes(range(32))


def every_key() -> list[bytes]:
    return [
        schema.schema_version_key(),
        schema.genesis_key(),
        schema.tip_key(),
        schema.commitment_key(),
        schema.governance_key(),
        schema.unspent_key(CoinId(ID)),
        schema.spent_key(CoinId(ID)),
        schema.address_key(ID, CoinId(ID)),
        schema.supply_key(AssetCode("CNY")),
        schema.issuer_key(AssetCode("CNY")),
        schema.idempotency_key(TxId(ID)),
        schema.expiry_key(Height(7), TxId(ID)),
        schema.block_key(Height(7)),
        schema.certificate_key(Height(7)),
        schema.block_hash_key(BlockHash(ID)),
        schema.tx_key(TxId(ID)),
    ]


def test_every_key_starts_with_the_version_prefix_and_a_known_table():
    tables = set(schema.TABLES.values())
    assert len(tables) == len(schema.TABLES)  # no two tables share a byte
    assert all(len(table) == 1 for table in tables)
    for key in every_key():
        assert key[:1] == schema.KEY_PREFIX == b"\x01"
        assert key[1:2] in tables
    assert len(set(every_key())) == len(every_key())


def test_keys_parse_back_to_their_parts():
    assert schema.coin_id_of_unspent_key(schema.unspent_key(CoinId(ID))) == ID
    assert schema.coin_id_of_address_key(schema.address_key(bytes(32), CoinId(ID))) == ID
    assert schema.asset_of_supply_key(schema.supply_key(AssetCode("EUR2"))) == "EUR2"
    assert schema.asset_of_issuer_key(schema.issuer_key(AssetCode("CNY"))) == "CNY"
    assert schema.parse_expiry_key(schema.expiry_key(Height(2**40), TxId(ID))) == (2**40, ID)
    assert schema.address_key(ID, CoinId(bytes(32))).startswith(schema.address_prefix(ID))


def test_expiry_keys_sort_by_valid_until():
    keys = [schema.expiry_key(Height(h), TxId(bytes(32))) for h in (300, 2, 256, 1, 2**33)]
    assert [schema.parse_expiry_key(k)[0] for k in sorted(keys)] == [1, 2, 256, 300, 2**33]


def test_rows_round_trip():
    assert schema.unpack_tip(schema.pack_tip(Height(9), BlockHash(ID))) == (9, ID)
    assert schema.unpack_spent(schema.pack_spent(TxId(ID), b"coin")) == (ID, b"coin")
    assert schema.unpack_tx_row(schema.pack_tx_row(Height(5), 70_000, b"\x91\xa2ok")) == (
        5,
        70_000,
        b"\x91\xa2ok",
    )
    with pytest.raises(ValueError, match="u64"):
        schema.unpack_u64(b"\x00")


def test_migrate_writes_the_version_on_a_fresh_store(kv):
    assert schema_version(kv) == 0
    assert migrate(kv) == SCHEMA_VERSION == 3
    assert schema_version(kv) == 3
    assert kv.get(schema.schema_version_key()) == (3).to_bytes(4, "big")
    assert migrate(kv) == 3  # running it again changes nothing
    assert list(kv.iter_prefix(b"")) == [(schema.schema_version_key(), (3).to_bytes(4, "big"))]


def test_migrate_refuses_a_store_from_a_newer_version(kv):
    with kv.atomic() as batch:
        batch.put(schema.schema_version_key(), (SCHEMA_VERSION + 1).to_bytes(4, "big"))
    with pytest.raises(NewerSchemaError) as caught:
        migrate(kv)
    assert (caught.value.found, caught.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert "upgrade Tally" in str(caught.value)
    with pytest.raises(NewerSchemaError):
        LedgerStore.open(kv)


def test_migrate_refuses_a_store_with_data_but_no_version(kv):
    with kv.atomic() as batch:
        batch.put(b"someone else's key", b"v")
    with pytest.raises(UnversionedStoreError):
        migrate(kv)


def _rename_row(batch: WriteBatch) -> None:
    value = batch.get(b"\x01mold")
    assert value is not None
    batch.delete(b"\x01mold")
    batch.put(b"\x01mnew", value)


def _fail_halfway(batch: WriteBatch) -> None:
    batch.put(b"\x01mhalf", b"written before the failure")
    raise RuntimeError("migration step failed")


def test_migrations_run_in_order_from_the_stored_version(backend: Backend) -> None:
    kv = backend.open()
    migrate(kv)  # the current version
    with kv.atomic() as batch:
        batch.put(b"\x01mold", b"row")
    steps = (*schema.MIGRATIONS, _rename_row)
    assert migrate(kv, steps) == SCHEMA_VERSION + 1
    assert kv.get(b"\x01mold") is None
    assert kv.get(b"\x01mnew") == b"row"
    kv = backend.reopen(kv)
    assert schema_version(kv) == SCHEMA_VERSION + 1
    # This code knows the current version only: the migrated store is now too new for it.
    with pytest.raises(NewerSchemaError):
        migrate(kv)


def test_a_failing_migration_step_leaves_the_previous_version_whole(kv):
    steps = (*schema.MIGRATIONS, _fail_halfway)
    with pytest.raises(RuntimeError, match="migration step failed"):
        migrate(kv, steps)
    # The real steps committed; the failing one left no trace.
    assert schema_version(kv) == SCHEMA_VERSION
    assert kv.get(b"\x01mhalf") is None
