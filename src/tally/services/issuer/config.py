"""The issuer service's configuration: `issuer.toml` in the service's directory.

```toml
# Tally issuer service. Paths and relative SQLite files resolve against this directory.
[issuer]
name = "issuer"                       # shown in logs and in /v1/health
asset = "CNY"                         # the one asset this issuer issues
key_file = "issuer.key"               # the key registered for the asset in genesis (mode 0600)
database = "sqlite:///issuer.sqlite"  # or postgresql+psycopg://user@host/db
node_url = "http://127.0.0.1:7545"    # the ledger node the issuer submits to and follows
valid_window = 100                    # an Issue's valid_until = node tip + this (< max_window)
follow_interval_s = 0.25              # how often the follower looks for new blocks
retry_after_s = 5.0                   # a pending issuance is resubmitted after this long

[api]
host = "127.0.0.1"
port = 7600
admin_token_hash = "..."              # SHA-256 (hex) of the admin token; never the token
```

`init_issuer_dir` writes such a directory and returns the admin token, shown once.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import ArgumentError

from tally.crypto.schnorr import PrivateKey
from tally.model.types import is_valid_asset_code
from tally.node.keyfile import write_key
from tally.services.common.auth import hash_token, new_token

__all__ = [
    "CONFIG_FILE",
    "KEY_FILE",
    "DEFAULT_DATABASE",
    "DEFAULT_VALID_WINDOW",
    "IssuerConfig",
    "IssuerConfigError",
    "load_issuer_config",
    "render_issuer_config",
    "init_issuer_dir",
    "resolve_database_url",
]

CONFIG_FILE = "issuer.toml"
"""The configuration file's name inside the service directory."""
KEY_FILE = "issuer.key"
"""The issuer key's file name that `init_issuer_dir` writes."""
DEFAULT_DATABASE = "sqlite:///issuer.sqlite"
"""The database when none is configured: a SQLite file in the service directory."""
DEFAULT_VALID_WINDOW = 100
"""Blocks past the node's tip an issuance stays valid; below the network's `max_window`."""
_DEFAULT_PORT = 7600


class IssuerConfigError(Exception):
    """The configuration is missing or wrong; the message names the setting."""


@dataclass(frozen=True)
class IssuerConfig:
    """Where the issuer keeps its key and database, which node it uses, where it serves."""

    name: str
    """The issuer's name, for logs and the health answer."""
    asset: str
    """The asset code this issuer issues (its key is registered for it in genesis)."""
    key_file: Path
    """The issuer's signing key (absolute)."""
    database_url: str
    """SQLAlchemy URL of the service database; a relative SQLite path is made absolute."""
    node_url: str
    """Base URL of the ledger node's API."""
    admin_token_hash: str
    """SHA-256 hex of the admin bearer token."""
    api_host: str = "127.0.0.1"
    """Address the API listens on."""
    api_port: int = _DEFAULT_PORT
    """Port of the API."""
    valid_window: int = DEFAULT_VALID_WINDOW
    """An issuance's `valid_until` is the node's tip plus this many blocks."""
    follow_interval_s: float = 0.25
    """Seconds between the follower's looks at the node's tip."""
    retry_after_s: float = 5.0
    """Seconds after which the follower resubmits an issuance still pending."""

    @property
    def url(self) -> str:
        """The API's base URL."""
        return f"http://{self.api_host}:{self.api_port}"


def resolve_database_url(url: str, directory: Path) -> str:
    """`url` with a relative SQLite file path made absolute against `directory`.

    Raises:
        IssuerConfigError: not a database URL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise IssuerConfigError(f"database {url!r} is not a database URL") from None
    if parsed.get_backend_name() != "sqlite":
        return url
    database = parsed.database
    if not database or database == ":memory:":
        raise IssuerConfigError(f"database {url!r}: the issuer needs a SQLite file, not memory")
    path = Path(database)
    if not path.is_absolute():
        path = (directory / path).resolve()
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


def _require(table: dict[str, object], name: str, section: str, path: Path) -> object:
    if name not in table:
        raise IssuerConfigError(f"{path}: missing setting {name!r} in [{section}]")
    return table[name]


def _table(document: dict[str, object], name: str, path: Path) -> dict[str, object]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise IssuerConfigError(f"{path}: [{name}] is not a table")
    return table


def load_issuer_config(path: Path) -> IssuerConfig:
    """Read `issuer.toml` (or the directory holding it).

    Raises:
        IssuerConfigError: the file is missing, not TOML, or a setting is missing or wrong.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
    try:
        document = tomllib.loads(path.read_text())
    except OSError as exc:
        raise IssuerConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise IssuerConfigError(f"{path} is not valid TOML: {exc}") from None
    base = path.parent.resolve()
    issuer = _table(document, "issuer", path)
    api = _table(document, "api", path)
    try:
        config = IssuerConfig(
            name=str(issuer.get("name", "issuer")),
            asset=str(_require(issuer, "asset", "issuer", path)),
            key_file=(base / str(_require(issuer, "key_file", "issuer", path))).resolve(),
            database_url=resolve_database_url(str(issuer.get("database", DEFAULT_DATABASE)), base),
            node_url=str(_require(issuer, "node_url", "issuer", path)).rstrip("/"),
            admin_token_hash=str(_require(api, "admin_token_hash", "api", path)).lower(),
            api_host=str(api.get("host", "127.0.0.1")),
            api_port=int(str(api.get("port", _DEFAULT_PORT))),
            valid_window=int(str(issuer.get("valid_window", DEFAULT_VALID_WINDOW))),
            follow_interval_s=float(str(issuer.get("follow_interval_s", 0.25))),
            retry_after_s=float(str(issuer.get("retry_after_s", 5.0))),
        )
    except ValueError as exc:
        raise IssuerConfigError(f"{path}: {exc}") from None
    _check(config, path)
    return config


