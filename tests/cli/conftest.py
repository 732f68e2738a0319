"""Fixtures of the command tests.

`cli`: a network directory for the test genesis, with the CLI's client bound to an in-process
node. `stack`: a node, an issuer and an operator on loopback (`tests.cli.harness`), one for
the whole package. `clean_environment`: none of the `TALLY_*` variables the commands read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner, Result

from tally.cli import context
from tally.cli.main import app
from tally.client import NodeClient
from tally.node.keyfile import write_key
from tests.cli.harness import ENVIRONMENT, Stack, build_stack
from tests.node.conftest import api, node  # noqa: F401 - fixtures shared with tests/node
from tests.rules.helpers import ALICE, BOB, CHAIN_ID, CNY_ISSUER, HRP, USD_ISSUER, key


@dataclass
class Cli:
    """Runs `tally` commands in-process against the network in `root`."""

    root: Path
    runner: CliRunner

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = self.runner.invoke(app, [*args, "--network", str(self.root)])
        assert result.exit_code == code, (result.output, result.exception)
        return result

    def path(self, name: str) -> str:
        return str(self.root / name)


@pytest.fixture
def cli(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Cli:
    test_client: TestClient = request.getfixturevalue("api")
    (tmp_path / "network.toml").write_text(
        f'chain_id = "{CHAIN_ID}"\nhrp = "{HRP}"\napi = "http://testserver"\n'
        '[issuers]\nCNY = "keys/issuer-CNY.key"\nUSD = "keys/issuer-USD.key"\n'
    )
    write_key(tmp_path / "keys" / "issuer-CNY.key", key(CNY_ISSUER))
    write_key(tmp_path / "keys" / "issuer-USD.key", key(USD_ISSUER))
    write_key(tmp_path / "alice.key", key(ALICE))
    write_key(tmp_path / "bob.key", key(BOB))
    monkeypatch.setattr(context, "client_factory", lambda url: NodeClient(url, client=test_client))
    return Cli(tmp_path, CliRunner())


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the issuer, operator and banking tests: each builds on what it finds."""
    yield from build_stack(tmp_path_factory)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No `TALLY_*` variable from the caller's shell reaches the commands."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
