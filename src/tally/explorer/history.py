"""Recent chain history for the dashboard: block times and sizes, and supply samples.

Block points come from two places: committed-block events (free: the event carries the
height, time and transaction count) and, for heights the explorer has not seen, block
headers read from the source, at most `backfill` below the tip. Supply is sampled
whenever the dashboard looks and the tip has moved, so its chart runs from the time the
explorer started. Everything is bounded; nothing walks the chain.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from tally.explorer.source import LedgerSource

__all__ = ["BlockPoint", "SupplySample", "ChainHistory", "Throughput"]


@dataclass(frozen=True)
class BlockPoint:
    """One block's place in time."""

    height: int
    """The block's height."""
    time_ms: int
    """The orderer's time for the block, milliseconds since the Unix epoch."""
    tx_count: int
    """How many transactions it ordered."""


@dataclass(frozen=True)
class SupplySample:
    """Outstanding supply per asset after some block."""

    height: int
    """The tip when sampled."""
    time_ms: int
    """The tip block's time."""
    outstanding: dict[str, int]
    """Outstanding minor units per asset."""


@dataclass(frozen=True)
class Throughput:
    """Committed transactions per second in equal time buckets ending now."""

    bucket_s: int
    """Seconds per bucket."""
    rates: list[float | None]
    """Transactions per second in each bucket, oldest first; None where nothing is known."""
    last_rate: float
    """Transactions per second over the newest two buckets."""
    peak: float
    """The highest bucket rate."""


class ChainHistory:
    """Bounded, thread-safe memory of recent blocks and supply.

    Args:
        max_points: Block points kept (the newest).
        backfill: Headers read below the tip to fill heights the events did not bring.
        max_samples: Supply samples kept.
    """

    def __init__(
        self, *, max_points: int = 20_000, backfill: int = 300, max_samples: int = 240
    ) -> None:
        self._points: dict[int, BlockPoint] = {}
        self._max_points = max_points
        self._backfill = backfill
        self._samples: deque[SupplySample] = deque(maxlen=max_samples)
        self._lock = threading.Lock()
        self._top = 0

    def record(self, event: dict[str, Any]) -> None:
        """Remember a committed-block event's height, time and size."""
        try:
            point = BlockPoint(
                height=int(event["height"]),
                time_ms=int(event["time_ms"]),
                tx_count=int(event["tx_count"]),
            )
        except (KeyError, TypeError, ValueError):
            return
        self._add(point)

    def _add(self, point: BlockPoint) -> None:
        with self._lock:
            self._points[point.height] = point
            self._top = max(self._top, point.height)
            if len(self._points) > self._max_points * 5 // 4:
                floor = self._top - self._max_points
                self._points = {h: p for h, p in self._points.items() if h > floor}

    def refresh(self, source: LedgerSource, tip: int) -> None:
        """Read the headers of unseen heights near `tip`, and sample supply if it moved."""
        for height in range(tip, max(0, tip - self._backfill), -1):
            with self._lock:
                if height in self._points:
                    continue
            header = source.header(height)
            if header is None:
                break
            self._add(BlockPoint(height, int(header["time_ms"]), int(header["tx_count"])))
        with self._lock:
            last = self._samples[-1].height if self._samples else -1
            tip_point = self._points.get(tip)
        if tip != last:
            outstanding = {asset: t["outstanding"] for asset, t in source.supply().items()}
            time_ms = tip_point.time_ms if tip_point else 0
            with self._lock:
                self._samples.append(SupplySample(tip, time_ms, outstanding))

    def recent(self, tip: int, count: int) -> list[BlockPoint]:
        """The known points of the `count` heights up to `tip`, oldest first."""
        with self._lock:
            found = [self._points.get(h) for h in range(max(1, tip - count + 1), tip + 1)]
        return [p for p in found if p is not None]

    def supply_samples(self) -> list[SupplySample]:
        """Supply samples, oldest first."""
        with self._lock:
            return list(self._samples)

    def interval_ms(self, tip: int, blocks: int = 20) -> float | None:
        """The median time between the last `blocks` consecutive blocks, if known."""
        points = self.recent(tip, blocks + 1)
        gaps = sorted(
            b.time_ms - a.time_ms for a, b in itertools.pairwise(points) if b.height == a.height + 1
        )
        if not gaps:
            return None
        middle = len(gaps) // 2
        return gaps[middle] if len(gaps) % 2 else (gaps[middle - 1] + gaps[middle]) / 2

    def throughput(
        self, tip: int, now_ms: int, window_s: int = 300, bucket_s: int = 5
    ) -> Throughput:
        """Committed transactions per second over the last `window_s` seconds.

        Buckets older than the oldest block the explorer knows in an unbroken run from the
        tip are None: their blocks were never read.
        """
        buckets = window_s // bucket_s
        start_ms = now_ms - window_s * 1000
        counts = [0] * buckets
        with self._lock:
            covered_from = now_ms
            height = tip
            while height >= 1:
                point = self._points.get(height)
                if point is None:
                    break
                covered_from = point.time_ms
                if point.time_ms < start_ms:
                    covered_from = start_ms
                    break
                slot = min(buckets - 1, (point.time_ms - start_ms) // (bucket_s * 1000))
                counts[slot] += point.tx_count
                height -= 1
            else:
                covered_from = start_ms  # reached genesis: everything before is truly empty
        rates: list[float | None] = []
        for slot, count in enumerate(counts):
            slot_end = start_ms + (slot + 1) * bucket_s * 1000
            rates.append(None if slot_end <= covered_from else count / bucket_s)
        known = [r for r in rates if r is not None]
        last_two = [r for r in rates[-2:] if r is not None]
        return Throughput(
            bucket_s=bucket_s,
            rates=rates,
            last_rate=sum(last_two) / len(last_two) if last_two else 0.0,
            peak=max(known, default=0.0),
        )
