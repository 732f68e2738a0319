"""A node's configuration: one TOML file in the node's directory, paths relative to it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NodeConfig", "ConfigError", "load_config", "render_config"]


class ConfigError(Exception):
    """The configuration file is missing or wrong; the message says which setting."""


@dataclass(frozen=True)
class NodeConfig:
    """Where a node keeps its data and keys, and where it serves its API."""

    name: str
    """The node's name, as in genesis's member list."""
    data_dir: Path
    """The LMDB directory."""
    key_file: Path
    """The node's signing key."""
    genesis_file: Path
    """The network's genesis, canonical bytes."""
    api_host: str = "127.0.0.1"
    """Address the HTTP API listens on."""
    api_port: int = 7545
    """Port of the HTTP API."""
    mempool_max: int = 200_000
    """Most transactions waiting at once; more are refused with `mempool.full`."""
    verify_threads: int = 0
    """Signature-verification threads; 0 means one per core."""


def load_config(path: Path) -> NodeConfig:
    """Read a node's `node.toml`.

    Raises:
        ConfigError: the file is missing, not TOML, or lacks a required setting.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "node.toml"
    try:
        document = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    base = path.parent
    node = document.get("node", {})
    api = document.get("api", {})
    try:
        return NodeConfig(
            name=str(node["name"]),
            data_dir=(base / node.get("data_dir", "data")).resolve(),
            key_file=(base / node["key_file"]).resolve(),
            genesis_file=(base / node["genesis_file"]).resolve(),
            api_host=str(api.get("host", "127.0.0.1")),
            api_port=int(api.get("port", 7545)),
            mempool_max=int(document.get("mempool", {}).get("max_size", 200_000)),
            verify_threads=int(node.get("verify_threads", 0)),
        )
    except KeyError as exc:
        raise ConfigError(f"{path}: missing setting {exc.args[0]!r} in [node]") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def render_config(
    name: str, key_file: str, genesis_file: str, port: int, host: str = "127.0.0.1"
) -> str:
    """The text of a `node.toml` (paths relative to the node's directory)."""
    return (
        "# Tally node configuration. Paths are relative to this file.\n"
        "[node]\n"
        f'name = "{name}"\n'
        'data_dir = "data"\n'
        f'key_file = "{key_file}"\n'
        f'genesis_file = "{genesis_file}"\n'
        "verify_threads = 0  # 0: one per core\n"
        "\n[api]\n"
        f'host = "{host}"\n'
        f"port = {port}\n"
        "\n[mempool]\n"
        "max_size = 200000\n"
    )
