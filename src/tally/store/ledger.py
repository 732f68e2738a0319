"""`LedgerStore`: the ledger's state, blocks and receipts over a `KeyValueStore`.

The node reads the state through `LedgerStore` (it implements the rules' `StateView`),
calls a pure rule (`tally.rules.apply_block`), and hands the outcome back to
`commit_block`, which writes everything the block changes in one atomic batch: the coin
set and its indexes, supply, issuers, governance, the idempotency table, the block, its
certificate and receipts, the state commitment and the tip. A crash therefore leaves the
ledger at the end of some whole block, never inside one.

Offline payments add two tables: keys barred for a double spend (read by the rules) and the
evidence of each double spend, from which `double_spend_proofs` rebuilds the proofs a node
serves. `inclusion` gives what an offline device needs to check that a transaction is in a
final block.

Governance and the commitment accumulator are read at every block, so they are kept in
memory, replaced after each commit by what the commit wrote. Everything else is read from
the store on demand. One `LedgerStore` writes a given store; any number of threads may
read through it while that one writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import msgspec

from tally.crypto.commitment import StateCommitment
from tally.model.address import lock_hash as lock_hash_of
from tally.model.block import ACCEPTED, Block, CommitCertificate, Header, Receipt
from tally.model.coin import Coin
from tally.model.encoding import block_hash, decode, encode, genesis_hash, tx_id
from tally.model.genesis import Genesis
from tally.model.offline import DoubleSpendProof, TxInclusionProof
from tally.model.tx import SignedTx
from tally.model.types import AssetCode, BlockHash, CoinId, Hash32, Height, PublicKey, TxId
from tally.rules.apply import BlockOutcome
from tally.rules.block import tx_inclusion_proof
from tally.rules.errors import DoubleSpendError
from tally.rules.state import (
    Governance,
    StateDelta,
    Supply,
    commitment_from_scratch,
    governance_from_genesis,
)
from tally.store import schema
from tally.store.errors import (
    AlreadyInitialisedError,
    BlockOrderError,
    InconsistentBlockError,
    NotInitialisedError,
    StoreError,
)
from tally.store.kv import KeyValueReader, KeyValueStore, WriteBatch

if TYPE_CHECKING:
    from tally.rules.state import StateView

__all__ = [
    "LedgerStore",
    "LedgerSnapshot",
    "TxRecord",
    "Origin",
    "HistoryEntry",
    "DoubleSpendRecord",
    "Inclusion",
]


class TxRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Where a transaction was ordered and what became of it (a store row, not wire data)."""

    height: Height
    """Height of the block that ordered it."""
    index: int
    """Its position among the block's transactions, from 0."""
    receipt: Receipt
    """Accepted, or the code of the rule it broke."""


@dataclass(frozen=True)
class _Head:
    """What the ledger keeps in memory; replaced whole, so readers see one consistent head."""

    genesis: Genesis
    height: Height
    block_hash: BlockHash
    governance: Governance
    commitment: StateCommitment
    """Never changed in place: `LedgerStore.commitment()` hands out copies."""


@dataclass(frozen=True)
class Origin:
    """Where a coin was created."""

    txid: TxId
    """The creating transaction."""
    output: int
    """The coin's output index in it."""
    height: Height
    """The height of the block that committed it."""


@dataclass(frozen=True)
class HistoryEntry:
    """One accepted transaction that paid an address or spent its coins."""

    height: Height
    """The block's height."""
    index: int
    """The transaction's position in the block."""
    txid: TxId
    """The transaction."""
    received: int
    """How many of its outputs went to the address."""
    spent: int
    """How many of the address's coins it spent."""


@dataclass(frozen=True)
class DoubleSpendRecord:
    """One double spend the ledger recorded against a barred key (a store row)."""

    owner: PublicKey
    """The barred key, which signed both spends."""
    coin_id: CoinId
    """The coin spent twice."""
    first: TxId
    """The transaction that spent the coin (accepted)."""
    second: TxId
    """The transaction recorded as `offline.double_spend`."""
    height: Height
    """The height of the block that recorded the second."""


