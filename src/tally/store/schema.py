"""The layout of the node's key-value store: every key, every row format, and migrations.

Every key starts with the layout version byte `KEY_PREFIX` (``0x01``) and one table byte;
the rest of the key is the row's id within its table. Integers in keys are big-endian, so
a prefix scan meets them in numeric order (heights, expiry heights).

| table        | byte | key after the table byte          | value                                  |
| ------------ | ---- | --------------------------------- | -------------------------------------- |
| meta         | `m`  | a name (`genesis`, `tip`, …)      | see `META_*` below                     |
| unspent      | `c`  | coin id (32)                      | the coin's canonical bytes             |
| spent        | `s`  | coin id (32)                      | spending txid (32) + the coin's bytes  |
| address      | `a`  | lock hash (32) + coin id (32)     | empty; one row per unspent coin        |
| supply       | `u`  | asset code (ASCII)                | encoded `Supply`                       |
| issuer       | `i`  | asset code (ASCII)                | the issuer's public key (32)           |
| idempotency  | `d`  | txid (32)                         | `valid_until` (u64)                    |
| expiry       | `e`  | `valid_until` (u64) + txid (32)   | empty; finds idempotency rows to prune |
| block        | `b`  | height (u64)                      | the block's canonical bytes            |
| certificate  | `k`  | height (u64)                      | the commit certificate's bytes         |
| block hash   | `h`  | block hash (32)                   | height (u64)                           |
| tx           | `t`  | txid (32)                         | height (u64) + index (u32) + receipt   |
| origin       | `o`  | coin id (32)                      | txid + output (u16) + height (u64)     |
| history      | `y`  | lock hash + ~height (u64) + index | txid + received (u16) + spent (u16)    |
| barred       | `x`  | owner key (32)                    | height barred at (u64)                 |
| double spend | `v`  | owner (32) + coin id + second txid| first txid (32) + height (u64)         |

`origin` says which transaction created each coin, and `history` lists the accepted
transactions that paid an address or spent its coins; both only for the explorer and
wallets, never read by the rules. History keys hold the height inverted (2^64 - 1 -
height), so a prefix scan meets an address's newest transactions first.

`barred` lists the keys barred from offline locks; the rules read it (and the state
commitment covers it). `double spend` keeps, per barred key, the evidence of each double
spend: the coin, the transaction recorded as `offline.double_spend` and the height of its
block, and the transaction that spent the coin first; a node serves it as a
`DoubleSpendProof` (both transactions are in stored blocks).

The schema version lives at `schema_version_key()` and that key never moves, so that any
future layout can still be recognised. Migrations are numbered and forward-only:
`MIGRATIONS[n]` takes a store from version n to n + 1 in one atomic batch, which also
writes the new version, so a crash leaves the store at some whole version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Final

from tally.model.address import lock_hash
from tally.model.block import Block
from tally.model.coin import Coin, coin_id
from tally.model.encoding import decode, tx_id
from tally.model.tx import Issue, Redeem, Transfer
from tally.model.types import AssetCode, BlockHash, CoinId, Height, PublicKey, TxId
from tally.store.errors import NewerSchemaError, UnversionedStoreError
from tally.store.kv import KeyValueStore, WriteBatch

__all__ = [
    "KEY_PREFIX",
    "TABLES",
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "Migration",
    "migrate",
    "schema_version",
    # keys
    "schema_version_key",
    "genesis_key",
    "tip_key",
    "commitment_key",
    "governance_key",
    "unspent_key",
    "unspent_prefix",
    "coin_id_of_unspent_key",
    "spent_key",
    "address_key",
    "address_prefix",
    "coin_id_of_address_key",
    "supply_key",
    "supply_prefix",
    "asset_of_supply_key",
    "issuer_key",
    "issuer_prefix",
    "asset_of_issuer_key",
    "idempotency_key",
    "expiry_key",
    "expiry_prefix",
    "parse_expiry_key",
    "block_key",
    "certificate_key",
    "block_hash_key",
    "tx_key",
    "origin_key",
    "history_prefix",
    "history_key",
    "parse_history_key",
    "barred_key",
    "barred_prefix",
    "owner_of_barred_key",
    "double_spend_key",
    "double_spend_prefix",
    "parse_double_spend_key",
    # rows
    "pack_u64",
    "unpack_u64",
    "pack_tip",
    "unpack_tip",
    "pack_spent",
    "unpack_spent",
    "pack_tx_row",
    "unpack_tx_row",
    "pack_origin",
    "unpack_origin",
    "pack_history",
    "unpack_history",
    "pack_double_spend",
    "unpack_double_spend",
    "origin_and_history_rows",
]

KEY_PREFIX: Final = b"\x01"
"""First byte of every key: the key layout's version."""

