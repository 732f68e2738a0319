"""A node's configuration: one TOML file in the node's directory, paths relative to it.

```toml
[node]                  name, data_dir, key_file, genesis_file, verify_threads
[api]                   host, port
[mempool]               max_size
[consensus]             kind ("solo" | "pbft" | "observer"), checkpoint_interval, view_timeout_ms
[p2p]                   host, port, cert, key (the member's TLS certificate and key)
[peers.node1]           p2p = "127.0.0.1:7646", api = "http://127.0.0.1:7546"
[test]                  faults = true enables fault injection; byzantine = "equivocate" (or
                        "bad-signatures", "double-vote") makes the member misbehave (tests
                        only; never written by init)
```

Every section after `[mempool]` is optional: a file without them configures a solo node.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tally.consensus.pbft.orderer import BYZANTINE

__all__ = [
    "CONSENSUS_KINDS",
    "DEFAULT_P2P_PORT",
    "NodeConfig",
    "PeerAddress",
    "ConfigError",
    "load_config",
    "render_config",
    "parse_host_port",
]

CONSENSUS_KINDS = ("solo", "pbft", "observer")
"""`solo` orders alone; `pbft` is a consortium member; `observer` follows without voting."""
DEFAULT_P2P_PORT = 7645
"""The port consensus peers reach a node on, unless `[p2p] port` says otherwise."""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
"""A TOML key that needs no quotes."""


class ConfigError(Exception):
    """The configuration file is missing or wrong; the message says which setting."""


@dataclass(frozen=True)
class PeerAddress:
    """Where another consortium node is reached."""

    p2p: tuple[str, int]
    """Host and port of its peer transport (mutual TLS)."""
    api: str
    """Base URL of its HTTP API, for state transfer and forwarding transactions."""


@dataclass(frozen=True)
class NodeConfig:
    """Where a node keeps its data and keys, where it serves, and how it orders blocks."""

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
    consensus: str = "solo"
    """How the node orders blocks: one of `CONSENSUS_KINDS`."""
    p2p_host: str = "127.0.0.1"
    """Address the peer transport listens on."""
    p2p_port: int = DEFAULT_P2P_PORT
    """Port the peer transport listens on."""
    peers: dict[str, PeerAddress] = field(default_factory=dict)
    """The other consortium nodes by name."""
    tls_cert: Path | None = None
    """The member's TLS certificate (PEM), issued under genesis's root certificate."""
    tls_key: Path | None = None
    """The TLS certificate's private key (PEM)."""
    checkpoint_interval: int = 16
    """Blocks between PBFT checkpoints."""
    view_timeout_ms: int = 2000
    """How long a PBFT replica waits for progress before it asks for a new primary."""
    test_faults: bool = False
    """Whether the fault layer and its admin endpoint are on (`[test] faults`; tests only)."""
    test_byzantine: str | None = None
    """A misbehaviour of `tally.consensus.pbft.orderer.BYZANTINE` (`[test] byzantine`).

    Tests only, to show that the other members survive it.
    """


def parse_host_port(text: str) -> tuple[str, int]:
    """Split `HOST:PORT` (an IPv6 host in brackets: `[::1]:7645`).

    Raises:
        ValueError: not of that form, or the port is not in 1 … 65535.
    """
    host, colon, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT with a port in 1 … 65535")
    return host, int(port_text)


