"""`tally bench`: throughput figures beside the machine's signature-verification ceiling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tally.cli.context import JsonOption
from tally.cli.output import CliError, console, emit_json, reports_errors

__all__ = ["bench"]

_STAGES = {
    "fund": "funding coins",
    "sign": "signing transfers",
    "measure": "measured rounds",
    "api": "API runs (node process)",
    "consortium": "consortium runs (node processes)",
    "fill": "committing blocks",
    "pages": "timing pages",
}


@reports_errors
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Fewer transfers and rounds: done in about a minute.")
    ] = False,
    transfers: Annotated[
        int | None, typer.Option("--transfers", help="Transfers per measured round.", min=100)
    ] = None,
    rounds: Annotated[
        int | None, typer.Option("--rounds", help="Measured rounds; the median is reported.", min=1)
    ] = None,
    json_file: Annotated[
        Path | None,
        typer.Option(
            "--json-file",
            help="Also write the figures to this JSON file (--json prints them to stdout).",
        ),
    ] = None,
    no_api: Annotated[
        bool, typer.Option("--no-api", help="Leave out the API figures (no node process).")
    ] = False,
    explorer: Annotated[
        bool,
        typer.Option(
            "--explorer",
            help="Instead, time every explorer page over a store of --blocks blocks.",
        ),
    ] = False,
    state_growth: Annotated[
        str | None,
        typer.Option(
            "--state-growth",
            help="Also measure the pipeline over stores prefilled with these many coins, "
            "comma-separated (the issue's figure: 1000000,10000000; about 10 minutes).",
            show_default=False,
        ),
    ] = None,
    nodes: Annotated[
        int,
        typer.Option(
            "--nodes",
            help="Also run a PBFT consortium of this many node processes (4 or more) and "
            "report its committed transfers per second next to the single node's.",
        ),
    ] = 1,
    blocks: Annotated[
        int, typer.Option("--blocks", help="Blocks in the store for --explorer.", min=10)
    ] = 100_000,
    as_json: JsonOption = False,
) -> None:
    """Measure committed transfers per second next to the Schnorr-verification ceiling.

    `ceiling` is how many BIP-340 signatures all cores verify per second, measured in the
    same run; `pipeline` is how many 1-input-2-output transfers per second the node commits
    in-process with durable LMDB commits; `api_batch` and `api_single` the same through a
    node process's HTTP API, with p50/p99 latency at half the `api_batch` rate. Each figure
    is the median of several rounds.

    With `--explorer`, it fills a store with `--blocks` blocks instead and reports the
    median render time of every explorer page (the budget is 300 ms a page).
    """
    if nodes != 1 and nodes < 4:
        raise CliError(f"--nodes {nodes}: a PBFT consortium needs at least 4 nodes (n = 3f+1)")
    from tally.bench import run_bench  # the benchmarks pull in the whole node
    from tally.explorer.bench import bench_explorer

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(_STAGES.get(stage, stage), total=total)
            progress.update(tasks[stage], completed=done, total=total)

        try:
            if explorer:
                figures = bench_explorer(blocks, progress=report)
            else:
                figures = run_bench(
                    quick=quick,
                    transfers=transfers,
                    rounds=rounds,
                    progress=report,
                    api=not no_api,
                    state_growth=_sizes(state_growth),
                    nodes=nodes,
                )
        except OSError as exc:
            raise CliError(f"the benchmark could not use its temporary directory: {exc}") from None
    if json_file is not None:
        json_file.write_text(json.dumps(figures, indent=2) + "\n")
    if as_json:
        emit_json(figures)
        return
    if explorer:
        _print_explorer(figures)
        return
    table = Table(title="tally bench", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    table.add_row("ceiling", f"{figures['ceiling']:,.0f}/s", "Schnorr verifications, all cores")
    table.add_row("pipeline", f"{figures['pipeline']:,.0f}/s", "committed transfers, in-process")
    table.add_row("ratio_pipeline", f"{figures['ratio_pipeline']:.3f}", "pipeline / ceiling")
    if figures["api_batch"] is not None:
        table.add_row(
            "api_batch", f"{figures['api_batch']:,.0f}/s", "committed, POST /v1/txs/batch"
        )
        table.add_row(
            "api_single", f"{figures['api_single']:,.0f}/s", "committed, 64 clients, POST /v1/txs"
        )
        table.add_row("p50_ms", f"{figures['p50_ms']:,.1f}", "submit to commit, half api_batch")
        table.add_row("p99_ms", f"{figures['p99_ms']:,.1f}", "submit to commit, half api_batch")
        table.add_row("ratio_api", f"{figures['ratio_api']:.3f}", "api_batch / ceiling")
    consortium = figures.get("consortium")
    if consortium is not None:
        table.add_row(
            f"{consortium['nodes']} nodes",
            f"{consortium['consortium_batch']:,.0f}/s",
            "committed, PBFT consortium, POST /v1/txs/batch to node0",
        )
        table.add_row(
            f"{consortium['nodes']} nodes p50/p99",
            f"{consortium['consortium_p50_ms']:,.0f}/{consortium['consortium_p99_ms']:,.0f} ms",
            "submit to commit, half the consortium rate",
        )
        if consortium["vs_single_node"] is not None:
            table.add_row(
                "vs_single_node", f"{consortium['vs_single_node']:.3f}", "consortium / api_batch"
            )
    growth = figures["state_growth"]
    if growth is not None:
        for size, row in growth["sizes"].items():
            table.add_row(
                f"pipeline at {int(size):,} coins",
                f"{row['pipeline']:,.0f}/s",
                f"heap {row['heap_mib']} MiB, LMDB {row['lmdb_bytes_per_coin']:.0f} B/coin",
            )
        table.add_row("kept", f"{growth['kept']:.3f}", "largest-store rate / smallest")
    machine = figures["machine"]
    table.caption = (
        f"median of {figures['rounds']} rounds of {figures['transfers_per_round']:,} transfers; "
        f"{machine['cores']} cores, {machine['cpu_model']}, Python {machine['python']}"
    )
    console.print(table)


def _print_explorer(figures: dict[str, Any]) -> None:  # Any: the benchmark's JSON document
    table = Table(title=f"explorer pages over {figures['blocks']:,} blocks", show_header=True)
    table.add_column("page")
    table.add_column("median ms", justify="right")
    table.add_column("first ms", justify="right")
    for name, page in figures["pages"].items():
        table.add_row(name, f"{page['median_ms']:.1f}", f"{page['first_ms']:.1f}")
    verdict = "within" if figures["within_budget"] else "OVER"
    table.caption = (
        f"slowest {figures['slowest_ms']:.1f} ms, {verdict} the {figures['budget_ms']} ms budget;"
        f" store filled in {figures['fill_s']:.0f} s"
    )
    console.print(table)


def _sizes(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise CliError(f"--state-growth takes comma-separated coin counts, not {text!r}") from None
    if any(size < 1 for size in sizes):
        raise CliError("--state-growth counts must be positive")
    return sizes