@dataclass(frozen=True)
class Inclusion:
    """A committed transaction with what proves it is in a final block."""

    txid: TxId
    """The transaction's id."""
    height: Height
    """The height of its block."""
    index: int
    """Its position among the block's transactions."""
    tx: SignedTx
    """The transaction as the block holds it."""
    receipt: Receipt
    """Its receipt."""
    proof: TxInclusionProof
    """The Merkle path from `tx_id + encode(receipt)` to `header.tx_root`."""
    header: Header
    """The block's header."""
    certificate: CommitCertificate
    """The header's commit certificate."""


class LedgerStore:
    """The ledger's durable state; implements `tally.rules.state.StateView`.

    Build one with `LedgerStore.open`, which brings the store's schema up to date.
    """

    def __init__(self, kv: KeyValueStore) -> None:
        self._kv = kv
        self._head: _Head | None = None

    @classmethod
    def open(cls, kv: KeyValueStore) -> LedgerStore:
        """Open the ledger in `kv`, migrating its schema; `kv` may be empty.

        Raises:
            NewerSchemaError: the store was written by a newer Tally.
            UnversionedStoreError: the store holds data that Tally did not write.
        """
        schema.migrate(kv)
        ledger = cls(kv)
        ledger._head = _load_head(kv)
        return ledger

    # -- genesis and tip ------------------------------------------------------------------

    def is_initialised(self) -> bool:
        """Whether the ledger has a genesis."""
        return self._kv.get(schema.tip_key()) is not None

    def init_genesis(self, genesis: Genesis) -> None:
        """Start the ledger at height 0 from `genesis`.

        Stores the genesis document, the governance and asset issuers it names, the
        empty state commitment, and the tip (0, genesis hash).

        Raises:
            AlreadyInitialisedError: the ledger already has a genesis.
        """
        digest = BlockHash(genesis_hash(genesis))
        governance = governance_from_genesis(genesis)
        commitment = StateCommitment()
        with self._kv.atomic() as batch:
            if batch.get(schema.tip_key()) is not None:
                raise AlreadyInitialisedError("the ledger already has a genesis")
            batch.put(schema.genesis_key(), encode(genesis))
            batch.put(schema.governance_key(), encode(governance))
            for entry in genesis.assets:
                batch.put(schema.issuer_key(entry.asset), entry.issuer)
            batch.put(schema.commitment_key(), commitment.to_bytes())
            # The genesis hash maps to height 0, so that the parent of block 1 resolves.
            batch.put(schema.block_hash_key(digest), schema.pack_u64(0))
            batch.put(schema.tip_key(), schema.pack_tip(Height(0), digest))
        self._head = _Head(
            genesis=genesis,
            height=Height(0),
            block_hash=digest,
            governance=governance,
            commitment=commitment,
        )

    def genesis(self) -> Genesis:
        """The genesis document.

        Raises:
            NotInitialisedError: the ledger has no genesis.
        """
        return self._require_head().genesis

    def tip(self) -> tuple[Height, BlockHash]:
        """Height and hash of the last committed block; (0, genesis hash) before any.

        Raises:
            NotInitialisedError: the ledger has no genesis.
        """
        head = self._require_head()
        return head.height, head.block_hash

    def _require_head(self) -> _Head:
        head = self._head
        if head is None:
            raise NotInitialisedError("the ledger has no genesis; call init_genesis first")
        return head

    # -- StateView ------------------------------------------------------------------------

    def coin(self, coin_id: CoinId) -> Coin | None:
        """The unspent coin with this id, or None if it is spent or never existed."""
        return _coin_in(self._kv, coin_id)

    def spender(self, coin_id: CoinId) -> TxId | None:
        """The transaction that spent this coin, or None if it is unspent or unknown."""
        return _spender_in(self._kv, coin_id)

    def spent(self, coin_id: CoinId) -> tuple[TxId, Coin] | None:
        """The spending transaction and the coin itself, for a spent coin; else None."""
        return _spent_in(self._kv, coin_id)

    def is_barred(self, owner: PublicKey) -> bool:
        """Whether `owner` is barred from offline locks for a double spend."""
        return _is_barred_in(self._kv, owner)

    def barred(self) -> Iterator[PublicKey]:
        """Every barred key, in key order, from one snapshot."""
        return _barred_in(self._kv)

    def double_spends(self, owner: PublicKey) -> list[DoubleSpendRecord]:
        """The double spends recorded against `owner`, by coin id and second txid."""
        records = []
        for key, value in self._kv.iter_prefix(schema.double_spend_prefix(owner)):
            _, cid, second = schema.parse_double_spend_key(key)
            first, height = schema.unpack_double_spend(value)
            records.append(
                DoubleSpendRecord(
                    owner=owner, coin_id=cid, first=first, second=second, height=height
                )
            )
        return records

    def double_spend_proofs(self, owner: PublicKey) -> list[DoubleSpendProof]:
        """The proofs of the double spends recorded against `owner`, rebuilt from the blocks.

        Raises:
            StoreError: a recorded transaction is missing from the blocks (corruption).
        """
        chain_id = self.genesis().chain_id
        proofs = []
        for record in self.double_spends(owner):
            first = self._accepted_tx(record.first)
            second = self._tx_in_block(record.second, record.height, DoubleSpendError.code)
            proofs.append(
                DoubleSpendProof(
                    chain_id=chain_id,
                    coin_id=record.coin_id,
                    owner=owner,
                    first=first,
                    second=second,
                )
            )
        return proofs

    def inclusion(self, txid: TxId) -> Inclusion | None:
        """An ordered transaction with its Merkle path, header and certificate, or None.

        None if the transaction was never ordered. For a transaction ordered more than once,
        the record `tx` keeps (its acceptance, if it was ever accepted) is the one proven.
        """
        with self._kv.snapshot() as view:
            record = _tx_in(view, txid)
            if record is None:
                return None
            block_bytes = view.get(schema.block_key(record.height))
            certificate_bytes = view.get(schema.certificate_key(record.height))
        if block_bytes is None or certificate_bytes is None:
            raise StoreError(f"transaction {txid.hex()} is indexed at a missing block")
        block = decode(block_bytes, Block)
        txids = [tx_id(tx.body) for tx in block.txs]
        return Inclusion(
            txid=txid,
            height=record.height,
            index=record.index,
            tx=block.txs[record.index],
            receipt=block.receipts[record.index],
            proof=tx_inclusion_proof(txids, block.receipts, record.index),
            header=block.header,
            certificate=decode(certificate_bytes, CommitCertificate),
        )

    def _accepted_tx(self, txid: TxId) -> SignedTx:
        record = self.tx(txid)
        if record is None:
            raise StoreError(f"transaction {txid.hex()} is not in the transaction index")
        return self._tx_in_block(txid, record.height, ACCEPTED)

    def _tx_in_block(self, txid: TxId, height: Height, code: str) -> SignedTx:
        # By receipt too: a faulty orderer may order one id twice with other witnesses.
        block = self.block(height)
        if block is not None:
            for tx, receipt in zip(block.txs, block.receipts, strict=True):
                if receipt.code == code and tx_id(tx.body) == txid:
                    return tx
        raise StoreError(f"transaction {txid.hex()} with receipt {code} is not in block {height}")

    def origin(self, coin_id: CoinId) -> Origin | None:
        """Which transaction created a coin (spent or not), or None for an unknown coin."""
        data = self._kv.get(schema.origin_key(coin_id))
        if data is None:
            return None
        txid, output, height = schema.unpack_origin(data)
        return Origin(txid=txid, output=output, height=height)

    def history(self, lock_hash: bytes, limit: int = 50) -> list[HistoryEntry]:
        """An address's accepted transactions, newest first, at most `limit` of them."""
        entries: list[HistoryEntry] = []
        for key, value in self._kv.iter_prefix(schema.history_prefix(lock_hash)):
            if len(entries) >= limit:
                break
            height, index = schema.parse_history_key(key)
            txid, received, spent = schema.unpack_history(value)
            entries.append(
                HistoryEntry(height=height, index=index, txid=txid, received=received, spent=spent)
            )
        return entries

    def close(self) -> None:
        """Close the underlying key-value store."""
        self._kv.close()

    def supply(self, asset: AssetCode) -> Supply | None:
        """The asset's supply totals, or None before its first issuance."""
        return _supply_in(self._kv, asset)

    def issuer(self, asset: AssetCode) -> PublicKey | None:
        """The key registered to issue the asset, or None if it is not registered."""
        return _issuer_in(self._kv, asset)

    def is_committed(self, txid: TxId) -> bool:
        """Whether an accepted transaction with this id is in the idempotency table.

        Rows leave the table once their `valid_until` is below a committed block's
        height; by then the transaction could not be committed again anyway.
        """
        return _is_committed_in(self._kv, txid)

    def governance(self) -> Governance:
        """Admins, members and parameters in force after the tip.

        Raises:
            NotInitialisedError: the ledger has no genesis.
        """
        return self._require_head().governance

    def commitment(self) -> StateCommitment:
        """A copy of the state commitment accumulator after the tip, for the rules to update.

        Raises:
            NotInitialisedError: the ledger has no genesis.
        """
        return self._require_head().commitment.copy()

    @contextmanager
    def reader(self) -> Iterator[LedgerSnapshot]:
        """The state after one committed block, read through one snapshot of the store.

        Cheaper than reading through the `LedgerStore` when several rows are read (each
        read here shares one read transaction), and consistent: rows, tip, governance and
        commitment all belong to the same block, whatever commits meanwhile. Keep it short.
        """
        head = self._require_head()
        with self._kv.snapshot() as view:
            # A commit may have landed between reading the head and opening the snapshot
            # (the head is replaced just after the write); then the snapshot is newer, and
            # its own rows say what the head is.
            if view.get(schema.tip_key()) != schema.pack_tip(head.height, head.block_hash):
                loaded = _load_head_from(view)
                if loaded is None:
                    raise NotInitialisedError("the ledger has no genesis")
                head = loaded
            yield LedgerSnapshot(view, head)

    # -- commit ---------------------------------------------------------------------------

    def commit_block(
        self,
        block: Block,
        certificate: CommitCertificate,
        txids: Sequence[TxId],
        outcome: BlockOutcome,
    ) -> None:
        """Write a block and everything it changes in one atomic batch.

        Args:
            block: The block; it must extend the tip.
            certificate: Its commit certificate (checked by the caller, stored here).
            txids: The ids of `block.txs`, in order.
            outcome: What `apply_block` gave for this block on top of this ledger.

        Raises:
            NotInitialisedError: the ledger has no genesis.
            BlockOrderError: the block's height is not the tip's plus one, or its parent
                hash is not the tip's hash.
            InconsistentBlockError: the certificate, ids, receipts or state root do not
                match the block and its outcome.
        """
        head = self._require_head()
        header = block.header
        _check_extends(head, block)
        digest = block_hash(header)
        _check_consistent(head, block, certificate, digest, txids, outcome)
        height = header.height
        commitment_bytes = outcome.commitment.to_bytes()
        governance = outcome.delta.governance
        governance_bytes = None if governance is None else encode(governance)
        with self._kv.atomic() as batch:
            stored_tip = batch.get(schema.tip_key())
            if stored_tip != schema.pack_tip(head.height, head.block_hash):
                raise StoreError(
                    "the stored tip moved under this LedgerStore; only one may write a store"
                )
            _write_delta(batch, outcome.delta, height)
            if governance_bytes is not None:
                batch.put(schema.governance_key(), governance_bytes)
            batch.put(schema.block_key(height), encode(block))
            batch.put(schema.certificate_key(height), encode(certificate))
            batch.put(schema.block_hash_key(digest), schema.pack_u64(height))
            _write_tx_index(batch, height, txids, block.receipts)
            spent = outcome.delta.spent
            for key, value in schema.origin_and_history_rows(
                block, txids, lambda cid: spent[cid][1] if cid in spent else None
            ):
                batch.put(key, value)
            batch.put(schema.commitment_key(), commitment_bytes)
            batch.put(schema.tip_key(), schema.pack_tip(height, digest))
        # Rebuilt from the bytes just written, so the cache is what a restart would load.
        self._head = replace(
            head,
            height=height,
            block_hash=digest,
            governance=(
                head.governance
                if governance_bytes is None
                else decode(governance_bytes, Governance)
            ),
            commitment=StateCommitment.from_bytes(commitment_bytes),
        )

    # -- blocks and transactions ----------------------------------------------------------

    def block(self, height: Height) -> Block | None:
        """The block at `height` (1 and up), or None if there is none."""
        data = self.block_bytes(height)
        return None if data is None else decode(data, Block)

    def block_bytes(self, height: Height) -> bytes | None:
        """The canonical bytes of the block at `height`, to serve without re-encoding."""
        if height < 1:
            return None
        return self._kv.get(schema.block_key(height))

    def certificate(self, height: Height) -> CommitCertificate | None:
        """The commit certificate of the block at `height`, or None if there is none."""
        if height < 1:
            return None
        data = self._kv.get(schema.certificate_key(height))
        return None if data is None else decode(data, CommitCertificate)

    def height_of(self, block_hash: BlockHash | Hash32) -> Height | None:
        """The height of the block with this hash (0 for the genesis hash), or None."""
        data = self._kv.get(schema.block_hash_key(block_hash))
        return None if data is None else Height(schema.unpack_u64(data))

    def tx(self, txid: TxId) -> TxRecord | None:
        """Where a transaction was ordered and its receipt, or None if it never was.

        A transaction ordered more than once (a replay, or a retry after a rejection)
        keeps the record of its acceptance if it was ever accepted, else its latest one.
        """
        return _tx_in(self._kv, txid)

    # -- coins, supply, issuers -----------------------------------------------------------

    def coins_of(self, lock_hash: bytes, limit: int = 1000) -> list[tuple[CoinId, Coin]]:
        """Unspent coins under the lock with this hash, by coin id, at most `limit`.

        Raises:
            StoreError: the address index names a coin that is not unspent (corruption).
        """
        coins: list[tuple[CoinId, Coin]] = []
        if limit <= 0:
            return coins
        with self._kv.snapshot() as view:
            for key, _ in view.iter_prefix(schema.address_prefix(lock_hash)):
                cid = schema.coin_id_of_address_key(key)
                data = view.get(schema.unspent_key(cid))
                if data is None:
                    raise StoreError(f"the address index names coin {cid.hex()}, not unspent")
                coins.append((cid, decode(data, Coin)))
                if len(coins) == limit:
                    break
        return coins

    def unspent(self) -> Iterator[tuple[CoinId, bytes]]:
        """Every unspent coin's id and canonical bytes, by coin id, from one snapshot."""
        return _unspent_in(self._kv)

    def supplies(self) -> Iterator[tuple[AssetCode, Supply]]:
        """Every asset's supply totals, by asset code, from one snapshot."""
        return _supplies_in(self._kv)

    def issuers(self) -> dict[AssetCode, PublicKey]:
        """The key registered to issue each asset."""
        return {
            schema.asset_of_issuer_key(key): PublicKey(value)
            for key, value in self._kv.iter_prefix(schema.issuer_prefix())
        }

    # -- commitment -----------------------------------------------------------------------

    def recompute_commitment(self) -> StateCommitment:
        """The commitment recomputed from scratch (an audit).

        It covers the whole unspent set, supply table and barred keys, and takes time in
        proportion to the state; compare its digest with `stored_commitment()`.
        """
        with self._kv.snapshot() as view:
            return commitment_from_scratch(_unspent_in(view), _supplies_in(view), _barred_in(view))

    def stored_commitment(self) -> StateCommitment:
        """The commitment accumulator as stored after the tip (read from the store).

        Raises:
            NotInitialisedError: the ledger has no genesis.
        """
        data = self._kv.get(schema.commitment_key())
        if data is None:
            raise NotInitialisedError("the ledger has no genesis; call init_genesis first")
        return StateCommitment.from_bytes(data)