_META: Final = b"m"
_UNSPENT: Final = b"c"
_SPENT: Final = b"s"
_ADDRESS: Final = b"a"
_SUPPLY: Final = b"u"
_ISSUER: Final = b"i"
_IDEMPOTENCY: Final = b"d"
_EXPIRY: Final = b"e"
_BLOCK: Final = b"b"
_CERTIFICATE: Final = b"k"
_BLOCK_HASH: Final = b"h"
_TX: Final = b"t"
_ORIGIN: Final = b"o"
_HISTORY: Final = b"y"
_BARRED: Final = b"x"
_DOUBLE_SPEND: Final = b"v"

TABLES: Final = {
    "meta": _META,
    "unspent": _UNSPENT,
    "spent": _SPENT,
    "address": _ADDRESS,
    "supply": _SUPPLY,
    "issuer": _ISSUER,
    "idempotency": _IDEMPOTENCY,
    "expiry": _EXPIRY,
    "block": _BLOCK,
    "certificate": _CERTIFICATE,
    "block_hash": _BLOCK_HASH,
    "tx": _TX,
    "origin": _ORIGIN,
    "history": _HISTORY,
    "barred": _BARRED,
    "double_spend": _DOUBLE_SPEND,
}
"""Every table's byte by name; distinct, so no two tables share a key."""

_ID_SIZE: Final = 32
_U64_SIZE: Final = 8
_U32_SIZE: Final = 4
_U16_SIZE: Final = 2
_MAX_U64: Final = 2**64 - 1


def _table(table: bytes) -> bytes:
    return KEY_PREFIX + table


# -- meta ---------------------------------------------------------------------------------


def schema_version_key() -> bytes:
    """Key of the schema version (u32). It never moves, whatever the layout version."""
    return KEY_PREFIX + _META + b"schema_version"


def genesis_key() -> bytes:
    """Key of the genesis document's canonical bytes."""
    return KEY_PREFIX + _META + b"genesis"


def tip_key() -> bytes:
    """Key of the tip: height (u64) and block hash (32); genesis is height 0."""
    return KEY_PREFIX + _META + b"tip"


def commitment_key() -> bytes:
    """Key of the state commitment accumulator after the tip (2048 bytes)."""
    return KEY_PREFIX + _META + b"commitment"


def governance_key() -> bytes:
    """Key of the encoded `Governance` in force after the tip."""
    return KEY_PREFIX + _META + b"governance"


# -- coins --------------------------------------------------------------------------------


def unspent_prefix() -> bytes:
    """Prefix of every unspent coin row."""
    return _table(_UNSPENT)


def unspent_key(coin_id: CoinId) -> bytes:
    """Key of an unspent coin."""
    return _table(_UNSPENT) + coin_id


def coin_id_of_unspent_key(key: bytes) -> CoinId:
    """The coin id in a key from `unspent_prefix()`."""
    return CoinId(key[len(KEY_PREFIX) + 1 :])


def spent_key(coin_id: CoinId) -> bytes:
    """Key of a spent coin: who spent it, and the coin itself."""
    return _table(_SPENT) + coin_id


def address_prefix(lock_hash: bytes) -> bytes:
    """Prefix of the address rows of every unspent coin under one lock."""
    return _table(_ADDRESS) + lock_hash


def address_key(lock_hash: bytes, coin_id: CoinId) -> bytes:
    """Key of one unspent coin's address row."""
    return _table(_ADDRESS) + lock_hash + coin_id


def coin_id_of_address_key(key: bytes) -> CoinId:
    """The coin id in a key from `address_prefix(...)`."""
    return CoinId(key[-_ID_SIZE:])


# -- assets -------------------------------------------------------------------------------


