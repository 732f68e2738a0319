"""What the services' configuration files share: reading TOML, paths, databases, the API.

Each service keeps one TOML file in its directory (`issuer.toml`, `operator.toml`). Paths in
it, and a relative SQLite file, resolve against that directory, so that the directory can be
moved as a whole. Every service has an `[api]` table:

    [api]
    host = "127.0.0.1"
    port = 7600
    admin_token_hash = "..."   # SHA-256 (hex) of the admin bearer token; never the token

`ConfigFile` reads one file and its settings, naming the file, the table and the setting in
every refusal; `write_config_file` writes one readable only by its owner, since a PostgreSQL
URL may carry a password.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import ArgumentError

from tally.model.types import is_valid_asset_code
from tally.services.common.db import sqlite_url

__all__ = [
    "ServiceConfigError",
    "ServiceConfig",
    "ApiSettings",
    "ConfigFile",
    "check_asset",
    "resolve_database_url",
    "toml_string",
    "write_config_file",
]

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class ServiceConfigError(Exception):
    """A service's configuration is missing or wrong; the message names the setting."""


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """What every service's configuration holds: who it is, its key, books, node and API."""

    name: str
    """The service's name, for logs and its answers."""
    asset: str
    """The asset it issues or distributes (`CNY`)."""
    key_file: Path
    """Its signing key: the issuer's key registered in genesis, an operator's identity key."""
    database_url: str
    """SQLAlchemy URL of its database; a relative SQLite path is made absolute."""
    node_url: str
    """The ledger node's API."""
    admin_token_hash: str
    """SHA-256 (hex) of the admin bearer token."""
    api_host: str = "127.0.0.1"
    """Address the API listens on."""
    api_port: int
    """Port of the API."""

    @property
    def url(self) -> str:
        """The API's base URL."""
        return f"http://{self.api_host}:{self.api_port}"


@dataclass(frozen=True)
class ApiSettings:
    """The `[api]` table: where the API listens, and the admin token's hash."""

    host: str
    port: int
    admin_token_hash: str
    """SHA-256 (lowercase hex) of the admin bearer token."""


def check_asset(asset: str, error: type[ServiceConfigError], where: str = "") -> str:
    """`asset`, after checking that it is an asset code.

    Raises:
        ServiceConfigError: (as `error`) it is not.
    """
    if not is_valid_asset_code(asset):
        raise error(f"{where}asset {asset!r} is not an asset code like CNY")
    return asset


