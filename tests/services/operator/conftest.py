"""Fixtures of the operator tests: per module a node and an issuer; per test an operator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.node.harness import ServiceProcess
from tests.services.harness import start_issuer
from tests.services.operator.harness import Network


@pytest.fixture(scope="module")
def network(
    node_process: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Network]:
    """The module's node and an issuer over it (SQLite), holding the genesis CNY issuer key."""
    root = tmp_path_factory.mktemp("operator-net")
    issuer, token = start_issuer(root / "issuer", node_process.url)
    try:
        yield Network(node_process, issuer, token, root)
    finally:
        issuer.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Like `db_url`, for an operator that the tests of one module share: a fresh, empty
    database of each kind, made once per module."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('operator-db') / 'operator.sqlite'}"
    cluster = request.getfixturevalue("postgres")
    return str(cluster.new_database(f"op_{uuid.uuid4().hex[:16]}"))