def supply_prefix() -> bytes:
    """Prefix of every supply row."""
    return _table(_SUPPLY)


def supply_key(asset: AssetCode) -> bytes:
    """Key of an asset's supply totals."""
    return _table(_SUPPLY) + asset.encode("ascii")


def asset_of_supply_key(key: bytes) -> AssetCode:
    """The asset code in a key from `supply_prefix()`."""
    return AssetCode(key[len(KEY_PREFIX) + 1 :].decode("ascii"))


def issuer_prefix() -> bytes:
    """Prefix of every issuer row."""
    return _table(_ISSUER)


def issuer_key(asset: AssetCode) -> bytes:
    """Key of the public key registered to issue an asset."""
    return _table(_ISSUER) + asset.encode("ascii")


def asset_of_issuer_key(key: bytes) -> AssetCode:
    """The asset code in a key from `issuer_prefix()`."""
    return AssetCode(key[len(KEY_PREFIX) + 1 :].decode("ascii"))


# -- idempotency --------------------------------------------------------------------------


def idempotency_key(txid: TxId) -> bytes:
    """Key of a committed transaction's idempotency row."""
    return _table(_IDEMPOTENCY) + txid


def expiry_prefix() -> bytes:
    """Prefix of the expiry index, which iterates in order of `valid_until`."""
    return _table(_EXPIRY)


def expiry_key(valid_until: Height, txid: TxId) -> bytes:
    """Key of an idempotency row's entry in the expiry index."""
    return _table(_EXPIRY) + pack_u64(valid_until) + txid


def parse_expiry_key(key: bytes) -> tuple[Height, TxId]:
    """The `valid_until` and txid in a key from `expiry_prefix()`."""
    start = len(KEY_PREFIX) + 1
    return Height(unpack_u64(key[start : start + _U64_SIZE])), TxId(key[start + _U64_SIZE :])


# -- blocks and transactions --------------------------------------------------------------


def block_key(height: Height) -> bytes:
    """Key of the block at a height (1 and up)."""
    return _table(_BLOCK) + pack_u64(height)


def certificate_key(height: Height) -> bytes:
    """Key of the commit certificate of the block at a height."""
    return _table(_CERTIFICATE) + pack_u64(height)


def block_hash_key(block_hash: BlockHash | bytes) -> bytes:
    """Key of the height of the block with this hash."""
    return _table(_BLOCK_HASH) + block_hash


def tx_key(txid: TxId) -> bytes:
    """Key of where a transaction was ordered, and its receipt."""
    return _table(_TX) + txid


def origin_key(coin_id: CoinId) -> bytes:
    """Key of the transaction that created a coin."""
    return _table(_ORIGIN) + coin_id


def history_prefix(lock_hash: bytes) -> bytes:
    """Prefix of an address's history rows, newest first."""
    return _table(_HISTORY) + lock_hash


def history_key(lock_hash: bytes, height: Height, index: int) -> bytes:
    """Key of one transaction in an address's history."""
    inverted = _MAX_U64 - height
    return history_prefix(lock_hash) + pack_u64(inverted) + index.to_bytes(_U32_SIZE, "big")


def parse_history_key(key: bytes) -> tuple[Height, int]:
    """The height and index in the block of a history key."""
    body = key[len(KEY_PREFIX) + 1 + _ID_SIZE :]
    return Height(_MAX_U64 - unpack_u64(body[:_U64_SIZE])), int.from_bytes(body[_U64_SIZE:], "big")


# -- offline: barred keys and double spends -----------------------------------------------


def barred_prefix() -> bytes:
    """Prefix of every barred key's row."""
    return _table(_BARRED)


def barred_key(owner: PublicKey) -> bytes:
    """Key of a key barred from offline locks."""
    return _table(_BARRED) + owner


def owner_of_barred_key(key: bytes) -> PublicKey:
    """The owner key in a key from `barred_prefix()`."""
    return PublicKey(key[len(KEY_PREFIX) + 1 :])


def double_spend_prefix(owner: PublicKey) -> bytes:
    """Prefix of the double-spend rows of one barred key."""
    return _table(_DOUBLE_SPEND) + owner


def double_spend_key(owner: PublicKey, coin_id: CoinId, second: TxId) -> bytes:
    """Key of one double spend: the owner, the coin, and the transaction recorded for it."""
    return _table(_DOUBLE_SPEND) + owner + coin_id + second


