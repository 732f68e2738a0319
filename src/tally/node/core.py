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
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from tally.crypto.commitment import StateCommitment
from tally.crypto.schnorr import PrivateKey
from tally.model.block import Block, CommitCertificate
from tally.model.coin import Coin
from tally.model.encoding import decode_tx, encode, tx_id
from tally.model.genesis import Genesis
from tally.model.tx import SignedTx
from tally.model.types import AssetCode, CoinId, Height, PublicKey, TxId
from tally.node.errors import ShuttingDownError
from tally.node.mempool import Mempool, Pending, TxResult
from tally.node.verifier import VerifyCache
from tally.rules.apply import BlockOutcome, apply_block, validate_tx
from tally.rules.block import build_header
from tally.rules.state import BlockContext, Governance, Supply
from tally.store.ledger import LedgerStore

__all__ = ["Node", "BlockProposal", "TxResult", "GenesisMismatchError"]

log = logging.getLogger(__name__)


class GenesisMismatchError(Exception):
    """The store was initialised from another genesis than the one configured."""


@dataclass
class BlockProposal:
    """A block executed against the current tip, with what committing it needs."""

    block: Block
    outcome: BlockOutcome
    txids: list[TxId]
    entries: list[Pending]


class _AdmissionView:
    """The committed state plus the outputs of pending transactions (for chained payments)."""

    def __init__(self, store: LedgerStore, mempool: Mempool) -> None:
        self._store = store
        self._mempool = mempool

    def coin(self, coin_id: CoinId) -> Coin | None:
        coin = self._store.coin(coin_id)
        return coin if coin is not None else self._mempool.pending_output(coin_id)

    def spender(self, coin_id: CoinId) -> TxId | None:
        return self._store.spender(coin_id)

    def supply(self, asset: AssetCode) -> Supply | None:
        return self._store.supply(asset)

    def issuer(self, asset: AssetCode) -> PublicKey | None:
        return self._store.issuer(asset)

    def is_committed(self, txid: TxId) -> bool:
        return self._store.is_committed(txid)

    def governance(self) -> Governance:
        return self._store.governance()

    def commitment(self) -> StateCommitment:
        return self._store.commitment()


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
        self._admission_view = _AdmissionView(store, self.mempool)
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        self._subscribers_lock = threading.Lock()
        self._stopping = False
        self.fatal: BaseException | None = None
        self.started_at = time.time()
        self.committed_txs = 0
        self.on_block: list[Callable[[BlockProposal, float], None]] = []
        """Hooks called after each durable commit (metrics), with the commit's duration."""

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

    def admit_tx(self, tx: SignedTx, txid: TxId) -> Future[TxResult]:
        """Like `admit`, for a transaction already decoded, with its id."""
        if self._stopping:
            raise ShuttingDownError("the node is stopping")
        first = self.result(txid)
        if first is not None:
            done: Future[TxResult] = Future()
            done.set_result(first)
            return done
        pending = self.mempool.get(txid)
        if pending is not None:
            return pending.future
        # The stateless checks, the window and the rules all run inside `validate_tx`, in
        # the order the rules give, against the next height.
        height, _ = self.store.tip()
        ctx = BlockContext(chain_id=self.chain_id, height=Height(height + 1), time_ms=0)
        validate_tx(self._admission_view, tx, ctx, self.verifier.verify, txid)
        return self.mempool.add(tx, txid).future

    def result(self, txid: TxId) -> TxResult | None:
        """The committed result of `txid`, if it was committed."""
        record = self.store.tx(txid)
        if record is None:
            return None
        return TxResult(txid=txid, height=record.height, index=record.index, receipt=record.receipt)

    # -- the Application interface for orderers ------------------------------------------------

    def wait_for_work(self, timeout: float) -> bool:
        """Wait for a pending transaction."""
        return self.mempool.wait_for_work(timeout)

    def pending_count(self) -> int:
        """How many transactions are pending."""
        return len(self.mempool)

    def propose(self, max_txs: int, time_ms: int) -> BlockProposal | None:
        """Execute up to `max_txs` pending transactions as the next block (not yet written)."""
        entries = self.mempool.take(max_txs)
        if not entries:
            return None
        height, tip_hash = self.store.tip()
        ctx = BlockContext(chain_id=self.chain_id, height=Height(height + 1), time_ms=time_ms)
        txs = [entry.tx for entry in entries]
        txids = [entry.txid for entry in entries]
        outcome = apply_block(self.store, txs, ctx, self.verifier.verify_once, txids)
        header = build_header(ctx, tip_hash, txids, outcome)
        block = Block(header=header, txs=tuple(txs), receipts=tuple(outcome.receipts))
        return BlockProposal(block=block, outcome=outcome, txids=txids, entries=entries)

    def commit(self, proposal: BlockProposal, certificate: CommitCertificate) -> None:
        """Write the block in one durable transaction, then acknowledge and publish it."""
        started = time.perf_counter()
        block = proposal.block
        self.store.commit_block(block, certificate, proposal.txids, proposal.outcome)
        elapsed = time.perf_counter() - started
        self.mempool.remove(proposal.entries)
        height = block.header.height
        for index, (entry, receipt) in enumerate(
            zip(proposal.entries, proposal.outcome.receipts, strict=True)
        ):
            if not entry.future.done():
                entry.future.set_result(
                    TxResult(txid=entry.txid, height=height, index=index, receipt=receipt)
                )
        self.committed_txs += len(proposal.entries)
        for hook in self.on_block:
            hook(proposal, elapsed)
        self._publish(_block_event(proposal))

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
        """Chain id, height, tip hash, state commitment and mempool size."""
        height, tip_hash = self.store.tip()
        return {
            "chain_id": self.chain_id,
            "node": self.name,
            "height": height,
            "block_hash": tip_hash.hex(),
            "state_root": self.store.stored_commitment().digest().hex(),
            "mempool_size": len(self.mempool),
            "committed_txs": self.committed_txs,
            "healthy": self.fatal is None,
        }


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
