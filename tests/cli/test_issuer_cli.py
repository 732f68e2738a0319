"""`tally issuer` against real processes: a node made by `tally init`, an issuer, an operator.

The module's stack (`stack`, shared with the operator and banking CLI tests, which import
it) is built through the command line itself: `issuer init` and `operator init` over the
network directory, then the services run as processes, `issuer add-operator --operator-dir`
registers the operator, `issuer fund` credits its reserve, and `operator rebalance` has the
issuer issue the float. Commands run in-process through typer's runner on an app that
registers the sub-apps the way `tally.cli.main` does.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

import tally
from tally.cli import banking
from tally.cli import issuer as issuer_cli
from tally.cli import operator as operator_cli
from tally.cli.network import create_network
from tally.services.common.auth import hash_token
from tally.services.issuer.config import load_issuer_config
from tests.node.harness import ServiceProcess, free_port

pytestmark = pytest.mark.network

ISSUER_MODULE = "tally.services.issuer"
OPERATOR_MODULE = "tally.services.operator"
RESERVE = "1000000.00"
SRC = str(Path(tally.__file__).resolve().parents[1])
ENVIRONMENT = (
    "TALLY_NETWORK",
    "TALLY_WALLET",
    "TALLY_WALLET_PASSWORD",
    "TALLY_NODE",
    "TALLY_ISSUER_URL",
    "TALLY_ISSUER_ADMIN_TOKEN",
    "TALLY_OPERATOR_URL",
    "TALLY_OPERATOR_ADMIN_TOKEN",
)

# The registrations `tally.cli.main` makes (the wallet group gets the banking commands).
root = typer.Typer(name="tally")
root.add_typer(issuer_cli.app)
root.add_typer(operator_cli.app)
wallet_group = typer.Typer(name="wallet")
banking.register_commands(wallet_group)
root.add_typer(wallet_group)


def tally_cli(runner: CliRunner, *args: str, code: int = 0) -> Result:
    result = runner.invoke(root, list(args))
    assert result.exit_code == code, (args, result.output, result.exception)
    return result


def error_line(result: Result) -> str:
    """The one `error: ...` line a failing command printed."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


@dataclass
class Stack:
    """A node, an issuer and an operator on loopback, set up through the command line."""

    root: Path
    network: Path
    node: ServiceProcess
    issuer: ServiceProcess
    operator: ServiceProcess
    issuer_dir: Path
    operator_dir: Path
    issuer_init: dict[str, Any]
    operator_init: dict[str, Any]
    registered: dict[str, Any]
    funded: dict[str, Any]
    rebalanced: dict[str, Any]
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, code: int = 0) -> Result:
        return tally_cli(self.runner, *args, code=code)

    def json(self, *args: str) -> Any:  # Any: the command's JSON document
        return json.loads(self(*args, "--json").stdout)

    def fails(self, *args: str) -> str:
        return error_line(self.runner.invoke(root, list(args)))

    def issuer_admin(self, *args: str) -> Any:  # Any: JSON
        return self.json("issuer", *args, "--dir", str(self.issuer_dir))

    def operator_admin(self, *args: str) -> Any:  # Any: JSON
        return self.json("operator", *args, "--dir", str(self.operator_dir))

    @property
    def operator_id(self) -> int:
        return int(self.registered["id"])

    def audit(self) -> Any:  # Any: JSON
        return self.json("issuer", "audit", "--url", self.issuer.url)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def build_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Set up a node, an issuer and an operator through the CLI; stop them after the yield."""
    base = tmp_path_factory.mktemp("services")
    runner = CliRunner()
    network = base / "net"
    node_port, issuer_port, operator_port = free_port(), free_port(), free_port()
    create_network(network, port=node_port, assets=("CNY",))
    node = ServiceProcess(network / "node0", node_port)
    issuer_dir, operator_dir = base / "issuer", base / "operator"
    issuer = ServiceProcess(issuer_dir, issuer_port, module=ISSUER_MODULE, health_path="/v1/health")
    operator = ServiceProcess(
        operator_dir, operator_port, module=OPERATOR_MODULE, health_path="/v1/health"
    )

    def run(*args: str) -> Any:  # Any: JSON
        with pytest.MonkeyPatch.context() as patch:
            for name in ENVIRONMENT:
                patch.delenv(name, raising=False)
            return json.loads(tally_cli(runner, *args, "--json").stdout)

    node.start()
    try:
        issuer_init = run(
            "issuer", "init", str(issuer_dir), "--network", str(network),
            "--port", str(issuer_port),
        )  # fmt: skip
        issuer.start()
        operator_init = run(
            "operator", "init", str(operator_dir), "--network", str(network),
            "--issuer-url", issuer.url, "--name", "bank-a", "--port", str(operator_port),
            "--float-low", "1000.00", "--float-target", "5000.00", "--float-high", "100000.00",
            "--tier", "2:800.00:300.00",
        )  # fmt: skip
        registered = run(
            "issuer", "add-operator", "--operator-dir", str(operator_dir),
            "--dir", str(issuer_dir),
        )  # fmt: skip
        funded = run(
            "issuer", "fund", str(registered["id"]), "--amount", RESERVE,
            "--dir", str(issuer_dir),
        )  # fmt: skip
        operator.start()
        rebalanced = run("operator", "rebalance", "--dir", str(operator_dir))
        yield Stack(
            base,
            network,
            node,
            issuer,
            operator,
            issuer_dir,
            operator_dir,
            issuer_init,
            operator_init,
            registered,
            funded,
            rebalanced,
            runner,
        )
    finally:
        for process in (operator, issuer, node):
            process.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from build_stack(tmp_path_factory)


def wait_balanced(stack: Stack, timeout: float = 10.0) -> Any:  # Any: the audit's JSON
    """The issuer's audit once it balances (a redemption is released a moment after its block)."""
    deadline = time.monotonic() + timeout
    while True:
        audit = stack.audit()
        if audit["balanced"] or time.monotonic() > deadline:
            return audit
        time.sleep(0.1)


