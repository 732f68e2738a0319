"""Fixtures that run the store tests against every backend: LMDB and the in-memory twin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tally.store import KeyValueStore, LmdbStore, MemoryStore

# Small enough that many test stores fit in any address space, large enough for the tests;
# growth from a small map has tests of its own.
TEST_MAP_SIZE = 64 * 2**20


class Backend:
    """Opens stores of one kind; `reopen` closes a store and opens the same data again."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.opened: list[KeyValueStore] = []
        self._fresh = 0

    def open(self) -> KeyValueStore:
        """Open the backend's one store (for LMDB, the same directory every time)."""
        return self._open(self.path / "db")

    def fresh(self) -> KeyValueStore:
        """Open a new, empty store (for tests that run many examples in one call)."""
        self._fresh += 1
        return self._open(self.path / f"fresh-{self._fresh}")

    def _open(self, directory: Path) -> KeyValueStore:
        store: KeyValueStore
        if self.name == "lmdb":
            store = LmdbStore(directory, map_size=TEST_MAP_SIZE)
        else:
            store = MemoryStore()
        self.opened.append(store)
        return store

    def reopen(self, store: KeyValueStore) -> KeyValueStore:
        if self.name == "memory":
            return store  # its data lives as long as the object: nothing to reopen
        store.close()
        return self.open()

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture(params=["memory", "lmdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    backend = Backend(request.param, tmp_path)
    yield backend
    backend.close_all()


@pytest.fixture
def kv(backend: Backend) -> KeyValueStore:
    return backend.open()
