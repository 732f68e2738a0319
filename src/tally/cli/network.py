"""A network directory: what `tally init` writes and what every network command reads.

```
DIR/
  network.toml          chain id, address prefix, API URLs, key paths (relative to DIR)
  genesis.bin           the canonical genesis
  keys/admin.key        the consortium admin
  keys/issuer-CNY.key   one issuer key per asset
  keys/node0.key        the node's consensus key (Schnorr)
  node0/node.toml       the node's configuration; its data goes to node0/data
```

A consortium (`--nodes N`, N ≥ 4) has nodes node0 … node{N-1}, each with its directory and
consensus key, and besides them:

```
  keys/root.crt         the consortium root certificate (DER; genesis carries it too)
  keys/root.pem         the same in PEM, for tools such as openssl
  keys/root.key         the root's private key: keep it offline, it admits members
  keys/nodeI.crt        node I's TLS certificate, issued under the root for its consensus key
  keys/nodeI-tls.key    that certificate's private key
```

Secret key files are written with mode 0600 (by `tally.node.keyfile.write_key` for the
Schnorr keys).
"""

from __future__ import annotations

import json
import re
import shutil
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tally.crypto.schnorr import PrivateKey
from tally.model.encoding import decode, encode
from tally.model.genesis import AssetEntry, Genesis, Member
from tally.model.params import Params
from tally.model.rejection import Rejection
from tally.model.types import AssetCode, PublicKey, is_valid_asset_code
from tally.node.config import render_config
from tally.node.consortium import P2P_OFFSET, api_url, write_certificates, write_node_dirs
from tally.node.keyfile import new_key, write_key

__all__ = [
    "NETWORK_FILE",
    "DEFAULT_HRP",
    "DEFAULT_CHAIN_ID",
    "DEFAULT_PORT",
    "DEFAULT_ASSETS",
    "NODE_NAME",
    "P2P_PORT_OFFSET",
    "MIN_CONSORTIUM",
    "NetworkError",
    "Network",
    "load_network",
    "create_network",
]

NETWORK_FILE = "network.toml"
DEFAULT_HRP = "tly"
DEFAULT_CHAIN_ID = "tally-dev"
DEFAULT_PORT = 7545
DEFAULT_ASSETS = ("CNY", "USD")
NODE_NAME = "node0"
P2P_PORT_OFFSET = P2P_OFFSET
"""Node I's peer transport listens on the API base port + this + I unless told otherwise."""
MIN_CONSORTIUM = 4
"""The fewest nodes of a PBFT consortium: n = 3f + 1 tolerates f faulty nodes, f ≥ 1."""
_NODE_FILE = re.compile(r"node\d+(\.key|\.crt|-tls\.key)")
_NODE_DIR = re.compile(r"node\d+")
_CHAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class NetworkError(Exception):
    """A network directory is missing, incomplete, or cannot be created as asked."""


@dataclass(frozen=True)
class Network:
    """What a network directory's `network.toml` says, with paths made absolute."""

    root: Path
    """The network directory."""
    chain_id: str
    """The network's chain id, bound into every signature."""
    hrp: str
    """The address prefix."""
    api: str
    """The node API's base URL (node0's in a consortium)."""
    apis: tuple[str, ...] = ()
    """Every node's API base URL, node0's first; `(api,)` for a single node."""
    genesis_file: Path | None = None
    """The canonical genesis, if the directory has it."""
    admin_key: Path | None = None
    """The admin's key file, if the directory has it."""
    node_keys: dict[str, Path] = field(default_factory=dict)
    """Node key files by node name."""
    issuer_keys: dict[str, Path] = field(default_factory=dict)
    """Issuer key files by asset code."""

    def __post_init__(self) -> None:
        if not self.apis:
            object.__setattr__(self, "apis", (self.api,))

    def params(self) -> Params:
        """The network parameters of genesis (the defaults if the directory has no genesis).

        Raises:
            NetworkError: the genesis file is there but cannot be read.
        """
        if self.genesis_file is None or not self.genesis_file.exists():
            return Params()
        try:
            return decode(self.genesis_file.read_bytes(), Genesis).params
        except (OSError, Rejection) as exc:
            raise NetworkError(f"cannot read genesis {self.genesis_file}: {exc}") from None

    def issuer_key(self, asset: str) -> Path:
        """The key file of `asset`'s issuer.

        Raises:
            NetworkError: the network directory has no issuer key for `asset`.
        """
        path = self.issuer_keys.get(asset)
        if path is None:
            known = ", ".join(sorted(self.issuer_keys)) or "none"
            raise NetworkError(
                f"{self.root / NETWORK_FILE} has no issuer key for {asset} (it has: {known}); "
                "pass --key FILE"
            )
        return path