# -- init and start ----------------------------------------------------------------------------


def test_init_prints_the_admin_token_once_and_keeps_it_in_a_private_file(stack):
    init = stack.issuer_init
    token_file = stack.issuer_dir / "admin.token"
    assert Path(init["admin_token_file"]) == token_file
    assert token_file.read_text().strip() == init["admin_token"]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    config = load_issuer_config(stack.issuer_dir)
    assert config.admin_token_hash == hash_token(init["admin_token"])
    assert init["admin_token"] not in (stack.issuer_dir / "issuer.toml").read_text()
    assert config.asset == init["asset"] == "CNY"
    network_toml = (stack.network / "network.toml").read_text()
    assert config.node_url == init["node_url"] == stack.node.url
    assert stack.node.url in network_toml
    assert init["url"] == stack.issuer.url
    health = httpx.get(stack.issuer.url + "/v1/health", timeout=5).json()
    assert health["issuer"] == init["issuer_key"]


def test_init_refuses_a_directory_that_holds_an_issuer(stack):
    before = (stack.issuer_dir / "issuer.toml").read_text()
    line = stack.fails("issuer", "init", str(stack.issuer_dir), "--network", str(stack.network))
    assert "already holds an issuer" in line
    assert (stack.issuer_dir / "issuer.toml").read_text() == before


def test_init_names_an_asset_the_network_has_no_issuer_key_for(stack, tmp_path):
    line = stack.fails(
        "issuer", "init", str(tmp_path / "usd"), "--network", str(stack.network),
        "--asset", "USD",
    )  # fmt: skip
    assert "no issuer key for USD" in line
    assert not (tmp_path / "usd" / "issuer.toml").exists()


def test_start_runs_the_issuer_in_the_foreground_until_sigterm(stack, tmp_path):
    port = free_port()
    directory = tmp_path / "second-issuer"
    stack(
        "issuer", "init", str(directory), "--network", str(stack.network), "--port", str(port),
        "--json",
    )  # fmt: skip
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": SRC + (os.pathsep + path if path else "")}
    log = tmp_path / "start.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from tally.cli.issuer import app; app()",
                "start",
                str(directory),
                "--log-level",
                "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert health["ok"] is True
        assert health["asset"] == "CNY"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    assert code == 0, log.read_text()


def test_start_of_a_directory_without_an_issuer_is_one_clear_error(stack, tmp_path):
    line = stack.fails("issuer", "start", str(tmp_path))
    assert "issuer.toml" in line
    assert "tally issuer init" in line


# -- admin -------------------------------------------------------------------------------------


def test_add_operator_reads_both_keys_from_the_operator_directory(stack):
    registered = stack.registered
    assert registered["name"] == "bank-a"
    assert registered["key"] == stack.operator_init["identity_key"]
    assert registered["float_key"] == stack.operator_init["float_key"]
    assert registered["available"] == 0
    assert registered["available_formatted"] == "0.00"


def test_fund_credits_the_reserve_once_per_idempotency_key(stack):
    funded = stack.funded
    assert funded["amount"] == 100_000_000
    assert funded["amount_formatted"] == RESERVE
    assert funded["idempotency_key"].startswith("fund-")
    assert funded["operator_id"] == stack.operator_id

    def reserve() -> int:
        accounts = {a["id"]: a for a in stack.issuer_admin("operators")["operators"]}
        account = accounts[stack.operator_id]
        return int(account["available"]) + int(account["frozen"])

    before = reserve()
    first = stack.issuer_admin(
        "fund", str(stack.operator_id), "--amount", "10.00", "--idempotency-key", "top-up-7"
    )
    again = stack.issuer_admin(
        "fund", str(stack.operator_id), "--amount", "10.00", "--idempotency-key", "top-up-7"
    )
    assert first["deposit_id"] == again["deposit_id"]
    assert reserve() == before + 1000

    line = stack.fails(
        "issuer", "fund", str(stack.operator_id), "--amount", "11.00",
        "--idempotency-key", "top-up-7", "--dir", str(stack.issuer_dir),
    )  # fmt: skip
    assert "idempotency.conflict" in line
    assert "HTTP 409" in line
    assert reserve() == before + 1000