def resolve_database_url(
    url: str, directory: Path, error: type[ServiceConfigError] = ServiceConfigError
) -> str:
    """`url` with a relative SQLite file path made absolute against `directory`.

    Raises:
        ServiceConfigError: (as `error`) not a database URL, or an in-memory SQLite one.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise error(f"database {url!r} is not a database URL") from None
    if parsed.get_backend_name() != "sqlite":
        return url
    database = parsed.database
    if not database or database == ":memory:":
        raise error(f"database {url!r}: a service keeps its books in a SQLite file, not memory")
    path = Path(database)
    if not path.is_absolute():
        path = (directory / path).resolve()
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


_REQUIRED: Any = object()  # Any: a marker that stands for any setting's default


@dataclass(frozen=True)
class ConfigFile:
    """A service's TOML file, read; its settings resolve against its directory."""

    path: Path
    document: Mapping[str, Any]  # Any: TOML values
    error: type[ServiceConfigError]
    """The service's own error class, raised for every refusal."""

    @classmethod
    def read(cls, path: Path, file_name: str, error: type[ServiceConfigError]) -> ConfigFile:
        """Read `path`, or `path / file_name` when `path` is a directory.

        Raises:
            ServiceConfigError: (as `error`) the file is missing or is not TOML.
        """
        path = Path(path)
        if path.is_dir():
            path = path / file_name
        try:
            document = tomllib.loads(path.read_text())
        except OSError as exc:
            raise error(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise error(f"{path} is not valid TOML: {exc}") from None
        return cls(path, document, error)

    @property
    def directory(self) -> Path:
        """The service directory: the file's, absolute."""
        return self.path.parent.resolve()

    def fail(self, message: str) -> NoReturn:
        """Refuse the file, saying which setting is wrong.

        Raises:
            ServiceConfigError: (as `error`) always.
        """
        raise self.error(f"{self.path}: {message}")

    def table(self, name: str) -> Mapping[str, Any]:  # Any: TOML values
        """The table `[name]`; empty when the file has none."""
        table = self.document.get(name, {})
        if not isinstance(table, Mapping):
            self.fail(f"[{name}] is not a table")
        return table

    def setting(self, section: str, name: str, default: Any = _REQUIRED) -> Any:  # Any: TOML
        """The setting `name` of `[section]`, or `default` when it is missing."""
        table = self.table(section)
        if name in table:
            return table[name]
        if default is _REQUIRED:
            self.fail(f"missing setting {name!r} in [{section}]")
        return default

    def text(self, section: str, name: str, default: str | None = None) -> str:
        """A string setting (required when `default` is None)."""
        value = self.setting(section, name, _REQUIRED if default is None else default)
        if not isinstance(value, str):
            self.fail(f"[{section}] {name} is a string, got {value!r}")
        return value

    def integer(
        self, section: str, name: str, default: int, *, low: int, high: int, unit: str = ""
    ) -> int:
        """An integer setting in `low` … `high`."""
        value = self.setting(section, name, default)
        if type(value) is not int or not low <= value <= high:
            self.fail(f"[{section}] {name} is an integer in {low} … {high}{unit}, got {value!r}")
        return value

    def seconds(self, section: str, name: str, default: float) -> float:
        """A positive number of seconds."""
        value = self.setting(section, name, default)
        if type(value) not in (int, float) or not value > 0:
            self.fail(f"[{section}] {name} is a positive number of seconds, got {value!r}")
        return float(value)

    def file(self, section: str, name: str, default: str | None = None) -> Path:
        """A file setting, resolved against the service directory."""
        return (self.directory / self.text(section, name, default)).resolve()

    def url(self, section: str, name: str) -> str:
        """An http(s) URL setting, without a trailing slash."""
        value = self.text(section, name).rstrip("/")
        if not value.startswith(("http://", "https://")):
            self.fail(f"[{section}] {name} {value!r} is not an http(s) URL")
        return value

    def asset(self, section: str) -> str:
        """The `asset` setting of `[section]`, an asset code."""
        return check_asset(self.text(section, "asset"), self.error, f"{self.path}: ")

    def database_url(self, section: str, default_file: str) -> str:
        """The `database` setting, a relative SQLite file resolved against the directory.

        When it is missing: the SQLite file `default_file` in the directory.
        """
        value = self.setting(section, "database", None)
        if value is None:
            return sqlite_url(self.directory / default_file)
        if not isinstance(value, str):
            self.fail(f"[{section}] database is a URL, got {value!r}")
        try:
            return resolve_database_url(value, self.directory, self.error)
        except ServiceConfigError as exc:
            self.fail(str(exc))

    def service_settings(
        self, section: str, *, database_file: str, default_port: int, default_name: str | None
    ) -> dict[str, Any]:  # Any: the settings of `ServiceConfig`, by field
        """The settings every service has, as `ServiceConfig`'s fields.

        They are `name`, `asset`, `key_file`, `database` and `node_url` of `[section]` (a
        missing name is `default_name`, required when None) and the `[api]` table.
        """
        api = self.api(default_port)
        return {
            "name": self.text(section, "name", default_name),
            "asset": self.asset(section),
            "key_file": self.file(section, "key_file"),
            "database_url": self.database_url(section, database_file),
            "node_url": self.url(section, "node_url"),
            "admin_token_hash": api.admin_token_hash,
            "api_host": api.host,
            "api_port": api.port,
        }

    def api(self, default_port: int) -> ApiSettings:
        """The `[api]` table."""
        token_hash = self.text("api", "admin_token_hash").lower()
        if not _SHA256_HEX.fullmatch(token_hash):
            self.fail("[api] admin_token_hash is a SHA-256 in hex (64 digits)")
        return ApiSettings(
            host=self.text("api", "host", "127.0.0.1"),
            port=self.integer("api", "port", default_port, low=1, high=65535, unit=" (a TCP port)"),
            admin_token_hash=token_hash,
        )


def toml_string(value: str) -> str:
    """`value` as a TOML basic string (quoted, with quotes, backslashes and controls escaped)."""
    escaped = []
    for char in value:
        if char in ('"', "\\"):
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def write_config_file(path: Path, text: str) -> None:
    """Create `path` with `text`, readable only by its owner; never overwrites a file.

    Raises:
        FileExistsError: `path` exists.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
