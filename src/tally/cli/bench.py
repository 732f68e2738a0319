"""`tally bench`: throughput figures beside the machine's signature-verification ceiling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tally.cli.context import JsonOption
from tally.cli.output import CliError, console, emit_json, reports_errors

__all__ = ["bench"]

_STAGES = {"fund": "funding coins", "sign": "signing transfers", "measure": "measured rounds"}


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
        Path | None, typer.Option("--json-file", help="Also write the figures to this JSON file.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure committed transfers per second next to the Schnorr-verification ceiling.

    `ceiling` is how many BIP-340 signatures all cores verify per second, measured in the
    same run; `pipeline` is how many 1-input-2-output transfers per second the node commits
    in-process with durable LMDB commits. Each figure is the median of several rounds.
    """
    from tally.bench import run_bench  # the benchmarks pull in the whole node

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
            figures = run_bench(quick=quick, transfers=transfers, rounds=rounds, progress=report)
        except OSError as exc:
            raise CliError(f"the benchmark could not use its temporary directory: {exc}") from None
    if json_file is not None:
        json_file.write_text(json.dumps(figures, indent=2) + "\n")
    if as_json:
        emit_json(figures)
        return
    table = Table(title="tally bench", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    table.add_row("ceiling", f"{figures['ceiling']:,.0f}/s", "Schnorr verifications, all cores")
    table.add_row("pipeline", f"{figures['pipeline']:,.0f}/s", "committed transfers, in-process")
    table.add_row("ratio_pipeline", f"{figures['ratio_pipeline']:.3f}", "pipeline / ceiling")
    machine = figures["machine"]
    table.caption = (
        f"median of {figures['rounds']} rounds of {figures['transfers_per_round']:,} transfers; "
        f"{machine['cores']} cores, {machine['cpu_model']}, Python {machine['python']}"
    )
    console.print(table)
