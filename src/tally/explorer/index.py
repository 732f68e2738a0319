"""The explorer's index of recent blocks: who created each coin, and what each address did.

A node's store keeps both (its origin and history tables), and an explorer mounted in the
node reads them there. The node's HTTP API does not serve them, so a stand-alone explorer
(`tally explorer --node URL`) keeps both for the most recent blocks, in memory and
bounded: a background thread follows the tip, reading each new block once, and forgets the
oldest blocks when the index holds more than `max_outputs` created coins. Older coins are
still shown; only their creator is then unknown, unless the page was reached from the
creating transaction (whose links carry it).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field

from tally.explorer.source import Activity, Creator, LedgerSource, SourceUnavailableError

__all__ = ["RecentIndex", "Activity", "Creator"]

log = logging.getLogger(__name__)


@dataclass
class _Indexed:
    """What one indexed block added, so that it can be forgotten again."""

    height: int
    coins: list[bytes] = field(default_factory=list)
    addresses: list[bytes] = field(default_factory=list)


class RecentIndex:
    """Coin creators and address activity for the most recent blocks, kept in memory.

    Args:
        source: Where blocks are read.
        backfill: The most blocks below the tip to index when the index starts.
        backfill_txs: The most transactions those blocks may hold together (read from
            their headers first), so that a chain of full blocks costs no more to start.
        max_outputs: The most created coins kept; the oldest blocks go first.
        max_behind: If the tip runs further ahead than this, blocks in between are skipped.
    """

    def __init__(
        self,
        source: LedgerSource,
        *,
        backfill: int = 1_000,
        backfill_txs: int = 50_000,
        max_outputs: int = 200_000,
        max_behind: int = 2_000,
    ) -> None:
        self._source = source
        self._backfill = backfill
        self._backfill_txs = backfill_txs
        self._max_outputs = max_outputs
        self._max_behind = max_behind
        self._creators: dict[bytes, Creator] = {}
        self._activity: dict[bytes, deque[Activity]] = {}
        self._blocks: deque[_Indexed] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.indexed_to = 0
        """The highest height indexed so far."""

    # -- queries ------------------------------------------------------------------------

    @property
    def indexed_from(self) -> int:
        """The lowest height still in the index (0 when it is empty)."""
        with self._lock:
            return self._blocks[0].height if self._blocks else 0

    def creator(self, cid: bytes) -> Creator | None:
        """The transaction that created coin `cid`, if that block is in the index."""
        with self._lock:
            return self._creators.get(cid)

    def activity(self, lock_hash: bytes, limit: int = 100) -> list[Activity]:
        """The newest transactions (at most `limit`) that paid or spent from this lock."""
        with self._lock:
            entries = self._activity.get(lock_hash)
            if not entries:
                return []
            return [entries[-1 - i] for i in range(min(limit, len(entries)))]

    # -- following the tip --------------------------------------------------------------

    def start(self) -> None:
        """Start the thread that follows the tip."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="explorer-index", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Ask the thread to look at the tip now (a block was committed)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.catch_up()
            except SourceUnavailableError as exc:
                log.info("explorer index waits for the node: %s", exc)
            except Exception:  # a thread boundary: log and keep following
                log.exception("explorer index failed to read a block")
            self._wake.wait(1.0)
            self._wake.clear()

    def catch_up(self) -> int:
        """Index every block up to the tip (at most `max_behind` of them); how many."""
        tip = self._source.tip()
        start = self.indexed_to + 1 if self.indexed_to else self._backfill_start(tip)
        start = max(start, tip - self._max_behind + 1, 1)
        done = 0
        for height in range(start, tip + 1):
            if self._stopping.is_set():
                break
            if not self.add_block(height):
                break
            done += 1
        return done

    def _backfill_start(self, tip: int) -> int:
        """The lowest height to index first: within `backfill` blocks and `backfill_txs`."""
        start, txs = tip + 1, 0
        while start > 1 and tip - start + 1 < self._backfill:
            header = self._source.header(start - 1)
            if header is None:
                break
            txs += int(header["tx_count"])
            if txs > self._backfill_txs:
                break
            start -= 1
        return start

    def add_block(self, height: int) -> bool:
        """Index the block at `height` (above every block indexed so far); whether it exists."""
        flows = self._source.flows(height)
        if flows is None:
            return False
        indexed = _Indexed(height=height)
        touched: dict[bytes, dict[bytes, list[int]]] = {}
        with self._lock:
            known = {cid: self._creators.get(cid) for flow in flows for cid in flow.inputs}
        for flow in flows:
            for cid in flow.inputs:
                creator = known.get(cid)
                lock = creator.lock_hash if creator else self._source.spent_lock_hash(cid)
                if lock is not None:
                    touched.setdefault(lock, {}).setdefault(flow.txid, [0, 0])[1] += 1
            for _, lock in flow.outputs:
                touched.setdefault(lock, {}).setdefault(flow.txid, [0, 0])[0] += 1
        with self._lock:
            for flow in flows:
                for index, (cid, lock) in enumerate(flow.outputs):
                    self._creators[cid] = Creator(
                        txid=flow.txid, index=index, height=height, lock_hash=lock
                    )
                    indexed.coins.append(cid)
            for lock, by_tx in touched.items():
                entries = self._activity.setdefault(lock, deque())
                for txid, (received, spent) in by_tx.items():
                    entries.append(Activity(height, txid, received, spent))
                    indexed.addresses.append(lock)
            self._blocks.append(indexed)
            self.indexed_to = height
            self._forget_oldest()
        return True

    def _forget_oldest(self) -> None:
        """Drop whole blocks from the old end until at most `max_outputs` coins remain."""
        while len(self._creators) > self._max_outputs and len(self._blocks) > 1:
            oldest = self._blocks.popleft()
            for cid in oldest.coins:
                self._creators.pop(cid, None)
            for lock in oldest.addresses:
                entries = self._activity.get(lock)
                if entries:
                    entries.popleft()
                    if not entries:
                        del self._activity[lock]
