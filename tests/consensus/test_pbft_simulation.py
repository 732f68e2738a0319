"""PBFT over a simulated network: seeded runs with faults, and a checker that must fire.

`TALLY_SIM_SEEDS` sets how many seeds the main run covers (300 by default; the slow run uses
100000 and every core). A failure names its seed; replay it with
`python -m tally.consensus.pbft.simulation --seed S`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import msgspec
import pytest

from tally.consensus.pbft.simulation import (
    Outcome,
    Scenario,
    Simulation,
    check_certificate,
    main,
    run_seed,
    run_seeds,
)
from tally.model import CommitCertificate

SEEDS = int(os.environ.get("TALLY_SIM_SEEDS", "300"))
JOBS = 1 if SEEDS <= 1000 else (os.cpu_count() or 1)
SAFETY = ("fork:", "lost:")


def explain(outcomes: list[Outcome]) -> str:
    lines = []
    for outcome in outcomes[:10]:
        lines.append(f"seed {outcome.seed}: {outcome.description}")
        lines += [f"    {failure}" for failure in outcome.failures]
        lines.append(f"    replay: python -m tally.consensus.pbft.simulation --seed {outcome.seed}")
    return "\n".join(lines)


@pytest.mark.timeout(max(300, SEEDS // 4))
def test_default_schedule_finds_no_fault_over_the_seeds() -> None:
    outcomes = run_seeds(range(SEEDS), jobs=JOBS)
    failed = [o for o in outcomes if not o.ok]
    assert not failed, f"{len(failed)} of {SEEDS} seeds failed:\n{explain(failed)}"
    # The schedule really did its worst: views changed, replicas were Byzantine or crashed,
    # some networks had seven replicas, and blocks still committed.
    assert sum(o.max_view > 0 for o in outcomes) > SEEDS // 3
    assert sum("n=7" in o.description for o in outcomes) > SEEDS // 20
    kinds = Counter(
        kind
        for o in outcomes
        for kind in ("twin", "equivocator", "bad-signer")
        if f":{kind}" in o.description
    )
    assert min(kinds[k] for k in ("twin", "equivocator", "bad-signer")) > SEEDS // 20
    assert sum("crashes=0" not in o.description for o in outcomes) > SEEDS // 4
    assert all(o.height > 0 for o in outcomes)


@pytest.mark.parametrize(("n", "twins", "count"), [(4, 1, 40), (7, 1, 10), (7, 2, 10)])
def test_twins_up_to_f_never_fork(n: int, twins: int, count: int) -> None:
    outcomes = run_seeds(range(count), Scenario(n=n, twins=twins))
    failed = [o for o in outcomes if not o.ok]
    assert not failed, explain(failed)
    assert all(":twin" in o.description for o in outcomes)


@pytest.mark.parametrize(("n", "twins"), [(4, 2), (7, 3)])
def test_f_plus_one_twins_split_by_a_partition_fork(n: int, twins: int) -> None:
    for seed in range(5):
        outcome = run_seed(seed, Scenario(n=n, twins=twins, split_twins=True))
        assert any(f.startswith("fork:") for f in outcome.failures), (seed, outcome.failures)


def test_f_twins_split_by_a_partition_do_not_fork() -> None:
    # The same schedule one twin short: each side lacks a quorum.
    outcomes = run_seeds(range(5), Scenario(n=4, twins=1, split_twins=True))
    failed = [o for o in outcomes if not o.ok]
    assert not failed, explain(failed)


def test_checker_catches_the_broken_view_change_within_the_default_seeds() -> None:
    scenario = Scenario(broken_view_change=True)
    for seed in range(300):
        outcome = run_seed(seed, scenario)
        if any(f.startswith(SAFETY) for f in outcome.failures):
            break
    else:
        pytest.fail("no fork or lost commit in 300 seeds with the broken view change")
    # The same seed with the correct view change passes.
    assert run_seed(seed).ok


def test_same_seed_replays_the_same_run() -> None:
    for seed in (1, 2, 3):
        first, second = run_seed(seed), run_seed(seed)
        assert first.trace_hash == second.trace_hash
        assert (first.height, first.messages, first.sim_ms) == (
            second.height,
            second.messages,
            second.sim_ms,
        )
    assert len({run_seed(seed).trace_hash for seed in range(5)}) == 5


def test_replay_does_not_depend_on_the_hash_seed_of_the_process() -> None:
    lines = []
    for hash_seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-m", "tally.consensus.pbft.simulation", "--seed", "7"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        lines.append(result.stdout.splitlines()[-1])
    assert lines[0] == lines[1]
    assert lines[0].startswith("seed 7 ok:")


def test_trace_shows_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("      0 seed 4: n=")
    assert " commits " in out
    assert " <- " in out
    assert out.splitlines()[-1].startswith("seed 4 ok: height ")


def test_command_line_reports_the_seed_and_what_broke(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seed", "0", "--n", "4", "--twins", "2", "--split-twins"]) == 1
    out = capsys.readouterr().out
    assert "seed 0 FAILED" in out
    assert "fork: at height" in out


def test_command_line_runs_many_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "6", "--start", "10", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "6/6 seeds, 0 failed" in out
    assert "6 seeds from 10 in " in out
    assert main(["--seeds", "3", "--n", "4", "--twins", "2", "--split-twins"]) == 1
    out = capsys.readouterr().out
    assert "3 seeds from 0" in out
    assert ": 3 failed" in out
    assert "replay: python -m tally.consensus.pbft.simulation --seed 2" in out


def test_checker_refuses_certificates_short_of_a_quorum_or_badly_signed() -> None:
    simulation = Simulation(5)
    assert simulation.run().ok
    honest = next(p for p in simulation.processes if p.honest)
    _, certificate = honest.ledger.blocks[0]
    digest = honest.ledger.digests[1]

    def problem(cert: CommitCertificate, digest: bytes = digest) -> str:
        return check_certificate(cert, 1, digest, simulation.n, simulation.keys.verify) or ""

    signatures = certificate.signatures
    assert problem(certificate) == ""
    assert "a quorum is" in problem(
        msgspec.structs.replace(certificate, signatures=signatures[:-1])
    )
    repeated = (signatures[0], *signatures[:-1])
    assert "repeated" in problem(msgspec.structs.replace(certificate, signatures=repeated))
    spoiled = (msgspec.structs.replace(signatures[0], sig=bytes(64)), *signatures[1:])
    assert "bad signature" in problem(msgspec.structs.replace(certificate, signatures=spoiled))
    assert "another digest" in problem(certificate, bytes(32))