class LedgerSnapshot:
    """The ledger as of one committed block; implements `tally.rules.state.StateView`.

    Valid only inside `LedgerStore.reader()`. Issuers are remembered once read: they are
    read for every output and cannot change within one snapshot.
    """

    def __init__(self, view: KeyValueReader, head: _Head) -> None:
        self._view = view
        self._head = head
        self._issuers: dict[AssetCode, PublicKey | None] = {}

    def tip(self) -> tuple[Height, BlockHash]:
        """Height and hash of the block this snapshot ends at."""
        return self._head.height, self._head.block_hash

    def coin(self, coin_id: CoinId) -> Coin | None:
        """The unspent coin with this id, or None if it is spent or never existed."""
        return _coin_in(self._view, coin_id)

    def spender(self, coin_id: CoinId) -> TxId | None:
        """The transaction that spent this coin, or None if it is unspent or unknown."""
        return _spender_in(self._view, coin_id)

    def spent(self, coin_id: CoinId) -> tuple[TxId, Coin] | None:
        """The spending transaction and the coin itself, for a spent coin; else None."""
        return _spent_in(self._view, coin_id)

    def is_barred(self, owner: PublicKey) -> bool:
        """Whether `owner` is barred from offline locks for a double spend."""
        return _is_barred_in(self._view, owner)

    def supply(self, asset: AssetCode) -> Supply | None:
        """The asset's supply totals, or None before its first issuance."""
        return _supply_in(self._view, asset)

    def issuer(self, asset: AssetCode) -> PublicKey | None:
        """The key registered to issue the asset, or None if it is not registered."""
        try:
            return self._issuers[asset]
        except KeyError:
            key = self._issuers[asset] = _issuer_in(self._view, asset)
            return key

    def is_committed(self, txid: TxId) -> bool:
        """Whether an accepted transaction with this id is in the idempotency table."""
        return _is_committed_in(self._view, txid)

    def tx(self, txid: TxId) -> TxRecord | None:
        """Where a transaction was ordered and its receipt, or None if it never was."""
        return _tx_in(self._view, txid)

    def governance(self) -> Governance:
        """Admins, members and parameters in force after this block."""
        return self._head.governance

    def commitment(self) -> StateCommitment:
        """A copy of the state commitment accumulator after this block."""
        return self._head.commitment.copy()


