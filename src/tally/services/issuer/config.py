"""The issuer service's configuration: `issuer.toml` in the service's directory.

```toml
# Tally issuer service. Paths and relative SQLite files resolve against this directory.
[issuer]
name = "issuer"                       # shown in logs and in /v1/health
asset = "CNY"                         # the one asset this issuer issues
key_file = "issuer.key"               # the key registered for the asset in genesis (mode 0600)
database = "sqlite:///issuer.sqlite"  # optional (this is the default), or postgresql+psycopg://...
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

from dataclasses import dataclass
from pathlib import Path

from tally.crypto.schnorr import PrivateKey
from tally.model.params import Params
from tally.node.keyfile import write_key
from tally.services.common.auth import hash_token, new_token
from tally.services.common.config import (
    ConfigFile,
    ServiceConfig,
    ServiceConfigError,
    check_asset,
    resolve_database_url,
    toml_string,
    write_config_file,
)

__all__ = [
    "CONFIG_FILE",
    "KEY_FILE",
    "DATABASE_FILE",
    "DEFAULT_VALID_WINDOW",
    "IssuerConfig",
    "IssuerConfigError",
    "load_issuer_config",
    "render_issuer_config",
    "init_issuer_dir",
]

CONFIG_FILE = "issuer.toml"
"""The configuration file's name inside the service directory."""
KEY_FILE = "issuer.key"
"""The issuer key's file name that `init_issuer_dir` writes."""
DATABASE_FILE = "issuer.sqlite"
"""The database when none is configured: this SQLite file in the service directory."""
DEFAULT_VALID_WINDOW = 100
"""Blocks past the node's tip an issuance stays valid; below the network's `max_window`."""
_DEFAULT_PORT = 7600
_MAX_WINDOW = Params().max_window


class IssuerConfigError(ServiceConfigError):
    """The configuration is missing or wrong; the message names the setting."""


@dataclass(frozen=True, kw_only=True)
class IssuerConfig(ServiceConfig):
    """Where the issuer keeps its key and database, which node it uses, where it serves."""

    api_port: int = _DEFAULT_PORT
    """Port of the API."""
    valid_window: int = DEFAULT_VALID_WINDOW
    """An issuance's `valid_until` is the node's tip plus this many blocks."""
    follow_interval_s: float = 0.25
    """Seconds between the follower's looks at the node's tip."""
    retry_after_s: float = 5.0
    """Seconds after which the follower resubmits an issuance still pending."""


def load_issuer_config(path: Path) -> IssuerConfig:
    """Read `issuer.toml` (or the directory holding it).

    Raises:
        IssuerConfigError: the file is missing, not TOML, or a setting is missing or wrong.
    """
    file = ConfigFile.read(path, CONFIG_FILE, IssuerConfigError)
    return IssuerConfig(
        **file.service_settings(
            "issuer", database_file=DATABASE_FILE, default_port=_DEFAULT_PORT, default_name="issuer"
        ),
        valid_window=file.integer(
            "issuer", "valid_window", DEFAULT_VALID_WINDOW, low=1, high=_MAX_WINDOW, unit=" blocks"
        ),
        follow_interval_s=file.seconds("issuer", "follow_interval_s", 0.25),
        retry_after_s=file.seconds("issuer", "retry_after_s", 5.0),
    )


def render_issuer_config(
    *,
    name: str,
    asset: str,
    key_file: str,
    node_url: str,
    port: int,
    admin_token_hash: str,
    database: str | None = None,
    host: str = "127.0.0.1",
    valid_window: int = DEFAULT_VALID_WINDOW,
) -> str:
    """The text of an `issuer.toml` (paths relative to the service's directory)."""
    return (
        "# Tally issuer service. Paths and relative SQLite files resolve against this directory.\n"
        "[issuer]\n"
        f"name = {toml_string(name)}\n"
        f"asset = {toml_string(asset)}\n"
        f"key_file = {toml_string(key_file)}\n"
        + (
            f"database = {toml_string(database)}\n"
            if database
            else f'# database = "postgresql+psycopg://user@host/db"  (default: {DATABASE_FILE})\n'
        )
        + f"node_url = {toml_string(node_url)}\n"
        f"valid_window = {valid_window}\n"
        "follow_interval_s = 0.25\n"
        "retry_after_s = 5.0\n"
        "\n[api]\n"
        f"host = {toml_string(host)}\n"
        f"port = {port}\n"
        "# SHA-256 of the admin token: the token itself is shown once and not stored.\n"
        f"admin_token_hash = {toml_string(admin_token_hash)}\n"
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
    """Create an issuer's directory: its key file (0600) and `issuer.toml` (0600).

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
    check_asset(asset, IssuerConfigError)
    if database is not None:
        resolve_database_url(database, directory, IssuerConfigError)  # refuse it before writing
    token = new_token()
    directory.mkdir(parents=True, exist_ok=True)
    write_key(directory / KEY_FILE, issuer_key, label=f"{name} {asset} issuer")
    write_config_file(
        config_path,
        render_issuer_config(
            name=name,
            asset=asset,
            key_file=KEY_FILE,
            node_url=node_url.rstrip("/"),
            port=port,
            admin_token_hash=hash_token(token),
            database=database,
        ),
    )
    return token
