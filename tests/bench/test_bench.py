"""`tally bench` measures both figures in one run and reports their ratio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.bench import run_bench
from tally.bench.ceiling import signed_samples, verify_rate
from tally.cli.main import app


def test_verify_rate_counts_real_verifications() -> None:
    samples = signed_samples(200)
    assert verify_rate(samples, threads=2) > 0
    broken = [*samples[:-1], (samples[-1][0], samples[-1][1], bytes(64))]
    with pytest.raises(RuntimeError, match="failed to verify"):
        verify_rate(broken, threads=1)


def test_run_bench_reports_pipeline_over_ceiling() -> None:
    figures = run_bench(quick=True, transfers=300, rounds=1)
    assert figures["ceiling"] > 0
    assert figures["pipeline"] > 0
    assert abs(figures["ratio_pipeline"] - figures["pipeline"] / figures["ceiling"]) < 0.001
    assert figures["machine"]["cores"] >= 1


def test_bench_command_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app, ["bench", "--quick", "--transfers", "200", "--rounds", "1", "--json-file", str(out)]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert set(figures) >= {"ceiling", "pipeline", "ratio_pipeline", "machine"}