def _coin_in(view: KeyValueReader, coin_id: CoinId) -> Coin | None:
    data = view.get(schema.unspent_key(coin_id))
    return None if data is None else decode(data, Coin)


def _spender_in(view: KeyValueReader, coin_id: CoinId) -> TxId | None:
    data = view.get(schema.spent_key(coin_id))
    return None if data is None else schema.unpack_spent(data)[0]


def _spent_in(view: KeyValueReader, coin_id: CoinId) -> tuple[TxId, Coin] | None:
    data = view.get(schema.spent_key(coin_id))
    if data is None:
        return None
    txid, coin_bytes = schema.unpack_spent(data)
    return txid, decode(coin_bytes, Coin)


def _is_barred_in(view: KeyValueReader, owner: PublicKey) -> bool:
    return view.get(schema.barred_key(owner)) is not None


def _barred_in(view: KeyValueReader) -> Iterator[PublicKey]:
    for key, _ in view.iter_prefix(schema.barred_prefix()):
        yield schema.owner_of_barred_key(key)


def _supply_in(view: KeyValueReader, asset: AssetCode) -> Supply | None:
    data = view.get(schema.supply_key(asset))
    return None if data is None else decode(data, Supply)


def _issuer_in(view: KeyValueReader, asset: AssetCode) -> PublicKey | None:
    data = view.get(schema.issuer_key(asset))
    return None if data is None else PublicKey(data)


