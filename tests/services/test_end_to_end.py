"""The whole two-tier system on real processes over HTTP: the flows `make run` shows.

Issuer issues to Bank A; Alice (tier 2 at A) loads 500.00 and pays Bob (at B) 120.00 from his
signed request; Bob unloads 100.00 to his deposit account at B; B redeems its excess float and
the issuer releases that reserve; a pre-payment is captured; a hosted wallet pays. After every
step the ledger's supply equals the issuer's frozen reserves and what wallets and floats hold.
Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tally.cli.demo import Books, DemoState, prepare, run_flows, start_processes
from tally.cli.supervisor import Supervisor
from tally.node.keyfile import read_key
from tally.services.issuer.client import IssuerClient
from tally.services.operator.client import OperatorClient
from tally.wallet.wallet import Wallet
from tests.node.harness import free_port
from tests.services.postgres import PostgresCluster, database_name

pytestmark = pytest.mark.network


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """One database per service, of the kind under test."""
    if request.param == "sqlite":
        return {name: f"sqlite:///{tmp_path / f'{name}.sqlite'}" for name in ("issuer", "a", "b")}
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return {
        name: cluster.new_database(database_name(f"{request.node.nodeid}-{name}"))
        for name in ("issuer", "a", "b")
    }


@pytest.fixture
def network(tmp_path: Path, databases: dict[str, str]) -> Iterator[tuple[DemoState, Supervisor]]:
    ports = {name: free_port() for name in ("node", "issuer", "a", "b")}
    state, created = prepare(tmp_path / "net", ports=ports, databases=databases)
    assert created
    supervisor = Supervisor()
    try:
        start_processes(state, supervisor)
        yield state, supervisor
    finally:
        codes = supervisor.stop()
        assert all(code == 0 for code in codes.values()), codes


def test_money_moves_through_both_tiers_and_the_books_balance_after_every_step(
    network: tuple[DemoState, Supervisor],
) -> None:
    state, _ = network
    steps: list[tuple[str, Books]] = []
    run_flows(state, lambda text, books: steps.append((text, books)))

    assert len(steps) == 7
    for text, books in steps:
        assert books.balanced, (text, books)
        assert books.supply > 0
    # Only A asked for issuance (5,000.00), and B redeemed the 100.00 Bob unloaded.
    assert steps[0][1].supply == 5_000_00
    assert steps[-1][1].supply == 4_900_00

    with Wallet.open(state.directory / "wallets" / "alice", state.wallet_password) as alice:
        alice.sync()
        assert alice.balance("CNY") == {"CNY": 500_00 - 120_00 - 50_00 + 8_00}
    with Wallet.open(state.directory / "wallets" / "bob", state.wallet_password) as bob:
        bob.sync()
        assert bob.balance("CNY") == {"CNY": 120_00 - 100_00 + 42_00 + 25_00}
        bob_key = bob.identity_key
    with OperatorClient(state.url("b"), key=bob_key) as bob_at_b:
        assert int(bob_at_b.me()["deposit"]) == 100_00
    with OperatorClient(state.url("a"), token=state.customers["carol"]["token"]) as carol:
        assert int(carol.me()["deposit"]) == 100_00

    identity_b = read_key(state.directory / "operator-b" / "keys" / "identity.key")
    with IssuerClient(state.url("issuer"), key=identity_b) as issuer_as_b:
        account_b = issuer_as_b.account()
    assert account_b.redeemed == 100_00
    assert account_b.issued == 0
    with IssuerClient(state.url("issuer")) as public:
        audit = public.audit()
    assert audit.balanced
    assert audit.ledger.outstanding == audit.reserves.frozen == 4_900_00


def _demo_command(directory: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tally.cli", "demo", str(directory), *extra]


def test_make_run_starts_the_network_stops_on_ctrl_c_and_resumes(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    ports = {name: free_port() for name in ("node", "issuer", "a", "b")}
    prepare(directory, ports=ports)  # on free ports; `tally demo` then runs it as `make run` does
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _demo_command(directory), stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 240
        while "Ctrl-C stops everything" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        first = log.read_text()
        assert first.count("✓") == 4 + 7, first  # four processes up, seven balanced steps
        assert "✗" not in first
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    stopped = log.read_text()
    for name in ("node", "issuer", "operator-a", "operator-b"):
        assert f"{name} (0)" in stopped, stopped

    again = subprocess.run(
        _demo_command(directory, "--exit-after-flows"),
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed the network" in again.stdout
    assert "running the demo flows" not in again.stdout
    state = DemoState.load(directory)
    assert state is not None
    assert state.flows_done
    with Wallet.open(directory / "wallets" / "alice", state.wallet_password) as alice:
        assert alice.balance("CNY") == {"CNY": 338_00}
