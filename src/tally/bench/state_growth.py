"""State growth: the pipeline figure with millions of unspent coins already in the store.

Unspent coins live in LMDB, not in a Python dict, so the node's memory should not grow
with the coin set and lookups should slow down only as the B-tree deepens. This measures
both: the pipeline rate over a store prefilled with `size` coins, the node's resident
memory, and the LMDB bytes on disk per unspent coin.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tally.bench.pipeline import Progress, bench_node, fund, measure_round

__all__ = ["run_state_growth", "resident_mib"]

_CHUNK = 64_000
"""Coins issued per prefill step: 1,000 issuances of 64 outputs."""
_PREFILL_NONCES = 10**12
"""Nonces of prefill issuances start here, apart from the measured rounds' nonces."""


def resident_mib(field: str = "VmRSS") -> float | None:
    """This process's resident memory now, in MiB (None where /proc is missing).

    `VmRSS` counts the pages of the LMDB map the process has touched, which the kernel may
    drop again at any time; `RssAnon` is the process's own heap, which it may not.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _allocated_bytes(directory: Path) -> int:
    # LMDB's data file is sparse: count the blocks it really occupies, not its length.
    return sum(path.stat().st_blocks * 512 for path in directory.iterdir() if path.is_file())


def run_state_growth(
    sizes: Sequence[int] = (1_000_000, 10_000_000),
    transfers: int = 5_000,
    rounds: int = 3,
    progress: Progress | None = None,
    threads: int | None = None,
    directory: Path | None = None,
) -> dict[str, Any]:
    """For each size: prefill a fresh store with that many coins, then measure the pipeline.

    Returns:
        `{"sizes": {size: {"pipeline", "pipeline_runs", "rss_mib", "heap_mib",
        "lmdb_bytes_per_coin"}},
        "kept": pipeline at the largest size / pipeline at the smallest}`.
    """
    threads = threads or os.cpu_count() or 1
    figures: dict[int, dict[str, Any]] = {}
    for size in sizes:
        with bench_node(directory, mempool_max=max(transfers, _CHUNK) + 1_000) as (node, path):
            for start in range(0, size, _CHUNK):
                fund(node, min(_CHUNK, size - start), _PREFILL_NONCES + start)
                if progress is not None:
                    progress(f"prefill {size:,}", min(start + _CHUNK, size), size)
            rates = [
                measure_round(node, transfers, round_no * 10_000_000, threads).rate
                for round_no in range(rounds)
            ]
            # Each round funds `transfers` coins and turns each into two.
            unspent = size + rounds * transfers * 2
            figures[size] = {
                "pipeline": round(statistics.median(rates), 1),
                "pipeline_runs": [round(rate, 1) for rate in rates],
                "rss_mib": _rounded(resident_mib()),
                "heap_mib": _rounded(resident_mib("RssAnon")),
                "lmdb_bytes_per_coin": round(_allocated_bytes(path) / unspent, 1),
            }
    smallest, largest = figures[min(sizes)], figures[max(sizes)]
    return {
        "sizes": {str(size): value for size, value in figures.items()},
        "kept": round(largest["pipeline"] / smallest["pipeline"], 3),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