def _is_committed_in(view: KeyValueReader, txid: TxId) -> bool:
    return view.get(schema.idempotency_key(txid)) is not None


def _tx_in(view: KeyValueReader, txid: TxId) -> TxRecord | None:
    data = view.get(schema.tx_key(txid))
    if data is None:
        return None
    height, index, receipt_bytes = schema.unpack_tx_row(data)
    return TxRecord(height=height, index=index, receipt=decode(receipt_bytes, Receipt))


def _load_head(kv: KeyValueStore) -> _Head | None:
    with kv.snapshot() as view:
        return _load_head_from(view)


def _load_head_from(view: KeyValueReader) -> _Head | None:
    tip = view.get(schema.tip_key())
    if tip is None:
        return None
    height, digest = schema.unpack_tip(tip)
    return _Head(
        genesis=decode(_require(view, schema.genesis_key()), Genesis),
        height=height,
        block_hash=digest,
        governance=decode(_require(view, schema.governance_key()), Governance),
        commitment=StateCommitment.from_bytes(_require(view, schema.commitment_key())),
    )


def _require(view: KeyValueReader, key: bytes) -> bytes:
    data = view.get(key)
    if data is None:
        raise StoreError(f"the ledger has a tip but no row at {key!r}; the store is damaged")
    return data


