"""A throwaway PostgreSQL cluster for the service tests: start, one database per test, stop.

`PostgresCluster().start()` runs `initdb` into a fresh temporary directory and starts a
server there that listens only on 127.0.0.1 (a free port) and on a unix socket inside the
same directory, with durability switched off (`fsync`, `synchronous_commit`,
`full_page_writes`): nothing in it has to survive. `stop()` shuts it down and removes the
directory. PostgreSQL refuses to run as root, so under root the server runs as the
`postgres` system user (Debian's package creates it) and the directory is handed to it.

With `TALLY_TEST_POSTGRES_URL` set (any SQLAlchemy PostgreSQL URL whose user may create
databases) no server is started: databases are made on that server, under a prefix unique
to the run, and dropped again by `stop()`.

The binaries come from PATH or, where Debian puts them, /usr/lib/postgresql/<version>/bin
(the newest version). When they are missing `start()` fails and names the script that
installs them: the tests fail rather than skip.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

__all__ = [
    "ENV_URL",
    "PostgresCluster",
    "database_name",
    "find_bin_dir",
]

ENV_URL = "TALLY_TEST_POSTGRES_URL"
"""Environment variable naming an existing server to use instead of a throwaway cluster."""

_INSTALL_HINT = "run `sh scripts/install-postgres.sh` (Debian's postgresql package)"
_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_DEBIAN_BIN_GLOB = f"{_DEBIAN_ROOT}/*/bin"
_USER = "tally"
_DEFAULT_DATABASE = "tally_test"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")
_START_ATTEMPTS = 3
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
}


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/<version>/bin: the version as numbers."""
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


def find_bin_dir() -> Path | None:
    """The directory holding `initdb` and `pg_ctl`, or None where they are not installed.

    PATH is searched first (a symlink is followed, so that `pg_ctl` finds the `postgres`
    binary beside it), then /usr/lib/postgresql/<version>/bin, newest version first.
    """
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is not None and pg_ctl is not None:
        directory = Path(os.path.realpath(initdb)).parent
        if (directory / "pg_ctl").is_file():
            return directory
    candidates = [
        path
        for path in _DEBIAN_ROOT.glob("*/bin")
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file()
    ]
    if not candidates:
        return None
    return max(candidates, key=_version_key)


