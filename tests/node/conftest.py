"""An in-process node over the in-memory store, with its solo orderer and an HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tally.consensus.solo import SoloOrderer
from tally.node.api import create_app
from tally.node.core import Node
from tally.store.ledger import LedgerStore
from tally.store.memory import MemoryStore
from tests.rules.helpers import MEMBER, key, make_genesis


@pytest.fixture
def node() -> Iterator[Node]:
    node = Node.create(LedgerStore.open(MemoryStore()), make_genesis(), key(MEMBER), "member-0")
    orderer = SoloOrderer(
        node, node.key, 0, max_txs=node.params_max_txs, interval_ms=node.params_interval_ms
    )
    orderer.start()
    yield node
    orderer.stop()
    node.stop()


@pytest.fixture
def api(node: Node) -> Iterator[TestClient]:
    with TestClient(create_app(node, verify_threads=2)) as client:
        yield client
