"""Running a node as a process: open its store, start its orderer, serve its API."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import uvicorn
from fastapi import FastAPI, Request

from tally.consensus.membership import MemberIdentity, is_member
from tally.consensus.orderer import Orderer
from tally.consensus.pbft.orderer import PbftOrderer
from tally.consensus.solo import SoloOrderer
from tally.consensus.transport import FaultLayer, FaultRules, PeerTransport
from tally.model.encoding import decode
from tally.model.genesis import Genesis
from tally.node.api import create_app
from tally.node.config import ConfigError, NodeConfig, load_config
from tally.node.core import BlockProposal, Node
from tally.node.keyfile import read_key
from tally.node.observer import Observer
from tally.store.ledger import LedgerStore
from tally.store.lmdb_store import LmdbStore

__all__ = ["GracefulServer", "open_node", "run_node", "read_genesis"]

log = logging.getLogger(__name__)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, minus re-raising SIGINT/SIGTERM after its shutdown.

    uvicorn restores the previous handlers and raises the captured signal again once it has
    stopped serving, which kills the process before the orderer is stopped and the store is
    closed. Here a signal only asks the server to exit; the caller then cleans up and returns.
    The services run under it too.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """While serving, SIGINT and SIGTERM only ask the server to exit."""
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def read_genesis(path: Path) -> Genesis:
    """Read a network's canonical genesis file.

    Raises:
        ConfigError: missing or not a genesis.
    """
    try:
        return decode(Path(path).read_bytes(), Genesis)
    except OSError as exc:
        raise ConfigError(f"cannot read genesis {path}: {exc.strerror}") from None
    except Exception as exc:  # any Rejection or decode failure: say which file
        raise ConfigError(f"{path} is not a Tally genesis file: {exc}") from None


def open_node(config: NodeConfig) -> Node:
    """Open (or initialise) the node's store and build the node, without starting anything."""
    genesis = read_genesis(config.genesis_file)
    key = read_key(config.key_file)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = LedgerStore.open(LmdbStore(config.data_dir))
    return Node.create(store, genesis, key, config.name, mempool_max=config.mempool_max)


class _Consortium:
    """The PBFT orderer and its transport, started and stopped together."""

    def __init__(self, orderer: PbftOrderer[BlockProposal], transport: PeerTransport) -> None:
        self._orderer = orderer
        self._transport = transport

    def start(self) -> None:
        self._transport.start()
        self._orderer.start()

    def stop(self) -> None:
        self._orderer.stop()
        self._transport.stop()


def _consortium(
    config: NodeConfig, node: Node, me: int, on_fatal: Callable[[BaseException], None]
) -> tuple[PbftOrderer[BlockProposal], PeerTransport]:
    """A PBFT orderer for member `me` and its mutual-TLS transport to the other members."""
    genesis = node.genesis
    if not genesis.root_certificate:
        raise ConfigError("consensus is pbft but genesis has no consortium root certificate")
    if config.tls_cert is None or config.tls_key is None:
        raise ConfigError(f"{config.name}: pbft needs [p2p] cert and key")
    names = [member.name for member in node.members()]
    orderer: PbftOrderer[BlockProposal] = PbftOrderer(
        node,
        node.key,
        me,
        names,
        config.data_dir / "consensus.log",
        max_txs=node.params_max_txs,
        checkpoint_interval=config.checkpoint_interval,
        view_timeout_ms=config.view_timeout_ms,
        on_fatal=on_fatal,
        byzantine=config.test_byzantine,
    )

    def authorize(identity: MemberIdentity) -> bool:
        # A member removed by a committed `RevokeMember` is no longer in force.
        return is_member(identity, node.members())

    transport = PeerTransport(
        name=config.name,
        listen=(config.p2p_host, config.p2p_port),
        peers={name: peer.p2p for name, peer in config.peers.items()},
        cert_file=config.tls_cert,
        key_file=config.tls_key,
        root_der=genesis.root_certificate,
        authorize=authorize,
        on_message=orderer.on_message,
        faults=FaultLayer() if config.test_faults else None,
    )
    orderer.attach(transport)
    node.extra_status.append(
        lambda: {
            "consensus": "pbft",
            "view": orderer.view,
            "primary": names[orderer.view % len(names)],
            "peers": sorted(transport.connected()),
        }
    )
    # Revocations take effect on live links too, after every block.
    node.on_block.append(lambda _proposal, _elapsed: transport.recheck())
    return orderer, transport


def add_fault_routes(app: FastAPI, faults: FaultLayer) -> None:
    """Test-only routes that set the faults this node injects on its links.

    Only served when the node's configuration says `[test] faults = true`.
    """

    @app.post("/v1/test/faults")
    async def set_faults(request: Request) -> dict[str, Any]:
        rules = msgspec.json.decode(await request.body(), type=FaultRules)
        faults.set_rules(rules)
        return msgspec.to_builtins(rules)  # type: ignore[no-any-return]

    @app.delete("/v1/test/faults")
    def heal() -> dict[str, Any]:
        faults.heal()
        return {"healed": True}


def run_node(
    config_path: Path,
    log_level: str = "info",
    configure: Callable[[FastAPI, Node], None] | None = None,
) -> int:
    """Run a node until SIGINT or SIGTERM; returns the process exit code.

    Args:
        config_path: the node's `node.toml` or its directory.
        log_level: debug, info, warning or error.
        configure: called with the API application before it serves, so that higher
            layers (the explorer) can add their routes without the node importing them.
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = load_config(config_path)
    node = open_node(config)
    signer = node.member_index()
    if signer is None and config.consensus != "observer":
        raise ConfigError(f"node key of {config.name} is not a consensus member in genesis")
    app = create_app(node, verify_threads=config.verify_threads)
    if configure is not None:
        configure(app, node)
    server = GracefulServer(
        uvicorn.Config(
            app,
            host=config.api_host,
            port=config.api_port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )

    def on_fatal(exc: BaseException) -> None:
        node.on_fatal(exc)
        server.should_exit = True

    orderer: Orderer
    if config.consensus == "observer" or signer is None:
        observer = Observer(node, [peer.api for peer in config.peers.values()], on_fatal)
        node.extra_status.append(
            lambda: {"consensus": "observer", "refused_blocks": observer.refused}
        )
        orderer = observer
    elif config.consensus == "pbft":
        pbft, transport = _consortium(config, node, signer, on_fatal)
        orderer = _Consortium(pbft, transport)
        if transport.faults is not None:
            add_fault_routes(app, transport.faults)
        app.state.pbft = pbft
    else:
        orderer = SoloOrderer(
            node,
            node.key,
            signer,
            max_txs=node.params_max_txs,
            interval_ms=node.params_interval_ms,
            on_fatal=on_fatal,
        )
    height, _ = node.store.tip()
    log.info(
        "node %s on chain %s at height %d, API on http://%s:%d",
        config.name,
        node.chain_id,
        height,
        config.api_host,
        config.api_port,
    )
    orderer.start()
    try:
        server.run()
    finally:
        orderer.stop()
        node.stop()
        height_at_stop = node.store.tip()[0]
        node.store.close()
    if node.fatal is not None:
        log.error("node stopped by a fatal error: %r", node.fatal)
        return 1
    log.info("node %s stopped cleanly at height %d", config.name, height_at_stop)
    return 0
