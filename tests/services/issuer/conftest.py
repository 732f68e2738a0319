"""Fixtures of the issuer tests: per database kind, a node and an issuer for the package."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.node.harness import ServiceProcess, free_port, make_node_dir
from tests.rules.helpers import make_genesis
from tests.services.harness import start_issuer
from tests.services.issuer.helpers import IssuerEnv


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def issuer_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IssuerEnv]:
    """A fresh ledger node and an issuer over a fresh database of each kind.

    Shared by every issuer test of that kind (pytest runs all tests of one kind, then the
    other): each test registers its own operators, and the books balance after each one.
    """
    root = tmp_path_factory.mktemp(f"issuer-{request.param}")
    node_port = free_port()
    (root / "net").mkdir()
    node = ServiceProcess(make_node_dir(root / "net", make_genesis(), node_port), node_port)
    node.start()
    database = None  # SQLite: the default file in the issuer's directory
    if request.param == "postgresql":
        cluster = request.getfixturevalue("postgres")
        database = cluster.new_database(f"issuer_{uuid.uuid4().hex[:16]}")
    try:
        issuer, token = start_issuer(root / "issuer", node.url, database)
        try:
            yield IssuerEnv(node, request.param, issuer, root / "issuer", token)
        finally:
            issuer.stop()
    finally:
        node.stop()
