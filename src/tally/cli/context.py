"""The options network commands share, and turning them into a network and a client.

`connect` is the one place the command line makes a `NodeClient`; tests replace
`client_factory` to run the commands against a node served in-process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from tally.cli.network import Network, load_network
from tally.cli.output import CliError
from tally.client.builders import to_lock
from tally.client.node_client import NodeClient
from tally.client.wire import coins_from_json
from tally.crypto.schnorr import PrivateKey
from tally.model.address import address_of, lock_hash, parse_address
from tally.model.lock import KeyLock, Lock
from tally.model.types import PublicKey
from tally.node.keyfile import read_key

__all__ = [
    "DEFAULT_NETWORK_DIR",
    "NetworkOption",
    "ApiOption",
    "JsonOption",
    "KeyOption",
    "client_factory",
    "open_network",
    "connect",
    "resolve_lock",
    "resolve_address",
    "network_dir",
    "key_address",
    "node_status",
    "read_signer",
]

DEFAULT_NETWORK_DIR = "tally-net"
_PUBLIC_KEY = re.compile(r"[0-9a-fA-F]{64}")

NetworkOption = Annotated[
    Path | None,
    typer.Option(
        "--network",
        "-n",
        help="Network directory made by `tally init` (default: $TALLY_NETWORK, then ./tally-net).",
        show_default=False,
    ),
]
ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api", help="Node API URL, instead of the one in network.toml.", show_default=False
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
KeyOption = Annotated[
    Path | None,
    typer.Option("--key", "-k", help="Key file of the signer.", show_default=False),
]

client_factory: Callable[[str], NodeClient] = NodeClient
"""Makes the client for an API URL; tests swap it."""


def network_dir(option: Path | None) -> Path:
    """The network directory: the option, else `$TALLY_NETWORK`, else `./tally-net`."""
    if option is not None:
        return option
    return Path(os.environ.get("TALLY_NETWORK") or DEFAULT_NETWORK_DIR)


def open_network(option: Path | None) -> Network:
    """Read the network directory the options name.

    Raises:
        NetworkError: it has no readable network.toml.
    """
    return load_network(network_dir(option))


def connect(network: Network, api: str | None) -> NodeClient:
    """A client of the network's node (or of `api`)."""
    return client_factory(api or network.api)


def _public_key(text: str) -> PublicKey | None:
    path = Path(text)
    if path.is_file():
        return PublicKey(read_key(path).public_key)
    if _PUBLIC_KEY.fullmatch(text):
        return PublicKey(bytes.fromhex(text))
    return None


def resolve_lock(text: str, network: Network, client: NodeClient | None) -> Lock:
    """The lock a recipient names: a key file, a public key, or an address.

    An address is only the hash of a lock, so the lock itself is read from a coin the address
    already holds; paying a fresh address needs its public key or key file instead.

    Raises:
        CliError: `text` is none of these, or an address with no coins, or an address
            while offline (`client` None).
        KeyFileError: a key file that cannot be read.
    """
    key = _public_key(text)
    if key is not None:
        return to_lock(key)
    if not text.startswith(network.hrp + "1"):
        raise CliError(
            f"{text!r} is not a key file, a public key (64 hex digits) or a {network.hrp} address"
        )
    wanted = parse_address(text, network.hrp)
    if client is None:
        raise CliError(
            f"paying the address {text} needs the node to look up its lock; give the "
            "recipient's public key or key file instead"
        )
    for _, coin in coins_from_json(client.address_coins(text, limit=1)):
        if lock_hash(coin.lock) == wanted:
            return coin.lock
    raise CliError(
        f"address {text} holds no coins, so its lock is unknown (an address is only a hash); "
        "give the recipient's public key or key file instead"
    )


def resolve_address(text: str, network: Network) -> str:
    """The address `text` names: itself if it is an address, else a key file's or key's.

    Raises:
        CliError: `text` is none of these.
        BadAddressError: an address of another network, or a mistyped one.
    """
    key = _public_key(text)
    if key is not None:
        return address_of(to_lock(key), network.hrp)
    if text.startswith(network.hrp + "1"):
        parse_address(text, network.hrp)
        return text
    raise CliError(
        f"{text!r} is not a key file, a public key (64 hex digits) or a {network.hrp} address"
    )


def key_address(key: PrivateKey, hrp: str) -> str:
    """The address of `key`'s `KeyLock`."""
    return address_of(KeyLock(key=PublicKey(key.public_key)), hrp)


def read_signer(option: Path | None, what: str) -> PrivateKey:
    """The key in the `--key` file.

    Raises:
        CliError: no `--key` given.
        KeyFileError: the file cannot be read.
    """
    if option is None:
        raise CliError(f"{what} needs a signer: pass --key FILE")
    return read_key(option)


def node_status(client: NodeClient, network: Network) -> dict[str, object]:
    """The node's status, after checking that it serves the network's chain.

    Raises:
        CliError: the node serves another chain.
        NodeError: the node cannot be reached.
    """
    status = client.status()
    if status.get("chain_id") != network.chain_id:
        raise CliError(
            f"the node at {client.base_url} serves chain {status.get('chain_id')!r}, but "
            f"{network.root / 'network.toml'} is for {network.chain_id!r}"
        )
    return status
