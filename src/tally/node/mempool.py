"""The mempool: admitted transactions waiting for a block, in arrival order.

It refuses a second pending spend of the same coin (`mempool.conflict`), unless the node
says the coin is contested offline money (a second spend of an offline coin by its owner
is ordered, to be recorded as a double spend), and remembers the outputs of pending
transactions so that a payment may spend change that is not yet
committed. A transaction taken into a block stays pending (its claims and outputs too)
until its block is committed, but is not taken again. All methods are thread-safe; the
orderer waits on `wait_for_work`.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

from tally.model.block import Receipt
from tally.model.coin import Coin, coin_id
from tally.model.tx import Issue, Redeem, SignedTx, Transfer
from tally.model.types import CoinId, Height, TxId
from tally.node.errors import MempoolConflictError, MempoolFullError

__all__ = ["TxResult", "Pending", "Mempool"]


@dataclass(frozen=True)
class TxResult:
    """Where a transaction ended: its block height, index in the block, and receipt."""

    txid: TxId
    height: Height
    index: int
    receipt: Receipt


@dataclass
class Pending:
    """An admitted transaction and the future its submitters wait on."""

    tx: SignedTx
    txid: TxId
    inputs: tuple[CoinId, ...]
    future: Future[TxResult] = field(default_factory=Future)


class Mempool:
    """Pending transactions by id, with the coins they claim and create."""

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._pending: dict[TxId, Pending] = {}
        self._waiting: dict[TxId, Pending] = {}
        """Pending and not yet taken into a block, in arrival order."""
        self._claims: dict[CoinId, TxId] = {}
        self._outputs: dict[CoinId, Coin] = {}
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)

    def __len__(self) -> int:
        return len(self._pending)

    def waiting(self) -> int:
        """How many pending transactions no block has taken yet."""
        return len(self._waiting)

    def get(self, txid: TxId) -> Pending | None:
        """The pending entry for `txid`, if any."""
        return self._pending.get(txid)

    def pending_output(self, cid: CoinId) -> Coin | None:
        """A coin that a pending transaction will create."""
        return self._outputs.get(cid)

    def claimant(self, cid: CoinId) -> TxId | None:
        """The pending transaction that spends coin `cid`, if any."""
        return self._claims.get(cid)

    def add(self, tx: SignedTx, txid: TxId, contested: frozenset[CoinId] = frozenset()) -> Pending:
        """Admit `tx`; a transaction already pending is returned as it is.

        Args:
            tx: The transaction, checked against the state.
            txid: Its id.
            contested: Inputs that another pending transaction may spend too (offline coins
                spent twice by their owner); their claim stays with the first spender.

        Raises:
            MempoolFullError: the mempool is full.
            MempoolConflictError: a pending transaction spends one of the same coins.
        """
        body = tx.body
        inputs = body.inputs if isinstance(body, Transfer | Redeem) else ()
        with self._lock:
            existing = self._pending.get(txid)
            if existing is not None:
                return existing
            if len(self._pending) >= self._max_size:
                raise MempoolFullError(
                    f"the mempool holds {self._max_size} transactions; retry shortly",
                    limit=self._max_size,
                )
            for cid in inputs:
                other = self._claims.get(cid)
                if other is not None and cid not in contested:
                    raise MempoolConflictError(
                        f"coin {cid.hex()} is already spent by pending transaction {other.hex()}",
                        coin_id=cid.hex(),
                        pending_txid=other.hex(),
                    )
            entry = Pending(tx=tx, txid=txid, inputs=inputs)
            self._pending[txid] = entry
            self._waiting[txid] = entry
            for cid in inputs:
                self._claims.setdefault(cid, txid)
            if isinstance(body, Issue | Transfer):
                for index, output in enumerate(body.outputs):
                    self._outputs[coin_id(txid, index)] = output
            self._has_work.notify_all()
            return entry

    def take(self, max_txs: int) -> list[Pending]:
        """The oldest `max_txs` transactions not yet taken; they stay claimed until `remove`."""
        with self._lock:
            waiting = self._waiting
            count = min(max_txs, len(waiting))
            batch = list(itertools.islice(waiting.values(), count))
            for entry in batch:
                del waiting[entry.txid]
            return batch

    def claim(self, txids: list[TxId]) -> list[Pending | None]:
        """Take the entries of `txids` out of the waiting list, as `take` does; None for unknown.

        For a block received from another node: its transactions here must not go into a
        block this node proposes, until `release` gives them back if the block is dropped.
        """
        with self._lock:
            entries = [self._pending.get(txid) for txid in txids]
            for entry in entries:
                if entry is not None:
                    self._waiting.pop(entry.txid, None)
            return entries

    def release(self, entries: list[Pending]) -> None:
        """Give taken entries back to the waiting list (their block was not committed)."""
        with self._lock:
            for entry in entries:
                if entry.txid in self._pending:
                    self._waiting[entry.txid] = entry
            if self._waiting:
                self._has_work.notify_all()

    def remove(self, entries: list[Pending]) -> None:
        """Forget committed transactions and release their claims and outputs."""
        with self._lock:
            for entry in entries:
                if self._pending.pop(entry.txid, None) is None:
                    continue
                self._waiting.pop(entry.txid, None)
                for cid in entry.inputs:
                    if self._claims.get(cid) == entry.txid:
                        del self._claims[cid]
                body = entry.tx.body
                if isinstance(body, Issue | Transfer):
                    for index in range(len(body.outputs)):
                        self._outputs.pop(coin_id(entry.txid, index), None)

    def wait_for_work(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a transaction not yet taken; whether there is one."""
        with self._has_work:
            if not self._waiting:
                self._has_work.wait(timeout)
            return bool(self._waiting)

    def drain(self) -> list[Pending]:
        """Remove and return everything pending (at shutdown)."""
        with self._lock:
            entries = list(self._pending.values())
            self._pending.clear()
            self._waiting.clear()
            self._claims.clear()
            self._outputs.clear()
            return entries