def test_readable_output_shows_the_operators_and_the_audit(stack):
    listing = stack("issuer", "operators", "--dir", str(stack.issuer_dir)).stdout
    assert "bank-a" in listing
    audit = stack("issuer", "audit", "--url", stack.issuer.url).stdout
    assert "balanced" in audit
    assert "yes" in audit
    assert "bank-a" in audit


def test_audit_shows_supply_equal_to_frozen_reserves_per_operator(stack):
    audit = wait_balanced(stack)
    assert audit["balanced"] is True
    assert audit["asset"] == "CNY"
    assert audit["ledger"]["outstanding"] == audit["reserves"]["frozen"]
    assert audit["ledger"]["outstanding"] >= 500_000  # the float the rebalance issued
    ours = next(o for o in audit["operators"] if o["id"] == stack.operator_id)
    assert ours["frozen"] >= 500_000
    assert ours["frozen_formatted"] == f"{ours['frozen'] // 100}.{ours['frozen'] % 100:02d}"
    assert audit["certificates"]


def test_certificate_shows_the_freeze_behind_an_issuance(stack):
    entry = stack.audit()["certificates"][0]
    view = stack.json("issuer", "certificate", entry["hash"], "--url", stack.issuer.url)
    assert view["hash"] == entry["hash"]
    assert view["certificate"]["amount"] == entry["amount"]
    assert view["certificate"]["operator"] == stack.operator_init["identity_key"]
    assert view["issuer"] == stack.issuer_init["issuer_key"]
    assert view["status"] == "committed"

    line = stack.fails("issuer", "certificate", "ab" * 32, "--url", stack.issuer.url)
    assert "service.not_found" in line


# -- refusals ----------------------------------------------------------------------------------


def test_a_wrong_admin_token_is_refused_with_auth_invalid_and_changes_nothing(stack, tmp_path):
    before = stack.issuer_admin("operators")
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-token\n")
    for command in (
        ["operators"],
        ["fund", str(stack.operator_id), "--amount", "5.00"],
        ["add-operator", "--operator-dir", str(stack.operator_dir), "--name", "mallory"],
    ):
        line = stack.fails(
            "issuer", *command, "--url", stack.issuer.url, "--admin-token-file", str(wrong)
        )
        assert "auth.invalid" in line
        assert "HTTP 401" in line
    assert stack.issuer_admin("operators") == before


def test_the_admin_token_may_come_from_the_environment(stack, monkeypatch):
    monkeypatch.setenv("TALLY_ISSUER_URL", stack.issuer.url)
    monkeypatch.setenv("TALLY_ISSUER_ADMIN_TOKEN", stack.issuer_init["admin_token"])
    listing = stack.json("issuer", "operators")
    assert stack.operator_id in [o["id"] for o in listing["operators"]]
    monkeypatch.setenv("TALLY_ISSUER_ADMIN_TOKEN", "wrong")
    assert "auth.invalid" in stack.fails("issuer", "operators")


def test_an_admin_command_without_a_token_says_where_to_give_one(stack):
    line = stack.fails("issuer", "operators", "--url", stack.issuer.url)
    assert "--admin-token-file" in line
    assert "TALLY_ISSUER_ADMIN_TOKEN" in line


def test_an_unreachable_issuer_is_one_clear_line(stack):
    url = f"http://127.0.0.1:{free_port()}"
    line = stack.fails("issuer", "audit", "--url", url)
    assert "not reachable" in line
    assert url in line


def test_a_bad_amount_is_refused_before_any_call(stack):
    line = stack.fails(
        "issuer", "fund", str(stack.operator_id), "--amount", "1.005", "--dir",
        str(stack.issuer_dir),
    )  # fmt: skip
    assert "more than 2 decimal places" in line


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("init", "Create an issuer's directory"),
        ("start", "Run the issuer service in the foreground"),
        ("add-operator", "Register an operator"),
        ("fund", "Credit an operator's reserve account"),
        ("operators", "List the registered operators"),
        ("audit", "outstanding supply beside the frozen reserves"),
        ("certificate", "signed freeze certificate"),
    ],
)
def test_the_help_of_each_command_says_what_it_does(command, says):
    result = CliRunner().invoke(root, ["issuer", command, "--help"])
    assert result.exit_code == 0, result.output
    assert says in " ".join(result.output.split())
