"""Writing a consortium's files: the root, member certificates and each node's directory.

Shared by `tally init --nodes N` and `tally bench --nodes N`, so that both run exactly the
setup a consortium runs in production: a root certificate in genesis, one member
certificate and TLS key per node under it, and node configurations that name every peer.

```
keys/root.key            the root's private key (0600; keep it offline)
keys/root.crt, root.pem  the root certificate, DER (as in genesis) and PEM
keys/NAME.crt            the member's certificate; keys/NAME-tls.key its TLS key (0600)
NAME/node.toml           kind = "pbft", [p2p] and every other member under [peers.*]
```
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives import serialization

from tally.consensus.membership import issue_member_certificate, load_certificate, make_root
from tally.crypto.schnorr import PrivateKey
from tally.model.genesis import Genesis, Member
from tally.model.types import PublicKey
from tally.node.config import PeerAddress, render_config
from tally.node.keyfile import write_secret

__all__ = [
    "write_certificates",
    "consortium_genesis",
    "write_node_dirs",
    "api_url",
    "free_base_port",
    "P2P_OFFSET",
]

P2P_OFFSET = 100
"""On one machine, node I's peer transport listens on its API port + this."""


def free_base_port(count: int) -> int:
    """A base port b with b … b+count-1 and b+P2P_OFFSET … free on loopback (benches, tests)."""
    rng = random.Random()  # noqa: S311 - picks ports, not secrets
    for _ in range(500):
        base = rng.randrange(20_000, 40_000)
        if all(_is_free(base + offset + i) for offset in (0, P2P_OFFSET) for i in range(count)):
            return base
    raise RuntimeError(f"found no {count} free ports in a row on loopback")


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def api_url(port: int) -> str:
    """The API base URL of a node on loopback."""
    return f"http://127.0.0.1:{port}"


def write_certificates(keys_dir: Path, chain_id: str, node_keys: dict[str, PrivateKey]) -> bytes:
    """Make the consortium root and each node's member certificate; returns the root's DER."""
    root_der, root_key = make_root(f"{chain_id} consortium root")
    write_secret(keys_dir / "root.key", root_key)
    (keys_dir / "root.crt").write_bytes(root_der)
    (keys_dir / "root.pem").write_bytes(
        load_certificate(root_der).public_bytes(serialization.Encoding.PEM)
    )
    for name, key in node_keys.items():
        cert, tls_key = issue_member_certificate(root_der, root_key, name, key.public_key)
        write_secret(keys_dir / f"{name}-tls.key", tls_key)
        (keys_dir / f"{name}.crt").write_bytes(cert)
    return root_der


def consortium_genesis(
    base: Genesis, node_keys: dict[str, PrivateKey], root_certificate: bytes
) -> Genesis:
    """`base` with the nodes as its members, in order, and the consortium's root."""
    return msgspec.structs.replace(
        base,
        members=tuple(
            Member(name=name, key=PublicKey(key.public_key)) for name, key in node_keys.items()
        ),
        root_certificate=root_certificate,
    )


def write_node_dirs(
    root: Path,
    names: list[str],
    port: int,
    p2p_port: int,
    *,
    keys: str = "../keys",
    genesis_file: str = "../genesis.bin",
    view_timeout_ms: int = 2000,
) -> list[Path]:
    """Write one directory with its `node.toml` per member, and return the directories.

    Node I serves its API on `port + I` and its peer transport on `p2p_port + I`.
    """
    dirs = []
    for index, name in enumerate(names):
        peers = {
            peer: PeerAddress(p2p=("127.0.0.1", p2p_port + i), api=api_url(port + i))
            for i, peer in enumerate(names)
            if peer != name
        }
        node_dir = root / name
        node_dir.mkdir(parents=True)
        (node_dir / "node.toml").write_text(
            render_config(
                name,
                f"{keys}/{name}.key",
                genesis_file,
                port + index,
                consensus="pbft",
                p2p_port=p2p_port + index,
                tls_cert=f"{keys}/{name}.crt",
                tls_key=f"{keys}/{name}-tls.key",
                peers=peers,
                view_timeout_ms=view_timeout_ms,
            )
        )
        dirs.append(node_dir)
    return dirs