def _unspent_in(view: KeyValueReader) -> Iterator[tuple[CoinId, bytes]]:
    for key, value in view.iter_prefix(schema.unspent_prefix()):
        yield schema.coin_id_of_unspent_key(key), value


def _supplies_in(view: KeyValueReader) -> Iterator[tuple[AssetCode, Supply]]:
    for key, value in view.iter_prefix(schema.supply_prefix()):
        yield schema.asset_of_supply_key(key), decode(value, Supply)


def _check_extends(head: _Head, block: Block) -> None:
    header = block.header
    expected = head.height + 1
    # The genesis hash and block hashes are both 32-byte hashes under different names.
    if header.height != expected or header.prev_hash != Hash32(head.block_hash):
        raise BlockOrderError(
            f"block {header.height} with parent {header.prev_hash.hex()} does not extend"
            f" the tip: expected height {expected} with parent {head.block_hash.hex()}",
            expected_height=expected,
            found_height=header.height,
            expected_prev_hash=head.block_hash,
            found_prev_hash=header.prev_hash,
        )


def _check_consistent(
    head: _Head,
    block: Block,
    certificate: CommitCertificate,
    digest: BlockHash,
    txids: Sequence[TxId],
    outcome: BlockOutcome,
) -> None:
    # Each of these would store a ledger that disagrees with itself, which a restart
    # would then carry forward; none can happen unless the caller wires things wrongly.
    header = block.header
    if header.chain_id != head.genesis.chain_id:
        raise InconsistentBlockError(
            f"block is for chain {header.chain_id!r}, the ledger is {head.genesis.chain_id!r}"
        )
    if certificate.height != header.height or certificate.block_hash != digest:
        raise InconsistentBlockError(
            f"the certificate is for block {certificate.block_hash.hex()} at height"
            f" {certificate.height}, not {digest.hex()} at {header.height}"
        )
    counts = (header.tx_count, len(block.txs), len(block.receipts), len(txids))
    if len(set(counts)) != 1:
        raise InconsistentBlockError(
            "tx_count, transactions, receipts and txids differ in number:"
            f" {', '.join(map(str, counts))}"
        )
    if tuple(outcome.receipts) != block.receipts:
        raise InconsistentBlockError("the block's receipts differ from the outcome's")
    if outcome.commitment.digest() != header.state_root:
        raise InconsistentBlockError(
            f"the header's state root {header.state_root.hex()} is not the outcome's"
            f" commitment {outcome.commitment.digest().hex()}"
        )


