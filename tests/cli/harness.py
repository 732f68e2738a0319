"""What the issuer, operator, banking and wallet command tests share.

`Stack` is a node, an issuer and an operator on loopback, set up through the command line
itself: `issuer init` and `operator init` over a network directory made by `create_network`,
the services run as processes, `issuer add-operator --operator-dir` registers the operator,
`issuer fund` credits its reserve, and `operator rebalance` has the issuer issue the float.
`tests/cli/conftest.py` builds one for the whole package (`stack`), so its tests check what
they did relative to what they found, never absolute totals. Commands run in-process through
typer's runner on `tally`'s own app.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

import tally
from tally.cli.main import app
from tally.cli.network import create_network
from tests.node.harness import ServiceProcess, free_port

__all__ = [
    "ENVIRONMENT",
    "RESERVE",
    "Stack",
    "build_stack",
    "error_line",
    "help_text",
    "python_env",
    "serve_in_foreground",
    "tally_cli",
    "wait_balanced",
]

ENVIRONMENT = (
    "TALLY_NETWORK",
    "TALLY_WALLET",
    "TALLY_WALLET_PASSWORD",
    "TALLY_WALLET_SCRYPT_N",
    "TALLY_NODE",
    "TALLY_ISSUER_URL",
    "TALLY_ISSUER_ADMIN_TOKEN",
    "TALLY_OPERATOR_URL",
    "TALLY_OPERATOR_ADMIN_TOKEN",
)
"""The variables the commands read: cleared for each test (`clean_environment`)."""
RESERVE = "1000000.00"
"""What `issuer fund` credits the stack's operator with."""
ISSUER_MODULE = "tally.services.issuer"
OPERATOR_MODULE = "tally.services.operator"
SRC = str(Path(tally.__file__).resolve().parents[1])


def tally_cli(runner: CliRunner, *args: str, code: int = 0, input: str | None = None) -> Result:
    """Run `tally ARGS` in-process; check its exit status."""
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == code, (args, result.output, result.exception)
    return result


def error_line(result: Result) -> str:
    """The one `error: ...` line a failing command printed."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def help_text(*command: str) -> str:
    """`tally COMMAND --help`, on one line."""
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python that imports this checkout's `tally`."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": SRC + (os.pathsep + path if path else ""), **extra}


def serve_in_foreground(
    code: str, args: Sequence[str], url: str, log: Path, timeout: float = 30.0
) -> Any:  # Any: the JSON `url` answered
    """Run `python -c CODE ARGS` until GET `url` answers, then SIGTERM it.

    Returns:
        The first answer's JSON, after checking that the process stopped with status 0.
    """
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=python_env(),
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, log.read_text()
            try:
                answer = httpx.get(url, timeout=1).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=20)
    assert status == 0, log.read_text()
    return answer


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
        return error_line(self.runner.invoke(app, list(args)))

    def issuer_admin(self, *args: str) -> Any:  # Any: JSON
        return self.json("issuer", *args, "--dir", str(self.issuer_dir))

    def operator_admin(self, *args: str) -> Any:  # Any: JSON
        return self.json("operator", *args, "--dir", str(self.operator_dir))

    @property
    def operator_id(self) -> int:
        return int(self.registered["id"])

    def audit(self) -> Any:  # Any: JSON
        return self.json("issuer", "audit", "--url", self.issuer.url)


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


def wait_balanced(stack: Stack, timeout: float = 10.0) -> Any:  # Any: the audit's JSON
    """The issuer's audit once it balances (a redemption is released a moment after its block)."""
    deadline = time.monotonic() + timeout
    while True:
        audit = stack.audit()
        if audit["balanced"] or time.monotonic() > deadline:
            return audit
        time.sleep(0.1)
