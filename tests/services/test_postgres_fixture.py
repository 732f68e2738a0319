"""The throwaway PostgreSQL cluster the service tests run against: databases, isolation, cleanup."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from tests.services import postgres
from tests.services.postgres import ENV_URL, PostgresCluster, database_name

BIG = 2**62 + 12_345  # past any 32-bit or float-exact range, still inside BIGINT
MAX_BIGINT = 2**63 - 1

metadata = sqlalchemy.MetaData()
accounts = sqlalchemy.Table(
    "accounts",
    metadata,
    sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
    sqlalchemy.Column("owner", sqlalchemy.String(40), nullable=False),
    sqlalchemy.Column("amount", sqlalchemy.BigInteger, nullable=False),
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    started = time.monotonic()
    pg = PostgresCluster()
    pg.start()
    print(f"postgres started in {time.monotonic() - started:.2f} s at {pg.url}")
    yield pg
    pg.stop()


def write_and_read(url: str, owner: str, amount: int) -> list[tuple[str, int]]:
    engine = sqlalchemy.create_engine(url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(accounts.insert().values(owner=owner, amount=amount))
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.select(accounts.c.owner, accounts.c.amount)).all()
        return [(row.owner, row.amount) for row in rows]
    finally:
        engine.dispose()


def read_rows(url: str) -> list[tuple[str, int]]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.select(accounts.c.owner, accounts.c.amount)).all()
        return [(row.owner, row.amount) for row in rows]
    finally:
        engine.dispose()


def table_names(url: str) -> list[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        return sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def database_exists(admin_url: str, name: str) -> bool:
    engine = sqlalchemy.create_engine(admin_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": name},
            ).first()
        return found is not None
    finally:
        engine.dispose()


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie left for a non-reaping init counts as gone)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        return state != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_databases_hold_big_amounts_and_are_isolated(cluster: PostgresCluster) -> None:
    first = cluster.new_database("fixture_first")
    second = cluster.new_database("fixture_second")
    assert first != second
    assert make_url(first).get_backend_name() == "postgresql"
    assert make_url(first).get_driver_name() == "psycopg"

    assert write_and_read(first, "alice", BIG) == [("alice", BIG)]
    assert write_and_read(second, "bob", MAX_BIGINT) == [("bob", MAX_BIGINT)]

    assert read_rows(first) == [("alice", BIG)]
    assert read_rows(second) == [("bob", MAX_BIGINT)]
    assert "accounts" not in table_names(cluster.url)


def test_bigint_rejects_overflow_instead_of_wrapping(cluster: PostgresCluster) -> None:
    url = cluster.new_database("fixture_overflow")
    write_and_read(url, "carol", 1)
    engine = sqlalchemy.create_engine(url)
    try:
        with pytest.raises(sqlalchemy.exc.DataError), engine.begin() as conn:
            conn.execute(accounts.insert().values(owner="mallory", amount=MAX_BIGINT + 1))
    finally:
        engine.dispose()
    assert read_rows(url) == [("carol", 1)]


def test_new_database_with_the_same_name_starts_empty(cluster: PostgresCluster) -> None:
    url = cluster.new_database("fixture_again")
    write_and_read(url, "dave", 7)
    assert table_names(url) == ["accounts"]
    assert cluster.new_database("fixture_again") == url
    assert table_names(url) == []


def test_new_database_from_many_threads(cluster: PostgresCluster) -> None:
    names = [f"fixture_thread_{i}" for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        urls = list(pool.map(cluster.new_database, names))
    assert len(set(urls)) == len(names)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(write_and_read, urls, names, range(len(names))))
    assert results == [[(name, i)] for i, name in enumerate(names)]


@pytest.mark.parametrize("name", ["", "Upper", "1digit", "semi;colon", 'quo"te', "x" * 49])
def test_new_database_rejects_unsafe_names(cluster: PostgresCluster, name: str) -> None:
    with pytest.raises(ValueError, match="database name"):
        cluster.new_database(name)


def test_database_name_makes_valid_distinct_names(cluster: PostgresCluster) -> None:
    ids = [
        "tests/services/test_x.py::test_load[postgresql]",
        "tests/services/test_x.py::test_load[sqlite]",
        "tests/services/test_x.py::test_LOAD[postgresql]",
        "!!!",
        "a" * 200,
    ]
    names = [database_name(text) for text in ids]
    assert len(set(names)) == len(ids)
    assert database_name(ids[0]) == names[0]
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        urls = list(pool.map(cluster.new_database, names))
    assert [make_url(url).database for url in urls] == names


def test_start_and_stop_are_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)
    pg = PostgresCluster()
    started = time.monotonic()
    pg.start()
    elapsed = time.monotonic() - started
    root, port = pg.root, pg.port
    assert root is not None
    data = root / "data"
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        assert elapsed < 30, f"start took {elapsed:.1f} s"
        assert process_alive(pid)
        expected_owner = "postgres" if os.geteuid() == 0 else None
        if expected_owner is not None:
            assert data.owner() == expected_owner
        else:
            assert data.stat().st_uid == os.geteuid()
        assert write_and_read(pg.new_database("lifecycle"), "erin", BIG) == [("erin", BIG)]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        pg.stop()

    assert not root.exists()
    assert pg.root is None
    assert not process_alive(pid)
    with socket.socket() as client:
        client.settimeout(5)
        with pytest.raises(ConnectionRefusedError):
            client.connect(("127.0.0.1", port))
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
    pg.stop()  # a second stop is harmless


def test_start_without_binaries_fails_and_names_the_installer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)
    monkeypatch.setattr(postgres, "find_bin_dir", lambda: None)
    pg = PostgresCluster()
    with pytest.raises(RuntimeError, match=r"scripts/install-postgres\.sh"):
        pg.start()
    assert pg.root is None


def test_bin_dir_holds_the_server_binaries() -> None:
    bin_dir = postgres.find_bin_dir()
    assert bin_dir is not None, "run `sh scripts/install-postgres.sh`"
    for program in ("initdb", "pg_ctl", "postgres"):
        assert os.access(bin_dir / program, os.X_OK), program


def test_external_server_gets_prefixed_databases_dropped_at_stop(
    cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_URL, cluster.url.replace("postgresql+psycopg://", "postgresql://"))
    external = PostgresCluster()
    external.start()
    try:
        assert external.root is None
        assert make_url(external.url).get_driver_name() == "psycopg"
        url = external.new_database("shared")
        name = make_url(url).database
        assert name is not None
        assert name.startswith("tally_")
        assert name.endswith("_shared")
        assert write_and_read(url, "frank", BIG) == [("frank", BIG)]
        assert database_exists(cluster.url, name)
    finally:
        external.stop()
    assert not database_exists(cluster.url, name)


def test_new_database_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="before start"):
        PostgresCluster(external_url="postgresql://nobody@127.0.0.1:1/x").new_database("db")


def test_failed_start_shows_the_log_and_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(postgres, "_free_port", lambda: port)
        pg = PostgresCluster(start_timeout=20)
        with pytest.raises(RuntimeError, match=rf"did not start on port {port}") as failure:
            pg.start()
    message = str(failure.value)
    assert "postgres.log" in message
    assert "could not" in message
    assert pg.root is None