def _table(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _port(value: object, setting: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"{setting} must be a port in 1 … 65535, not {value!r}")
    return value


def _positive(value: object, setting: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{setting} must be a positive integer, not {value!r}")
    return value


def _peers(document: Mapping[str, Any]) -> dict[str, PeerAddress]:
    peers = {}
    for name, table in _table(document, "peers").items():
        if not isinstance(table, dict):
            raise ConfigError(f"[peers.{name}] must be a table with p2p and api")
        p2p, api = table.get("p2p"), table.get("api")
        if not isinstance(p2p, str):
            raise ConfigError(f'peers.{name}.p2p must be "HOST:PORT", not {p2p!r}')
        try:
            address = parse_host_port(p2p)
        except ValueError as exc:
            raise ConfigError(f"peers.{name}.p2p: {exc}") from None
        if not isinstance(api, str) or not api.startswith(("http://", "https://")):
            raise ConfigError(f"peers.{name}.api must be an http:// or https:// URL, not {api!r}")
        peers[str(name)] = PeerAddress(p2p=address, api=api.rstrip("/"))
    return peers


def _consensus_settings(document: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """The `NodeConfig` fields of `[consensus]`, `[p2p]`, `[peers.*]` and `[test]`."""
    consensus, p2p, test = (_table(document, name) for name in ("consensus", "p2p", "test"))
    kind = consensus.get("kind", "solo")
    if kind not in CONSENSUS_KINDS:
        raise ConfigError(f"unknown consensus kind {kind!r}: use {', '.join(CONSENSUS_KINDS)}")
    files: dict[str, Path | None] = {}
    for setting in ("cert", "key"):
        value = p2p.get(setting)
        if value is None:
            if kind == "pbft":
                raise ConfigError(
                    f"consensus kind pbft needs [p2p] {setting}: the member's TLS "
                    f"{'certificate' if setting == 'cert' else 'private key'} file"
                )
            files[setting] = None
        elif isinstance(value, str) and value:
            files[setting] = (base / value).resolve()
        else:
            raise ConfigError(f"[p2p] {setting} must be a file path, not {value!r}")
    host = p2p.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"[p2p] host must be a host name or address, not {host!r}")
    faults = test.get("faults", False)
    if not isinstance(faults, bool):
        raise ConfigError(f"[test] faults must be true or false, not {faults!r}")
    byzantine = test.get("byzantine")
    if byzantine is not None and byzantine not in BYZANTINE:
        raise ConfigError(
            f"[test] byzantine {byzantine!r} is not one of {', '.join(sorted(BYZANTINE))}"
        )
    return {
        "consensus": kind,
        "p2p_host": host,
        "p2p_port": _port(p2p.get("port", DEFAULT_P2P_PORT), "[p2p] port"),
        "peers": _peers(document),
        "tls_cert": files["cert"],
        "tls_key": files["key"],
        "checkpoint_interval": _positive(
            consensus.get("checkpoint_interval", 16), "[consensus] checkpoint_interval"
        ),
        "view_timeout_ms": _positive(
            consensus.get("view_timeout_ms", 2000), "[consensus] view_timeout_ms"
        ),
        "test_faults": faults,
        "test_byzantine": byzantine,
    }


def load_config(path: Path) -> NodeConfig:
    """Read a node's `node.toml`.

    Raises:
        ConfigError: the file is missing, not TOML, lacks a required setting, or has a
            wrong one (an unknown consensus kind, a bad `HOST:PORT`, pbft without a
            certificate, ...).
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
        consensus = _consensus_settings(document, base)
        return NodeConfig(
            name=str(node["name"]),
            data_dir=(base / node.get("data_dir", "data")).resolve(),
            key_file=(base / node["key_file"]).resolve(),
            genesis_file=(base / node["genesis_file"]).resolve(),
            api_host=str(api.get("host", "127.0.0.1")),
            api_port=int(api.get("port", 7545)),
            mempool_max=int(document.get("mempool", {}).get("max_size", 200_000)),
            verify_threads=int(node.get("verify_threads", 0)),
            **consensus,
        )
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except KeyError as exc:
        raise ConfigError(f"{path}: missing setting {exc.args[0]!r} in [node]") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def render_config(
    name: str,
    key_file: str,
    genesis_file: str,
    port: int,
    host: str = "127.0.0.1",
    *,
    consensus: str = "solo",
    p2p_port: int = DEFAULT_P2P_PORT,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    peers: Mapping[str, PeerAddress] | None = None,
    checkpoint_interval: int = 16,
    view_timeout_ms: int = 2000,
) -> str:
    """The text of a `node.toml` (paths relative to the node's directory).

    A solo node's file has no consensus sections; a consortium node's (`consensus="pbft"`)
    names its kind, its peer transport's port, certificate and key, and every peer.
    """
    text = (
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
    if consensus == "solo":
        return text
    # json.dumps writes every string as a valid TOML basic string.
    lines = [
        "",
        "[consensus]",
        f"kind = {json.dumps(consensus)}",
        f"checkpoint_interval = {checkpoint_interval}",
        f"view_timeout_ms = {view_timeout_ms}",
        "",
        "[p2p]",
        f"host = {json.dumps(host)}",
        f"port = {p2p_port}",
    ]
    if tls_cert is not None:
        lines.append(f"cert = {json.dumps(tls_cert)}")
    if tls_key is not None:
        lines.append(f"key = {json.dumps(tls_key)}")
    for peer, address in (peers or {}).items():
        peer_host, peer_port = address.p2p
        shown = f"[{peer_host}]" if ":" in peer_host else peer_host
        lines += [
            "",
            f"[peers.{peer if _BARE_KEY.fullmatch(peer) else json.dumps(peer)}]",
            f"p2p = {json.dumps(f'{shown}:{peer_port}')}",
            f"api = {json.dumps(address.api)}",
        ]
    return text + "\n".join(lines) + "\n"