def _check(config: IssuerConfig, path: Path) -> None:
    if not is_valid_asset_code(config.asset):
        raise IssuerConfigError(f"{path}: asset {config.asset!r} is not an asset code like CNY")
    if len(config.admin_token_hash) != 64 or not all(
        c in "0123456789abcdef" for c in config.admin_token_hash
    ):
        raise IssuerConfigError(f"{path}: admin_token_hash is a SHA-256 in hex (64 digits)")
    if not 0 < config.api_port < 65536:
        raise IssuerConfigError(f"{path}: port {config.api_port} is not a TCP port")
    if config.valid_window < 1:
        raise IssuerConfigError(f"{path}: valid_window is at least 1, got {config.valid_window}")
    if config.follow_interval_s <= 0 or config.retry_after_s <= 0:
        raise IssuerConfigError(f"{path}: follow_interval_s and retry_after_s are positive")
    if not config.node_url.startswith(("http://", "https://")):
        raise IssuerConfigError(f"{path}: node_url {config.node_url!r} is not an http(s) URL")


def _toml_string(value: str) -> str:
    escaped = []
    for char in value:
        if char in ('"', "\\"):
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def render_issuer_config(
    *,
    name: str,
    asset: str,
    key_file: str,
    node_url: str,
    port: int,
    admin_token_hash: str,
    database: str = DEFAULT_DATABASE,
    host: str = "127.0.0.1",
    valid_window: int = DEFAULT_VALID_WINDOW,
) -> str:
    """The text of an `issuer.toml` (paths relative to the service's directory)."""
    return (
        "# Tally issuer service. Paths and relative SQLite files resolve against this directory.\n"
        "[issuer]\n"
        f"name = {_toml_string(name)}\n"
        f"asset = {_toml_string(asset)}\n"
        f"key_file = {_toml_string(key_file)}\n"
        f"database = {_toml_string(database)}\n"
        f"node_url = {_toml_string(node_url)}\n"
        f"valid_window = {valid_window}\n"
        "follow_interval_s = 0.25\n"
        "retry_after_s = 5.0\n"
        "\n[api]\n"
        f"host = {_toml_string(host)}\n"
        f"port = {port}\n"
        "# SHA-256 of the admin token: the token itself is shown once and not stored.\n"
        f"admin_token_hash = {_toml_string(admin_token_hash)}\n"
    )


def init_issuer_dir(
    directory: Path,
    *,
    asset: str,
    issuer_key: PrivateKey,
    node_url: str,
    port: int,
    database: str | None = None,
    name: str = "issuer",
) -> str:
    """Create an issuer's directory: its key file (0600) and `issuer.toml`.

    Args:
        directory: The service directory; created if missing.
        asset: The asset code the issuer issues.
        issuer_key: The key registered for `asset` in genesis.
        node_url: The ledger node's API.
        port: The port the issuer's API listens on (127.0.0.1).
        database: A database URL; a SQLite file in `directory` when None.
        name: The issuer's name.

    Returns:
        The admin token: shown this once, only its hash is stored.

    Raises:
        IssuerConfigError: the directory already holds an issuer, or an argument is wrong.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if config_path.exists() or (directory / KEY_FILE).exists():
        raise IssuerConfigError(f"{directory} already holds an issuer; use a fresh directory")
    if not is_valid_asset_code(asset):
        raise IssuerConfigError(f"asset {asset!r} is not an asset code like CNY")
    if database is not None:
        resolve_database_url(database, directory)  # refuses a malformed URL before writing
    token = new_token()
    directory.mkdir(parents=True, exist_ok=True)
    write_key(directory / KEY_FILE, issuer_key, label=f"{name} {asset} issuer")
    config_path.write_text(
        render_issuer_config(
            name=name,
            asset=asset,
            key_file=KEY_FILE,
            node_url=node_url.rstrip("/"),
            port=port,
            admin_token_hash=hash_token(token),
            database=database if database is not None else DEFAULT_DATABASE,
        )
    )
    config_path.chmod(0o600)  # a PostgreSQL URL may carry a password
    return token
