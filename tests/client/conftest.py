"""The in-process node of the node tests (memory store, solo orderer, Starlette test client)."""

from tests.node.conftest import api, node  # noqa: F401 - fixtures shared with tests/node
