"""The benchmarks behind `tally bench`: every figure next to the machine's ceiling."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from tally.bench.api import run_api
from tally.bench.ceiling import signed_samples, verify_rate
from tally.bench.consortium import run_consortium
from tally.bench.machine import machine_info
from tally.bench.pipeline import PipelineResult, run_pipeline
from tally.bench.state_growth import run_state_growth

__all__ = [
    "run_bench",
    "run_api",
    "run_state_growth",
    "PipelineResult",
    "machine_info",
    "verify_rate",
    "signed_samples",
]


def run_bench(
    *,
    quick: bool = False,
    transfers: int | None = None,
    rounds: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    api: bool = True,
    state_growth: Sequence[int] = (),
    nodes: int = 1,
) -> dict[str, Any]:
    """Measure the ceiling, the pipeline and the API in one run; medians of several rounds.

    The ceiling is measured before and after each pipeline round, so that a change in the
    machine's load during the run shows in both figures. Every ratio divides figures of
    this same run. `api=False` leaves the API figures out (they are then None).
    `state_growth` names the coin counts to prefill for the state-growth figures (none by
    default: 10 million coins take several minutes to prepare). `nodes` ≥ 4 adds the figures
    of a PBFT consortium of that many node processes (`consortium`), next to `api_batch`.
    """
    rounds = rounds or (3 if quick else 5)
    transfers = transfers or (5_000 if quick else 20_000)
    samples = signed_samples(20_000 if quick else 50_000)
    ceilings = [verify_rate(samples)]
    runs: list[PipelineResult] = []
    for _ in range(rounds):
        runs.extend(run_pipeline(transfers, rounds=1, progress=progress))
        ceilings.append(verify_rate(samples))
    api_figures: dict[str, Any] = {}
    if api:
        api_rounds = 1 if quick else 3
        api_transfers = min(transfers, 2_000 if quick else 10_000)
        api_figures = run_api(api_transfers, api_rounds, progress=progress)
        ceilings.append(verify_rate(samples))
    growth = None
    if state_growth:
        growth = run_state_growth(
            state_growth, transfers=transfers, rounds=rounds, progress=progress
        )
        ceilings.append(verify_rate(samples))
    consortium = None
    if nodes > 1:
        api_rounds = 1 if quick else 3
        api_transfers = min(transfers, 2_000 if quick else 10_000)
        consortium = run_consortium(nodes, api_transfers, api_rounds, progress=progress)
        ceilings.append(verify_rate(samples))
    ceiling = statistics.median(ceilings)
    pipeline = statistics.median(r.rate for r in runs)
    api_batch = api_figures.get("api_batch")
    return {
        "ceiling": round(ceiling, 1),
        "pipeline": round(pipeline, 1),
        "api_batch": _rounded(api_batch),
        "api_single": _rounded(api_figures.get("api_single")),
        "p50_ms": _rounded(api_figures.get("p50_ms")),
        "p99_ms": _rounded(api_figures.get("p99_ms")),
        "ratio_pipeline": round(pipeline / ceiling, 3),
        "ratio_api": None if api_batch is None else round(api_batch / ceiling, 3),
        "state_growth": growth,
        "consortium": _with_ratios(consortium, api_batch, ceiling),
        "rounds": rounds,
        "transfers_per_round": transfers,
        "ceiling_runs": [round(c, 1) for c in ceilings],
        "pipeline_runs": [round(r.rate, 1) for r in runs],
        "blocks_per_round": [r.blocks for r in runs],
        "api_runs": {
            key: [round(v, 1) for v in value]
            for key, value in api_figures.items()
            if isinstance(value, list)
        },
        "machine": machine_info(),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _with_ratios(
    consortium: dict[str, Any] | None, api_batch: float | None, ceiling: float
) -> dict[str, Any] | None:
    """The consortium figures with their ratios to the single node's and to the ceiling."""
    if consortium is None:
        return None
    rate = consortium["consortium_batch"]
    return {
        **consortium,
        "vs_single_node": None if not api_batch else round(rate / api_batch, 3),
        "ratio_ceiling": round(rate / ceiling, 3),
    }
