"""The node: admission of transactions, block execution and durable commit, and queries.

The pipeline of ARCHITECTURE.md section 5:

    decode + stateless checks ─► signature verification (worker threads) ─► mempool
    ─► orderer cuts a block ─► execute in order ─► one durable write ─► acknowledge

`admit` runs on the caller's thread (the API hands it to a thread pool). The orderer thread
calls `propose` and `commit`. A transaction is acknowledged as committed only after the
LMDB write transaction holding its block has been synced to disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from tally.crypto.commitment import StateCommitment
from tally.crypto.schnorr import PrivateKey
from tally.model.block import Block, CommitCertificate
from tally.model.coin import Coin
from tally.model.encoding import block_hash, decode_tx, encode, genesis_hash, tx_id
from tally.model.genesis import Genesis, Member
from tally.model.lock import OfflineLock
from tally.model.rejection import Rejection
from tally.model.tx import SignedTx, Transfer
from tally.model.types import AssetCode, BlockHash, CoinId, Height, PublicKey, TxId
from tally.node.errors import MempoolConflictError, ShuttingDownError
from tally.node.mempool import Mempool, Pending, TxResult
from tally.node.verifier import VerifyCache
from tally.rules.apply import BlockOutcome, apply_block, validate_tx
from tally.rules.block import build_header, execute_block
from tally.rules.state import BlockContext, Governance, Supply
from tally.store.ledger import LedgerSnapshot, LedgerStore, TxRecord

__all__ = ["Node", "BlockProposal", "TxResult", "GenesisMismatchError"]

log = logging.getLogger(__name__)


class GenesisMismatchError(Exception):
    """The store was initialised from another genesis than the one configured."""


@dataclass(eq=False)
class BlockProposal:
    """A block executed against the current tip, with what committing it needs."""

    block: Block
    outcome: BlockOutcome
    txids: list[TxId]
    entries: Sequence[Pending | None]
    """This node's mempool entry of each transaction, None where it has none (a block
    received from another node may hold transactions this node never saw)."""
    block_hash: BlockHash


class _AdmissionView:
    """One snapshot of the committed state plus the outputs of pending transactions.

    Pending outputs make chained payments possible: a payment may spend change that is
    not yet committed.
    """

    def __init__(self, snapshot: LedgerSnapshot, mempool: Mempool) -> None:
        self._snapshot = snapshot
        self._mempool = mempool

    def coin(self, coin_id: CoinId) -> Coin | None:
        coin = self._snapshot.coin(coin_id)
        return coin if coin is not None else self._mempool.pending_output(coin_id)

    def spender(self, coin_id: CoinId) -> TxId | None:
        return self._snapshot.spender(coin_id)

    def spent(self, coin_id: CoinId) -> tuple[TxId, Coin] | None:
        return self._snapshot.spent(coin_id)

    def is_barred(self, owner: PublicKey) -> bool:
        return self._snapshot.is_barred(owner)

    def supply(self, asset: AssetCode) -> Supply | None:
        return self._snapshot.supply(asset)

    def issuer(self, asset: AssetCode) -> PublicKey | None:
        return self._snapshot.issuer(asset)

    def is_committed(self, txid: TxId) -> bool:
        return self._snapshot.is_committed(txid)

    def governance(self) -> Governance:
        return self._snapshot.governance()

    def commitment(self) -> StateCommitment:
        return self._snapshot.commitment()


class _ChainedView:
    """A snapshot of the committed state plus blocks executed on top of it, not yet written.

    This is what lets the orderer execute the next block while the previous one is still
    being written: the next block sees the state after every block before it, committed
    or not. `blocks` are oldest first and all above the snapshot's tip.
    """

    def __init__(self, snapshot: LedgerSnapshot, blocks: list[BlockProposal]) -> None:
        self._snapshot = snapshot
        self._deltas = [proposal.outcome.delta for proposal in reversed(blocks)]
        self._last = blocks[-1]

    def tip(self) -> tuple[Height, BlockHash]:
        header = self._last.block.header
        return header.height, self._last.block_hash

    def coin(self, coin_id: CoinId) -> Coin | None:
        for delta in self._deltas:
            if coin_id in delta.spent:
                return None
            created = delta.created.get(coin_id)
            if created is not None:
                return created
        return self._snapshot.coin(coin_id)

    def spender(self, coin_id: CoinId) -> TxId | None:
        spent = self.spent(coin_id)
        return spent[0] if spent is not None else None

    def spent(self, coin_id: CoinId) -> tuple[TxId, Coin] | None:
        for delta in self._deltas:
            spent = delta.spent.get(coin_id)
            if spent is not None:
                return spent
        return self._snapshot.spent(coin_id)

    def is_barred(self, owner: PublicKey) -> bool:
        return any(owner in delta.barred for delta in self._deltas) or (
            self._snapshot.is_barred(owner)
        )

    def supply(self, asset: AssetCode) -> Supply | None:
        for delta in self._deltas:
            supply = delta.supply.get(asset)
            if supply is not None:
                return supply
        return self._snapshot.supply(asset)

    def issuer(self, asset: AssetCode) -> PublicKey | None:
        for delta in self._deltas:
            key = delta.issuers.get(asset)
            if key is not None:
                return key
        return self._snapshot.issuer(asset)

    def is_committed(self, txid: TxId) -> bool:
        # Rows the commits will prune have `valid_until` below the next height, and such a
        # transaction fails its window check before this is asked.
        return any(txid in delta.committed for delta in self._deltas) or (
            self._snapshot.is_committed(txid)
        )

    def governance(self) -> Governance:
        for delta in self._deltas:
            if delta.governance is not None:
                return delta.governance
        return self._snapshot.governance()

    def commitment(self) -> StateCommitment:
        return self._last.outcome.commitment.copy()


class Node:
    """One ledger node: store, mempool, verification cache and the glue to its orderer."""

    def __init__(
        self, store: LedgerStore, key: PrivateKey, name: str, *, mempool_max: int = 200_000
    ) -> None:
        self.store = store
        self.key = key
        self.name = name
        self.genesis: Genesis = store.genesis()
        self.mempool = Mempool(mempool_max)
        self.verifier = VerifyCache()
        self._in_flight: list[BlockProposal] = []
        """Blocks proposed and not yet committed, oldest first."""
        self._in_flight_lock = threading.Lock()
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        self._subscribers_lock = threading.Lock()
        self._stopping = False
        self.fatal: BaseException | None = None
        self.started_at = time.time()
        self.committed_txs = 0
        self.on_block: list[Callable[[BlockProposal, float], None]] = []
        """Hooks called after each durable commit (metrics), with the commit's duration."""
        self.extra_status: list[Callable[[], dict[str, Any]]] = []
        """Fields the orderer adds to `status` (view and primary under PBFT)."""
        self.on_admitted: list[Callable[[SignedTx], None]] = []
        """Hooks called with each transaction a client submitted here once it is pending
        (a consortium node forwards it to its peers)."""

    @classmethod
    def create(
        cls, store: LedgerStore, genesis: Genesis, key: PrivateKey, name: str, **kwargs: Any
    ) -> Node:
        """A node over `store`, initialising it from `genesis` if it is empty.

        Raises:
            GenesisMismatchError: the store holds another network's state.
        """
        if not store.is_initialised():
            store.init_genesis(genesis)
        elif encode(store.genesis()) != encode(genesis):
            raise GenesisMismatchError(
                "the data directory belongs to another network (genesis differs); "
                "use a fresh data directory or the matching genesis file"
            )
        return cls(store, key, name, **kwargs)

    # -- properties the orderer reads -------------------------------------------------------

    @property
    def chain_id(self) -> str:
        """The network's chain id."""
        return self.genesis.chain_id

    def params_max_txs(self) -> int:
        """The block size limit in force."""
        return self.store.governance().params.max_block_txs

    def params_interval_ms(self) -> int:
        """The block interval in force."""
        return self.store.governance().params.block_interval_ms

    def member_index(self) -> int | None:
        """This node's index among the consensus members, or None if it is not one."""
        for index, member in enumerate(self.store.governance().members):
            if member.key == self.key.public_key:
                return index
        return None

    # -- admission ---------------------------------------------------------------------------

    def admit(self, raw: bytes) -> tuple[TxId, Future[TxResult]]:
        """Decode, check and verify one transaction, then add it to the mempool.

        Returns:
            The transaction id, and a future resolved with the transaction's result once its
            block is committed; already resolved if the transaction was committed before
            (its first result).

        Raises:
            Rejection: the transaction was refused; nothing changed.
        """
        tx = decode_tx(raw, self.store.governance().params)
        txid = tx_id(tx.body)
        return txid, self.admit_tx(tx, txid)

    def admit_tx(self, tx: SignedTx, txid: TxId, *, forwarded: bool = False) -> Future[TxResult]:
        """Like `admit`, for a transaction already decoded, with its id.

        `forwarded` is for a transaction a peer forwarded: the `on_admitted` hooks are not
        called for it, so that it is not forwarded again.
        """
        future = self._admit_checked(tx, txid)
        if not forwarded and not future.done():
            for hook in self.on_admitted:
                hook(tx)
        return future

    def _admit_checked(self, tx: SignedTx, txid: TxId) -> Future[TxResult]:
        if self._stopping:
            raise ShuttingDownError("the node is stopping")
        # Every read of the admission comes from one snapshot (one read transaction).
        with self.store.reader() as snapshot:
            record = snapshot.tx(txid)
            if record is not None:
                done: Future[TxResult] = Future()
                done.set_result(_result_of(txid, record))
                return done
            pending = self.mempool.get(txid)
            if pending is not None:
                return pending.future
            # The stateless checks, the window and the rules all run inside `validate_tx`,
            # in the order the rules give, against the next height.
            height, _ = snapshot.tip()
            ctx = BlockContext(chain_id=self.chain_id, height=Height(height + 1), time_ms=0)
            view = _AdmissionView(snapshot, self.mempool)
            validate_tx(view, tx, ctx, self.verifier.verify, txid)
        try:
            return self.mempool.add(tx, txid).future
        except MempoolConflictError:
            contested = self._contested_offline_inputs(tx)
            if contested is None:
                raise
        # Another pending transfer spends the same offline coin: both are ordered, and the
        # block records whichever comes second as the owner's double spend.
        return self.mempool.add(tx, txid, contested).future

    def _contested_offline_inputs(self, tx: SignedTx) -> frozenset[CoinId] | None:
        """The inputs of `tx` another pending transaction spends, if every one is offline money.

        None if some pending conflict is over a coin that is not under an `OfflineLock`: that
        is an ordinary conflict, refused as before. Only called once the mempool found one.
        """
        body = tx.body
        if not isinstance(body, Transfer):
            return None
        contested = []
        for cid in body.inputs:
            if self.mempool.claimant(cid) is None:
                continue
            coin = self.store.coin(cid) or self.mempool.pending_output(cid)
            if coin is None or not isinstance(coin.lock, OfflineLock):
                return None
            contested.append(cid)
        return frozenset(contested)

    def result(self, txid: TxId) -> TxResult | None:
        """The committed result of `txid`, if it was committed."""
        record = self.store.tx(txid)
        return None if record is None else _result_of(txid, record)

    # -- the Application interface for orderers ------------------------------------------------

    def wait_for_work(self, timeout: float) -> bool:
        """Wait for a pending transaction."""
        return self.mempool.wait_for_work(timeout)

    def pending_count(self) -> int:
        """How many pending transactions no block has taken yet."""
        return self.mempool.waiting()

    def propose(self, max_txs: int, time_ms: int) -> BlockProposal | None:
        """Execute up to `max_txs` pending transactions as the next block (not yet written).

        The block extends the last block proposed, which may not be committed yet: the
        orderer may execute a block while the previous one is being written. Every
        proposal must then be committed, in the order proposed.
        """
        entries = self.mempool.take(max_txs)
        if not entries:
            return None
        txs = [entry.tx for entry in entries]
        txids = [entry.txid for entry in entries]
        verify = self.verifier.verify_once
        # Copy the in-flight list *before* taking the snapshot: a block whose commit ends in
        # between is then in both, and filtered out by height. Taken the other way round, a
        # block committed in between would be in neither, and this block would execute
        # against a state that misses it.
        with self._in_flight_lock:
            in_flight = list(self._in_flight)
        with self.store.reader() as snapshot:
            height = snapshot.tip()[0]
            unwritten = [p for p in in_flight if p.block.header.height > height]
            view: LedgerSnapshot | _ChainedView = (
                _ChainedView(snapshot, unwritten) if unwritten else snapshot
            )
            height, tip_hash = view.tip()
            ctx = BlockContext(chain_id=self.chain_id, height=Height(height + 1), time_ms=time_ms)
            outcome = apply_block(view, txs, ctx, verify, txids)
        header = build_header(ctx, tip_hash, txids, outcome)
        block = Block(header=header, txs=tuple(txs), receipts=tuple(outcome.receipts))
        proposal = BlockProposal(
            block=block,
            outcome=outcome,
            txids=txids,
            entries=entries,
            block_hash=block_hash(header),
        )
        with self._in_flight_lock:
            self._in_flight.append(proposal)
        return proposal

    def receive_block(self, block: Block) -> BlockProposal:
        """Execute a block another node proposed on top of the last committed block.

        Proposals not yet committed are dropped first (their transactions wait again): a
        consortium node has at most one block in progress. The block's transactions that wait
        here are taken out of the waiting list until it is committed or dropped.

        Raises:
            Rejection: the block does not follow the tip or does not match its execution
                here (`block.mismatch`), or a transaction in it is too large.
        """
        self.discard_proposals()
        txids = [tx_id(tx.body) for tx in block.txs]
        with self.store.reader() as snapshot:
            height, tip_hash = snapshot.tip()
            outcome = execute_block(
                snapshot,
                block,
                self.chain_id,
                Height(height + 1),
                tip_hash,
                self.verifier.verify_once,
                txids,
            )
        proposal = BlockProposal(
            block=block,
            outcome=outcome,
            txids=txids,
            entries=self.mempool.claim(txids),
            block_hash=block_hash(block.header),
        )
        with self._in_flight_lock:
            self._in_flight.append(proposal)
        return proposal

    def discard_proposals(self) -> None:
        """Drop every block proposed or received and not committed; its transactions wait again."""
        with self._in_flight_lock:
            dropped, self._in_flight = self._in_flight, []
        for proposal in dropped:
            self.mempool.release([entry for entry in proposal.entries if entry is not None])

    def proposal(self, digest: bytes) -> BlockProposal | None:
        """The block in progress with hash `digest`, if this node proposed or received it."""
        with self._in_flight_lock:
            for proposal in self._in_flight:
                if proposal.block_hash == digest:
                    return proposal
        return None

    def commit(self, proposal: BlockProposal, certificate: CommitCertificate) -> None:
        """Write the block in one durable transaction, then acknowledge and publish it."""
        started = time.perf_counter()
        block = proposal.block
        self.store.commit_block(block, certificate, proposal.txids, proposal.outcome)
        elapsed = time.perf_counter() - started
        with self._in_flight_lock:
            if proposal in self._in_flight:
                self._in_flight.remove(proposal)
        self.mempool.remove([entry for entry in proposal.entries if entry is not None])
        height = block.header.height
        for index, (entry, receipt) in enumerate(
            zip(proposal.entries, proposal.outcome.receipts, strict=True)
        ):
            if entry is not None and not entry.future.done():
                entry.future.set_result(
                    TxResult(txid=entry.txid, height=height, index=index, receipt=receipt)
                )
        self.committed_txs += len(proposal.txids)
        for hook in self.on_block:
            hook(proposal, elapsed)
        self._publish(_block_event(proposal))

    # -- what a consortium orderer (PBFT) needs besides ----------------------------------------

    def committed_height(self) -> int:
        """Height of the last committed block."""
        return int(self.store.tip()[0])

    def committed_digest(self, height: int) -> bytes | None:
        """Hash of the committed block at `height`; the genesis hash at 0."""
        if height == 0:
            return genesis_hash(self.genesis)
        certificate = self.store.certificate(Height(height))
        return None if certificate is None else bytes(certificate.block_hash)

    def committed_block(self, height: int) -> tuple[bytes, CommitCertificate] | None:
        """The canonical bytes and the certificate of the committed block at `height`."""
        raw = self.store.block_bytes(Height(height))
        certificate = self.store.certificate(Height(height))
        return None if raw is None or certificate is None else (raw, certificate)

    def members(self) -> tuple[Member, ...]:
        """The consensus members in force."""
        return self.store.governance().members

    def has_work(self) -> bool:
        """Whether transactions wait here to be committed."""
        return len(self.mempool) > 0

    def admit_forwarded(self, raw: bytes) -> None:
        """Admit a transaction a peer forwarded; a refusal is only logged.

        The peer's client got its own answer from that peer.
        """
        try:
            tx = decode_tx(raw, self.store.governance().params)
            self.admit_tx(tx, tx_id(tx.body), forwarded=True)
        except Rejection as rejection:
            log.debug("forwarded transaction refused: %s", rejection.code)

    def watch_admitted(self, hook: Callable[[bytes], None]) -> None:
        """Call `hook` with the canonical bytes of each transaction a client submitted here."""
        self.on_admitted.append(lambda tx: hook(encode(tx)))

    # -- events --------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call `callback` with an event dict after every committed block (on the commit thread)."""
        with self._subscribers_lock:
            self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Stop calling `callback`."""
        with self._subscribers_lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def _publish(self, event: dict[str, Any]) -> None:
        with self._subscribers_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a subscriber's failure must not stop commits
                log.exception("event subscriber failed")

    # -- lifecycle -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Refuse new transactions and fail the futures of those still pending."""
        self._stopping = True
        for entry in self.mempool.drain():
            if not entry.future.done():
                entry.future.set_exception(ShuttingDownError("the node stopped before commit"))

    def on_fatal(self, exc: BaseException) -> None:
        """The orderer hit an error it cannot continue after: stop taking transactions."""
        self.fatal = exc
        self.stop()

    def status(self) -> dict[str, Any]:
        """Chain id, address prefix, height, tip hash, state commitment and mempool size."""
        height, tip_hash = self.store.tip()
        return {
            "chain_id": self.chain_id,
            "hrp": self.genesis.hrp,
            "max_window": self.store.governance().params.max_window,
            "node": self.name,
            "height": height,
            "block_hash": tip_hash.hex(),
            "state_root": self.store.stored_commitment().digest().hex(),
            "mempool_size": len(self.mempool),
            "committed_txs": self.committed_txs,
            "healthy": self.fatal is None,
            **{key: value for extra in self.extra_status for key, value in extra().items()},
        }


def _result_of(txid: TxId, record: TxRecord) -> TxResult:
    return TxResult(txid=txid, height=record.height, index=record.index, receipt=record.receipt)


def _block_event(proposal: BlockProposal) -> dict[str, Any]:
    header = proposal.block.header
    return {
        "type": "block",
        "height": header.height,
        "time_ms": header.time_ms,
        "tx_count": header.tx_count,
        "state_root": header.state_root.hex(),
        "receipts": [
            {"txid": txid.hex(), "code": receipt.code}
            for txid, receipt in zip(proposal.txids, proposal.outcome.receipts, strict=True)
        ],
    }