def parse_double_spend_key(key: bytes) -> tuple[PublicKey, CoinId, TxId]:
    """The owner, coin id and second txid in a key from `double_spend_prefix(...)`."""
    body = key[len(KEY_PREFIX) + 1 :]
    return (
        PublicKey(body[:_ID_SIZE]),
        CoinId(body[_ID_SIZE : 2 * _ID_SIZE]),
        TxId(body[2 * _ID_SIZE :]),
    )


# -- rows ---------------------------------------------------------------------------------


def pack_u64(value: int) -> bytes:
    """Eight big-endian bytes: the form of heights in keys and rows."""
    return value.to_bytes(_U64_SIZE, "big")


def unpack_u64(data: bytes) -> int:
    """The integer `pack_u64` wrote."""
    if len(data) != _U64_SIZE:
        raise ValueError(f"a u64 is {_U64_SIZE} bytes, got {len(data)}")
    return int.from_bytes(data, "big")


def pack_tip(height: Height, block_hash: BlockHash | bytes) -> bytes:
    """The tip row: height (u64) + hash (32)."""
    return pack_u64(height) + block_hash


def unpack_tip(data: bytes) -> tuple[Height, BlockHash]:
    """The height and hash in a tip row."""
    return Height(unpack_u64(data[:_U64_SIZE])), BlockHash(data[_U64_SIZE:])


def pack_spent(txid: TxId, coin_bytes: bytes) -> bytes:
    """The spent row: the spending txid (32) + the coin's canonical bytes."""
    return txid + coin_bytes


def unpack_spent(data: bytes) -> tuple[TxId, bytes]:
    """The spending txid and the coin bytes in a spent row."""
    return TxId(data[:_ID_SIZE]), data[_ID_SIZE:]


def pack_tx_row(height: Height, index: int, receipt_bytes: bytes) -> bytes:
    """The tx row: height (u64) + index in the block (u32) + the receipt's bytes."""
    return pack_u64(height) + index.to_bytes(_U32_SIZE, "big") + receipt_bytes


def unpack_tx_row(data: bytes) -> tuple[Height, int, bytes]:
    """The height, index and receipt bytes in a tx row."""
    index_end = _U64_SIZE + _U32_SIZE
    return (
        Height(unpack_u64(data[:_U64_SIZE])),
        int.from_bytes(data[_U64_SIZE:index_end], "big"),
        data[index_end:],
    )


def pack_origin(txid: TxId, output: int, height: Height) -> bytes:
    """The origin row: creating txid + output index (u16) + height (u64)."""
    return txid + output.to_bytes(_U16_SIZE, "big") + pack_u64(height)


def unpack_origin(data: bytes) -> tuple[TxId, int, Height]:
    """The creating txid, output index and height in an origin row."""
    output_end = _ID_SIZE + _U16_SIZE
    return (
        TxId(data[:_ID_SIZE]),
        int.from_bytes(data[_ID_SIZE:output_end], "big"),
        Height(unpack_u64(data[output_end:])),
    )


def pack_history(txid: TxId, received: int, spent: int) -> bytes:
    """The history row: txid + outputs paid to the address (u16) + its coins spent (u16)."""
    return txid + received.to_bytes(_U16_SIZE, "big") + spent.to_bytes(_U16_SIZE, "big")


def unpack_history(data: bytes) -> tuple[TxId, int, int]:
    """The txid, outputs received and coins spent in a history row."""
    received_end = _ID_SIZE + _U16_SIZE
    return (
        TxId(data[:_ID_SIZE]),
        int.from_bytes(data[_ID_SIZE:received_end], "big"),
        int.from_bytes(data[received_end:], "big"),
    )


def pack_double_spend(first: TxId, height: Height) -> bytes:
    """The double-spend row: the txid that spent the coin first + the height of the record."""
    return first + pack_u64(height)


def unpack_double_spend(data: bytes) -> tuple[TxId, Height]:
    """The first txid and the recording block's height in a double-spend row."""
    return TxId(data[:_ID_SIZE]), Height(unpack_u64(data[_ID_SIZE:]))


