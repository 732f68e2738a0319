"""Fixtures for the service tests: databases of both kinds, and a real node on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.harness import ServiceProcess, free_port, make_node_dir
from tests.rules.helpers import make_genesis
from tests.services.postgres import PostgresCluster, database_name


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the whole session (started on first use)."""
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: every service test runs once on each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.sqlite'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database(database_name(request.node.nodeid))


@pytest.fixture(scope="module")
def node_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A real node process on loopback over the test genesis (CNY issuer: helpers.key(10))."""
    port = free_port()
    node_dir = make_node_dir(tmp_path_factory.mktemp("net"), make_genesis(), port)
    node = ServiceProcess(node_dir, port)
    node.start()
    yield node
    node.stop()
