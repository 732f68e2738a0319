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


TOP_LEVEL_KEYS = {
    "ceiling",
    "pipeline",
    "api_batch",
    "api_single",
    "p50_ms",
    "p99_ms",
    "ratio_pipeline",
    "ratio_api",
    "machine",
    "state_growth",
}


def test_run_bench_reports_pipeline_over_ceiling() -> None:
    figures = run_bench(quick=True, transfers=300, rounds=1, api=False)
    assert set(figures) >= TOP_LEVEL_KEYS
    assert figures["ceiling"] > 0
    assert figures["pipeline"] > 0
    assert abs(figures["ratio_pipeline"] - figures["pipeline"] / figures["ceiling"]) < 0.001
    assert figures["api_batch"] is None
    assert figures["ratio_api"] is None
    assert figures["machine"]["cores"] >= 1


def test_run_bench_measures_the_api_through_a_node_process() -> None:
    figures = run_bench(quick=True, transfers=200, rounds=1)
    assert figures["api_batch"] > 0
    assert figures["api_single"] > 0
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert abs(figures["ratio_api"] - figures["api_batch"] / figures["ceiling"]) < 0.001


def test_bench_command_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--quick",
            "--no-api",
            "--transfers",
            "200",
            "--rounds",
            "1",
            "--json-file",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert set(figures) >= TOP_LEVEL_KEYS


def test_bench_explorer_times_every_page_over_a_filled_store() -> None:
    result = CliRunner().invoke(app, ["bench", "--explorer", "--blocks", "50", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["blocks"] == 50
    assert {"dashboard", "tx", "address", "not_found"} <= set(figures["pages"])
    assert figures["slowest_ms"] == max(p["median_ms"] for p in figures["pages"].values())


def test_stage_costs_time_each_stage_of_a_real_pipeline() -> None:
    from tally.bench.stages import stage_costs

    costs = stage_costs(200)
    assert set(costs) == {"decode_us", "admit_us", "execute_us", "commit_us"}
    # Admission verifies a signature; decoding alone does not.
    assert costs["admit_us"] > costs["decode_us"] > 0


def test_state_growth_measures_each_prefilled_size_in_one_run() -> None:
    from tally.bench.state_growth import run_state_growth

    growth = run_state_growth(sizes=(500, 3_000), transfers=200, rounds=1)
    assert set(growth["sizes"]) == {"500", "3000"}
    for row in growth["sizes"].values():
        assert row["pipeline"] > 0
        assert row["lmdb_bytes_per_coin"] > 0
    rates = [growth["sizes"][size]["pipeline"] for size in ("500", "3000")]
    assert growth["kept"] == round(rates[1] / rates[0], 3)


def test_bench_refuses_a_malformed_state_growth_list() -> None:
    result = CliRunner().invoke(app, ["bench", "--quick", "--state-growth", "1e6"])
    assert result.exit_code == 1
    assert "comma-separated coin counts" in result.output


def test_run_consortium_measures_four_node_processes() -> None:
    from tally.bench.consortium import run_consortium

    figures = run_consortium(4, transfers=200, rounds=1)
    assert figures["nodes"] == 4
    assert figures["consortium_batch"] > 0
    assert 0 < figures["consortium_p50_ms"] <= figures["consortium_p99_ms"]


def test_bench_refuses_a_consortium_smaller_than_four() -> None:
    result = CliRunner().invoke(app, ["bench", "--quick", "--nodes", "3"])
    assert result.exit_code != 0
    assert "at least 4 nodes" in result.output