def _write_delta(batch: WriteBatch, delta: StateDelta, height: Height) -> None:
    """Write the coin set, supply, issuers, idempotency, barred keys and double spends."""
    for cid, (spender, coin) in delta.spent.items():
        coin_bytes = encode(coin)
        # A coin created earlier in the same block has no unspent or address row yet;
        # deleting an absent key does nothing.
        batch.delete(schema.unspent_key(cid))
        batch.delete(schema.address_key(lock_hash_of(coin.lock), cid))
        batch.put(schema.spent_key(cid), schema.pack_spent(spender, coin_bytes))
    for cid, coin in delta.created.items():
        batch.put(schema.unspent_key(cid), encode(coin))
        batch.put(schema.address_key(lock_hash_of(coin.lock), cid), b"")
    for asset, supply in delta.supply.items():
        batch.put(schema.supply_key(asset), encode(supply))
    for asset, key in delta.issuers.items():
        batch.put(schema.issuer_key(asset), key)
    _prune_idempotency(batch, height)
    for txid, valid_until in delta.committed.items():
        batch.put(schema.idempotency_key(txid), schema.pack_u64(valid_until))
        batch.put(schema.expiry_key(valid_until, txid), b"")
    for owner in delta.barred:
        batch.put(schema.barred_key(owner), schema.pack_u64(height))
    for double_spend in delta.double_spends:
        batch.put(
            schema.double_spend_key(double_spend.owner, double_spend.coin_id, double_spend.second),
            schema.pack_double_spend(double_spend.first, height),
        )