def _string(document: dict[str, object], name: str, path: Path) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise NetworkError(f"{path}: setting {name!r} is missing or not a string")
    return value


def _paths(document: dict[str, object], name: str, root: Path, path: Path) -> dict[str, Path]:
    table = document.get(name, {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise NetworkError(f"{path}: [{name}] must map names to file paths")
    return {str(key): (root / value).resolve() for key, value in table.items()}


def load_network(directory: Path) -> Network:
    """Read `directory/network.toml`.

    Raises:
        NetworkError: no such file, not TOML, or a setting missing.
    """
    root = Path(directory)
    path = root / NETWORK_FILE
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise NetworkError(
            f"no network at {root}: {path} not found; run `tally init {root}` or pass "
            "--network DIR (or set TALLY_NETWORK)"
        ) from None
    except OSError as exc:
        raise NetworkError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise NetworkError(f"{path} is not valid TOML: {exc}") from None
    keys = _paths(document, "keys", root, path)
    genesis = document.get("genesis")
    api = _string(document, "api", path)
    apis = document.get("apis", [api])
    if not isinstance(apis, list) or not apis or not all(isinstance(a, str) and a for a in apis):
        raise NetworkError(f"{path}: setting 'apis' must be a list of API URLs")
    return Network(
        root=root.resolve(),
        chain_id=_string(document, "chain_id", path),
        hrp=_string(document, "hrp", path),
        api=api,
        apis=tuple(apis),
        genesis_file=(root / genesis).resolve() if isinstance(genesis, str) else None,
        admin_key=keys.pop("admin", None),
        node_keys=keys,
        issuer_keys=_paths(document, "issuers", root, path),
    )


def _render_network(
    chain_id: str, hrp: str, port: int, assets: tuple[str, ...], nodes: int = 1
) -> str:
    # json.dumps writes every string as a valid TOML basic string.
    names = [f"node{index}" for index in range(nodes)]
    lines = [
        "# A Tally development network, made by `tally init`. Paths are relative to this file.",
        f"chain_id = {json.dumps(chain_id)}",
        f"hrp = {json.dumps(hrp)}",
        f"api = {json.dumps(api_url(port))}",
    ]
    if nodes > 1:  # a single node's file stays as it always was: `apis` defaults to `[api]`
        lines.append(f"apis = {json.dumps([api_url(port + i) for i in range(nodes)])}")
    lines += [
        'genesis = "genesis.bin"',
        "",
        "[keys]",
        'admin = "keys/admin.key"',
        *(f'{name} = "keys/{name}.key"' for name in names),
        "",
        "[issuers]",
        *(f'{asset} = "keys/issuer-{asset}.key"' for asset in assets),
        "",
    ]
    return "\n".join(lines)


def _made_by_init(root: Path) -> list[Path]:
    keys = root / "keys"
    return [
        root / NETWORK_FILE,
        root / "genesis.bin",
        keys / "admin.key",
        *keys.glob("issuer-*.key"),
        *keys.glob("root.*"),
        *(path for path in keys.glob("node*") if _NODE_FILE.fullmatch(path.name)),
        *(path for path in root.glob("node*") if _NODE_DIR.fullmatch(path.name)),
    ]


def _check_nodes(nodes: int, port: int, p2p_port: int) -> None:
    if nodes < 1 or 1 < nodes < MIN_CONSORTIUM:
        raise NetworkError(
            f"--nodes {nodes}: use 1 for a development node, or {MIN_CONSORTIUM} or more for a "
            f"PBFT consortium; n = 3f + 1 nodes tolerate f faulty ones, so it takes "
            f"{MIN_CONSORTIUM} nodes to tolerate one fault"
        )
    for base, what in ((port, "port"), (p2p_port, "p2p port")):
        if not 1 <= base <= 65535 - (nodes - 1):
            raise NetworkError(
                f"{what} {base} is not in 1 … {65535 - (nodes - 1)} (node I uses {what} + I)"
            )
    if nodes > 1 and abs(port - p2p_port) < nodes:
        raise NetworkError(
            f"API ports {port} … {port + nodes - 1} and p2p ports {p2p_port} … "
            f"{p2p_port + nodes - 1} overlap; choose another --p2p-port"
        )


def create_network(
    directory: Path,
    *,
    chain_id: str = DEFAULT_CHAIN_ID,
    port: int = DEFAULT_PORT,
    assets: tuple[str, ...] = DEFAULT_ASSETS,
    force: bool = False,
    hrp: str = DEFAULT_HRP,
    nodes: int = 1,
    p2p_port: int | None = None,
) -> Network:
    """Create a development network in `directory`: one node, or a PBFT consortium.

    Args:
        directory: Where to create it; must be absent or empty unless `force`.
        chain_id: The chain id, 1 to 64 letters, digits, `.`, `_` or `-`.
        port: The API port of node0 on 127.0.0.1; node I serves on `port + I`.
        assets: The asset codes to register, each with a new issuer key.
        force: Replace what an earlier `tally init` wrote there (keys, genesis and the
            nodes' data are lost; other files are left alone).
        hrp: The address prefix.
        nodes: 1 for a solo node, or at least `MIN_CONSORTIUM` for a PBFT consortium with
            a root certificate in genesis and a member certificate per node.
        p2p_port: Node0's peer transport port; node I listens on `p2p_port + I` (default:
            `port + P2P_PORT_OFFSET`). Unused by a solo node.

    Returns:
        The new network.

    Raises:
        NetworkError: the directory is not empty (without `force`), or an argument is invalid.
    """
    root = Path(directory)
    if not _CHAIN_ID.fullmatch(chain_id):
        raise NetworkError(f"chain id {chain_id!r}: use 1 to 64 letters, digits, '.', '_' or '-'")
    if not 1 <= port <= 65535:
        raise NetworkError(f"port {port} is not in 1 … 65535")
    p2p_base = port + P2P_PORT_OFFSET if p2p_port is None else p2p_port
    _check_nodes(nodes, port, p2p_base)
    bad = [asset for asset in assets if not is_valid_asset_code(asset)]
    if bad or not assets or len(set(assets)) != len(assets):
        raise NetworkError(
            f"assets {', '.join(assets) or '(none)'}: give distinct codes of an upper-case "
            "letter and 1 to 11 upper-case letters or digits"
        )
    if root.exists() and not root.is_dir():
        raise NetworkError(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()):
        if not force:
            raise NetworkError(
                f"{root} is not empty; choose another directory, or pass --force to replace "
                "the network there (its keys and the node's data are lost)"
            )
        for path in _made_by_init(root):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    keys_dir = root / "keys"

    def new(name: str, label: str) -> PrivateKey:
        key = new_key()
        write_key(keys_dir / name, key, label=label)
        return key

    admin = new("admin.key", f"{chain_id} admin")
    issuers = {asset: new(f"issuer-{asset}.key", f"{chain_id} {asset} issuer") for asset in assets}
    names = [f"node{index}" for index in range(nodes)]
    node_keys = {name: new(f"{name}.key", f"{chain_id} {name}") for name in names}
    root_certificate = b""
    if nodes > 1:
        root_certificate = write_certificates(keys_dir, chain_id, node_keys)
    genesis = Genesis(
        chain_id=chain_id,
        hrp=hrp,
        time_ms=int(time.time() * 1000),
        params=Params(),
        admins=(PublicKey(admin.public_key),),
        admin_threshold=1,
        assets=tuple(
            AssetEntry(asset=AssetCode(asset), issuer=PublicKey(key.public_key))
            for asset, key in issuers.items()
        ),
        members=tuple(
            Member(name=name, key=PublicKey(key.public_key)) for name, key in node_keys.items()
        ),
        root_certificate=root_certificate,
    )
    (root / "genesis.bin").write_bytes(encode(genesis))
    if nodes == 1:
        node_dir = root / names[0]
        node_dir.mkdir()
        (node_dir / "node.toml").write_text(
            render_config(names[0], f"../keys/{names[0]}.key", "../genesis.bin", port)
        )
    else:
        write_node_dirs(root, names, port, p2p_base)
    (root / NETWORK_FILE).write_text(_render_network(chain_id, hrp, port, assets, nodes))
    return load_network(root)