def database_name(text: str) -> str:
    """A valid, distinct database name for any text, e.g. a pytest node id.

    Lower-cases the text, turns every other character into `_`, keeps it short and
    appends a hash of the original text, so different texts give different names.
    """
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    stem = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:34]
    return f"t_{stem}_{digest}" if stem else f"t_{digest}"


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """A PostgreSQL server for one test session, and fresh databases on it.

    Attributes:
        url: SQLAlchemy URL (`postgresql+psycopg://`) of the `tally_test` database on a
            throwaway cluster, or `TALLY_TEST_POSTGRES_URL` itself; set by `start()`.
        port: the TCP port of the throwaway cluster (0 before `start()` or when external).
        root: temporary directory holding the data directory, socket and log.
        log_path: the server's log file.
    """

    def __init__(self, external_url: str | None = None, start_timeout: float = 60.0) -> None:
        """Prepare a cluster; nothing runs until `start()`.

        Args:
            external_url: use this server instead of starting one; by default the value
                of `TALLY_TEST_POSTGRES_URL`, when set and not empty.
            start_timeout: seconds `pg_ctl` waits for the server to accept connections.
        """
        self.external_url = external_url or os.environ.get(ENV_URL) or None
        self.start_timeout = start_timeout
        self.url = ""
        self.port = 0
        self.root: Path | None = None
        self.log_path: Path | None = None
        self._bin_dir: Path | None = None
        self._run_as: str | None = None
        self._running = False
        self._admin: sqlalchemy.Engine | None = None
        self._prefix = ""
        self._created: list[str] = []
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the throwaway server (or connect to the external one) and make `url` usable.

        Raises:
            RuntimeError: the PostgreSQL binaries are missing, the process is root and no
                `postgres` user exists, or the server did not start (the message holds
                the end of its log).
        """
        if self._admin is not None:
            raise RuntimeError("PostgresCluster.start() called twice")
        if self.external_url is not None:
            self._start_external(self.external_url)
            return
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise RuntimeError(
                "PostgreSQL server binaries (initdb, pg_ctl) were found neither on PATH nor "
                f"in {_DEBIAN_BIN_GLOB}: {_INSTALL_HINT}, or set {ENV_URL} to an existing "
                "server"
            )
        self._bin_dir = bin_dir
        self._run_as = self._server_user()
        self.root = Path(tempfile.mkdtemp(prefix="tally-pg-"))
        atexit.register(self.stop)
        try:
            self._init_data_dir()
            self._start_server()
            self._admin = self._admin_engine(self._local_url("postgres"))
            with self._admin.connect() as conn:
                conn.execute(sqlalchemy.text(f'CREATE DATABASE "{_DEFAULT_DATABASE}"'))
        except BaseException:
            self.stop()
            raise
        self.url = self._local_url(_DEFAULT_DATABASE)

    def stop(self) -> None:
        """Stop the server and remove its directory; on an external server, drop the
        databases this object made. Safe to call more than once, and after a failed start.
        """
        atexit.unregister(self.stop)
        admin, self._admin = self._admin, None
        try:
            if admin is not None and self.external_url is not None:
                with admin.connect() as conn:
                    for name in self._created:
                        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" (FORCE)'))
                self._created.clear()
        finally:
            if admin is not None:
                admin.dispose()
            if self._running:
                self._stop_server()
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- databases -------------------------------------------------------------------

    def new_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL.

        A database of that name made earlier in this run is dropped first, so the result
        is always empty. Safe to call from several threads with different names.

        Args:
            name: 1 to 48 characters of `a-z`, `0-9` and `_`, not starting with a digit;
                `database_name()` makes one from any text. On an external server the
                database gets a prefix unique to this run.

        Raises:
            ValueError: `name` is not such a name.
            RuntimeError: `start()` has not been called.
        """
        if not _NAME.fullmatch(name):
            raise ValueError(f"database name {name!r} must match {_NAME.pattern}")
        admin = self._admin
        if admin is None:
            raise RuntimeError("PostgresCluster.new_database() called before start()")
        full_name = self._prefix + name
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{full_name}" (FORCE)'))
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{full_name}" TEMPLATE template0'))
        with self._lock:
            if full_name not in self._created:
                self._created.append(full_name)
        return self._url_for(full_name)

    # -- internals -------------------------------------------------------------------

    def _start_external(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() != "postgresql":
            raise RuntimeError(f"{ENV_URL} must be a postgresql URL, not {parsed.drivername}")
        self.url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        self._prefix = f"tally_{secrets.token_hex(4)}_"
        self._admin = self._admin_engine(self.url)
        with self._admin.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))

    def _url_for(self, database: str) -> str:
        if self.external_url is None:
            return self._local_url(database)
        return make_url(self.url).set(database=database).render_as_string(hide_password=False)

    def _local_url(self, database: str) -> str:
        return f"postgresql+psycopg://{_USER}@127.0.0.1:{self.port}/{database}"

    @staticmethod
    def _admin_engine(url: str) -> sqlalchemy.Engine:
        """Autocommit (CREATE DATABASE needs it), one connection per use."""
        return sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)

    @staticmethod
    def _server_user() -> str | None:
        """None to run the server as ourselves; `postgres` when we are root."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "PostgreSQL refuses to run as root and there is no `postgres` user to run it "
                f"as: {_INSTALL_HINT} (it creates that user), or run the tests as another user"
            ) from None
        return "postgres"

    def _command(self, program: str, *args: str) -> list[str]:
        assert self._bin_dir is not None
        command = [str(self._bin_dir / program), *args]
        if self._run_as is None:
            return command
        if shutil.which("runuser") is not None:
            return ["runuser", "-u", self._run_as, "--", *command]
        return ["su", self._run_as, "-s", "/bin/sh", "-c", shlex.join(command)]

    def _run(self, program: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        assert self.root is not None
        return subprocess.run(
            self._command(program, *args),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )

    def _init_data_dir(self) -> None:
        assert self.root is not None
        if self._run_as is not None:
            shutil.chown(self.root, user=self._run_as, group=None)
        data = self.root / "data"
        done = self._run(
            "initdb",
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            _USER,
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        settings = {**_SETTINGS, "unix_socket_directories": f"'{self.root}'"}
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tally throwaway test cluster\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _start_server(self) -> None:
        """`pg_ctl -w start` on a free port; tries again if another process took the port."""
        assert self.root is not None
        data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = _free_port()
            started = time.monotonic()
            done = self._run(
                "pg_ctl",
                "start",
                "-w",
                "-t",
                str(int(self.start_timeout)),
                "-D",
                str(data),
                "-l",
                str(self.log_path),
                "-o",
                f"-p {self.port}",
                timeout=self.start_timeout + 30,
            )
            if done.returncode == 0:
                self._running = True
                return
            log = self._log_tail()
            # Stopped anyway if it came up late, so that the directory can be removed.
            self._running = True
            self._stop_server()
            port_taken = "could not bind" in log or "Address already in use" in log
            if not port_taken or attempt == _START_ATTEMPTS:
                elapsed = time.monotonic() - started
                raise RuntimeError(
                    f"PostgreSQL did not start on port {self.port} within {elapsed:.1f} s "
                    f"(attempt {attempt}, pg_ctl exit {done.returncode}): "
                    f"{done.stdout}{done.stderr}\n"
                    f"server log ({self.log_path}, removed with the cluster):\n{log}"
                )

    def _stop_server(self) -> None:
        assert self.root is not None
        data = str(self.root / "data")
        done = self._run("pg_ctl", "stop", "-w", "-t", "30", "-m", "fast", "-D", data, timeout=60)
        if done.returncode != 0 and (self.root / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-w", "-t", "30", "-m", "immediate", "-D", data, timeout=60)
        self._running = False

    def _log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log written)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