def _prune_idempotency(batch: WriteBatch, height: Height) -> None:
    """Drop idempotency rows whose `valid_until` is below `height`.

    Such a transaction fails the window check at this height and every later one, so its
    row can no longer stop a replay. The expiry index is sorted by `valid_until`, so the
    scan stops at the first row still in force.
    """
    for key, _ in batch.iter_prefix(schema.expiry_prefix()):
        valid_until, txid = schema.parse_expiry_key(key)
        if valid_until >= height:
            break
        batch.delete(key)
        batch.delete(schema.idempotency_key(txid))


def _write_tx_index(
    batch: WriteBatch, height: Height, txids: Sequence[TxId], receipts: Sequence[Receipt]
) -> None:
    for index, (txid, receipt) in enumerate(zip(txids, receipts, strict=True)):
        key = schema.tx_key(txid)
        previous = batch.get(key)
        # A replay is ordered again and rejected; its first, accepted record must stay,
        # since that is the answer a client retrying the transaction is owed.
        if previous is not None and _is_accepted_row(previous):
            continue
        batch.put(key, schema.pack_tx_row(height, index, encode(receipt)))


def _is_accepted_row(row: bytes) -> bool:
    return decode(schema.unpack_tx_row(row)[2], Receipt).accepted


if TYPE_CHECKING:
    # Not run: makes mypy check that LedgerStore satisfies the rules' StateView.
    def _is_state_view(ledger: LedgerStore) -> StateView:
        return ledger

    def _snapshot_is_state_view(snapshot: LedgerSnapshot) -> StateView:
        return snapshot