def origin_and_history_rows(
    block: Block, txids: Sequence[TxId], spent_coin: Callable[[CoinId], Coin | None]
) -> Iterator[tuple[bytes, bytes]]:
    """The origin and history rows of a block's accepted transactions.

    Args:
        block: The block.
        txids: Its transactions' ids, in order.
        spent_coin: The coin an input spent (the block's own delta, or the spent table).
    """
    height = block.header.height
    for index, (tx, txid, receipt) in enumerate(zip(block.txs, txids, block.receipts, strict=True)):
        if not receipt.accepted:
            continue
        body = tx.body
        touched: dict[bytes, list[int]] = {}  # lock hash -> [received, spent]
        if isinstance(body, Issue | Transfer):
            for output, created in enumerate(body.outputs):
                yield origin_key(coin_id(txid, output)), pack_origin(txid, output, height)
                touched.setdefault(lock_hash(created.lock), [0, 0])[0] += 1
        if isinstance(body, Transfer | Redeem):
            for cid in body.inputs:
                spent_one = spent_coin(cid)
                if spent_one is not None:
                    touched.setdefault(lock_hash(spent_one.lock), [0, 0])[1] += 1
        for address, (received, spent) in touched.items():
            yield history_key(address, height, index), pack_history(txid, received, spent)


# -- versions and migrations --------------------------------------------------------------

Migration = Callable[[WriteBatch], None]
"""Rewrites a store from one schema version to the next, inside the batch it is given."""


def _create_version_1(batch: WriteBatch) -> None:
    """Version 0 is the empty store; version 1 is the first layout and needs no rows."""


def _add_origin_and_history(batch: WriteBatch) -> None:
    """Version 2 adds the origin and history tables, rebuilt from the stored blocks."""

    def spent_coin(cid: CoinId) -> Coin | None:
        row = batch.get(spent_key(cid))
        return None if row is None else decode(unpack_spent(row)[1], Coin)

    for _, block_bytes in batch.iter_prefix(_table(_BLOCK)):
        block = decode(block_bytes, Block)
        txids = [tx_id(tx.body) for tx in block.txs]
        for key, value in origin_and_history_rows(block, txids, spent_coin):
            batch.put(key, value)


def _add_offline_tables(batch: WriteBatch) -> None:
    """Version 3 adds the barred and double-spend tables for offline payments.

    They start empty: a store of version 2 was written by code that knew no `OfflineLock`
    (its decoder refused lock tag 4), so no stored coin is offline, no stored receipt is
    `offline.double_spend`, and no key is barred. For the same reason the stored state
    commitment, which now also covers barred keys, is unchanged.
    """


MIGRATIONS: Final[tuple[Migration, ...]] = (
    _create_version_1,
    _add_origin_and_history,
    _add_offline_tables,
)
"""`MIGRATIONS[n]` takes a store from version n to n + 1."""

SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The version this code reads and writes."""


def schema_version(kv: KeyValueStore) -> int:
    """The store's schema version; 0 for an empty store.

    Raises:
        UnversionedStoreError: the store holds keys but no version.
    """
    data = kv.get(schema_version_key())
    if data is not None:
        return int.from_bytes(data, "big")
    first = next(kv.iter_prefix(b""), None)
    if first is not None:
        raise UnversionedStoreError(
            f"the store holds data (first key {first[0].hex()}) but no schema version;"
            " it was not written by Tally"
        )
    return 0


def migrate(kv: KeyValueStore, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the store up to the latest version, one atomic step per version.

    Args:
        kv: The store; empty, or written by this or an older version.
        migrations: The steps; tests pass their own to exercise more than one.

    Returns:
        The version the store is now at: `len(migrations)`.

    Raises:
        NewerSchemaError: the store is at a version newer than this code knows.
        UnversionedStoreError: the store holds keys but no version.
    """
    target = len(migrations)
    version = schema_version(kv)
    if version > target:
        raise NewerSchemaError(
            f"the store is at schema version {version}, this Tally reads up to {target};"
            " upgrade Tally to open it",
            found=version,
            supported=target,
        )
    for step in range(version, target):
        with kv.atomic() as batch:
            migrations[step](batch)
            batch.put(schema_version_key(), (step + 1).to_bytes(_U32_SIZE, "big"))
    return target
