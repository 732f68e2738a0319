"""What only the LMDB backend promises: durability, a growing map, concurrent readers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import tally
from tally.store import DEFAULT_MAP_SIZE, LmdbStore, StoreFullError
from tally.store import lmdb_store as lmdb_store_module


def test_default_map_is_large_but_file_stays_small(tmp_path):
    kv = LmdbStore(tmp_path / "db")
    try:
        with kv.atomic() as batch:
            batch.put(b"k", b"v")
        if sys.maxsize > 2**32:
            assert kv.map_size() == DEFAULT_MAP_SIZE == 64 * 2**30
        # The reservation is address space; the file holds only what was written.
        assert (tmp_path / "db" / "data.mdb").stat().st_size < 2**20
    finally:
        kv.close()


def test_map_grows_when_one_batch_outgrows_it(tmp_path):
    kv = LmdbStore(tmp_path / "db", map_size=256 * 1024)
    start = kv.map_size()
    value = bytes(range(256)) * 40  # 10 KiB
    with kv.atomic() as batch:
        for i in range(400):  # about 4 MiB, far past the map
            batch.put(i.to_bytes(4, "big"), value)
        # Reads after the regrowth still see every write of the batch.
        assert batch.get((0).to_bytes(4, "big")) == value
        assert sum(1 for _ in batch.iter_prefix(b"")) == 400
    assert kv.map_size() > start
    kv.close()
    kv = LmdbStore(tmp_path / "db", map_size=256 * 1024)
    try:
        assert [int.from_bytes(k, "big") for k, _ in kv.iter_prefix(b"")] == list(range(400))
        assert all(v == value for _, v in kv.iter_prefix(b""))
    finally:
        kv.close()


def test_map_grows_across_many_batches(tmp_path):
    kv = LmdbStore(tmp_path / "db", map_size=128 * 1024)
    try:
        for i in range(64):
            with kv.atomic() as batch:
                batch.put(i.to_bytes(4, "big"), bytes(16 * 1024))
        assert sum(1 for _ in kv.iter_prefix(b"")) == 64
    finally:
        kv.close()


def test_growth_gives_up_while_a_reader_stays_open_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(lmdb_store_module, "_READER_DRAIN_TIMEOUT_S", 0.2)
    kv = LmdbStore(tmp_path / "db", map_size=128 * 1024)
    try:
        with kv.atomic() as batch:
            batch.put(b"first", b"v")
        with kv.snapshot() as view:  # holds a read transaction open
            assert view.get(b"first") == b"v"
            with pytest.raises(StoreFullError):
                _fill(kv, 2 * 2**20)
        assert list(kv.iter_prefix(b"")) == [(b"first", b"v")]
        _fill(kv, 2 * 2**20)  # with the reader gone the map grows
        assert kv.get(b"first") == b"v"
    finally:
        kv.close()


def _fill(kv: LmdbStore, size: int) -> None:
    with kv.atomic() as batch:
        for i in range(size // 8192):
            batch.put(b"fill" + i.to_bytes(4, "big"), bytes(8192))


def test_readers_on_other_threads_always_see_whole_batches(tmp_path):
    kv = LmdbStore(tmp_path / "db", map_size=64 * 2**20)
    stop = threading.Event()
    errors: list[str] = []

    def read() -> None:
        while not stop.is_set():
            with kv.snapshot() as view:
                a, b = view.get(b"a"), view.get(b"b")
            if a != b:
                errors.append(f"snapshot saw a={a!r} b={b!r}")
            pairs = dict(kv.iter_prefix(b""))
            if pairs.get(b"a") != pairs.get(b"b"):
                errors.append(f"iterator saw {pairs}")

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        for i in range(200):
            with kv.atomic() as batch:
                batch.put(b"a", str(i).encode())
                batch.put(b"b", str(i).encode())
    finally:
        stop.set()
        for thread in readers:
            thread.join()
        kv.close()
    assert errors == []


_WRITER = textwrap.dedent(
    """
    import sys
    from tally.store import LmdbStore

    kv = LmdbStore(sys.argv[1], map_size=64 * 2**20)
    i = 0
    while True:
        with kv.atomic() as batch:
            batch.put(b"n" + i.to_bytes(8, "big"), b"first half")
            batch.put(b"m" + i.to_bytes(8, "big"), b"second half")
        print(i, flush=True)  # the acknowledgement: sent only after the commit returned
        i += 1
    """
)


def test_acknowledged_batches_survive_kill_9(tmp_path):
    src = str(Path(tally.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": src}
    process = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path / "db")],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert process.stdout is not None
    acknowledged = -1
    try:
        for line in process.stdout:
            acknowledged = int(line)
            if acknowledged >= 30:
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    assert acknowledged >= 30
    kv = LmdbStore(tmp_path / "db", map_size=64 * 2**20)
    try:
        first = [int.from_bytes(k[1:], "big") for k, _ in kv.iter_prefix(b"n")]
        second = [int.from_bytes(k[1:], "big") for k, _ in kv.iter_prefix(b"m")]
        # Every acknowledged batch is there, and every batch is there whole.
        assert first[: acknowledged + 1] == list(range(acknowledged + 1))
        assert first == second
    finally:
        kv.close()
