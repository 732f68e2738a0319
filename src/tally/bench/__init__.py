"""The benchmarks behind `tally bench`: every figure next to the machine's ceiling."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from tally.bench.ceiling import signed_samples, verify_rate
from tally.bench.machine import machine_info
from tally.bench.pipeline import PipelineResult, run_pipeline

__all__ = ["run_bench", "PipelineResult", "machine_info", "verify_rate", "signed_samples"]


def run_bench(
    *,
    quick: bool = False,
    transfers: int | None = None,
    rounds: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Measure the ceiling and the pipeline in one run; medians of several rounds.

    The ceiling is measured before and after each pipeline round, so that a change in the
    machine's load during the run shows in both figures.
    """
    rounds = rounds or (3 if quick else 5)
    transfers = transfers or (5_000 if quick else 20_000)
    samples = signed_samples(20_000 if quick else 50_000)
    ceilings = [verify_rate(samples)]
    runs: list[PipelineResult] = []
    for _ in range(rounds):
        runs.extend(run_pipeline(transfers, rounds=1, progress=progress))
        ceilings.append(verify_rate(samples))
    ceiling = statistics.median(ceilings)
    pipeline = statistics.median(r.rate for r in runs)
    return {
        "ceiling": round(ceiling, 1),
        "pipeline": round(pipeline, 1),
        "ratio_pipeline": round(pipeline / ceiling, 3),
        "rounds": rounds,
        "transfers_per_round": transfers,
        "ceiling_runs": [round(c, 1) for c in ceilings],
        "pipeline_runs": [round(r.rate, 1) for r in runs],
        "blocks_per_round": [r.blocks for r in runs],
        "machine": machine_info(),
    }
