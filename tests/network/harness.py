"""A consortium of real node processes on loopback, with faults injected between them.

`Consortium` makes a network with `tally init --nodes N` semantics, starts one process per
member, and gives the test control over them: kill -9 and restart, pause (SIGSTOP) and
resume, and per-node fault rules on the consensus links (drop, delay, duplicate, reorder,
partition), set through the test-only `/v1/test/faults` route every node here serves.

`Load` submits issuances to live nodes at a steady rate and remembers every one a node
acknowledged as committed; `check_invariants` then asserts what ARCHITECTURE.md section 8
promises: one chain (same block hash and state root at every shared height), conservation,
and nothing acknowledged lost.
"""

from __future__ import annotations

import itertools
import random
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tally.cli.network import Network, create_network
from tally.client.builders import make_issue
from tally.client.node_client import NodeClient
from tally.crypto.schnorr import PrivateKey
from tally.model.block import Block
from tally.model.encoding import block_hash, decode, tx_id
from tally.node.config import PeerAddress, render_config
from tally.node.consortium import P2P_OFFSET, free_base_port
from tally.node.keyfile import new_key, read_key, write_key
from tests.node.harness import ServiceProcess, free_port

__all__ = ["Consortium", "Load", "running"]


@dataclass
class Consortium:
    """N member nodes as processes; index i is member `nodeI`."""

    root: Path
    size: int
    view_timeout_ms: int = 1000
    byzantine: dict[int, str] = field(default_factory=dict)
    """Members that misbehave from the start, by index."""
    network: Network | None = None
    nodes: list[ServiceProcess] = field(default_factory=list)
    base: int = 0

    def create(self) -> None:
        """Write the network directory: genesis with a root certificate, keys, node configs."""
        self.base = free_base_port(self.size)
        self.network = create_network(
            self.root, nodes=self.size, port=self.base, p2p_port=self.base + P2P_OFFSET
        )
        for i in range(self.size):
            node_dir = self.root / f"node{i}"
            config = (node_dir / "node.toml").read_text()
            config = config.replace(
                "view_timeout_ms = 2000", f"view_timeout_ms = {self.view_timeout_ms}"
            )
            (node_dir / "node.toml").write_text(config)
            self.nodes.append(ServiceProcess(node_dir, self.base + i))
            self.misbehave(i, self.byzantine.get(i))

    def start(self) -> None:
        """Start every node."""
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        """Stop every node still running (SIGCONT first, for paused ones)."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)
                node.stop()

    def add_observer(self) -> ServiceProcess:
        """Start an observer: a node without a vote that follows the members' APIs."""
        assert self.network is not None
        directory = self.root / "observer"
        write_key(directory / "observer.key", new_key(), label="observer")
        port = free_port()
        peers = {
            f"node{i}": PeerAddress(p2p=("127.0.0.1", self.base + P2P_OFFSET + i), api=node.url)
            for i, node in enumerate(self.nodes)
        }
        (directory / "node.toml").write_text(
            render_config(
                "observer",
                "observer.key",
                "../genesis.bin",
                port,
                consensus="observer",
                p2p_port=free_port(),
                peers=peers,
            )
        )
        observer = ServiceProcess(directory, port)
        observer.start()
        return observer

    # -- faults -----------------------------------------------------------------------------

    def running(self) -> list[int]:
        """Indices of nodes whose process is alive (paused ones included)."""
        return [
            i
            for i, node in enumerate(self.nodes)
            if node.process is not None and node.process.poll() is None
        ]

    def kill(self, i: int) -> None:
        """kill -9 node i."""
        self.nodes[i].kill()

    def restart(self, i: int) -> None:
        """Start node i again from its data directory."""
        self.nodes[i].start()

    def misbehave(self, i: int, byzantine: str | None) -> None:
        """Make node i Byzantine (see `tally.consensus.pbft.orderer.BYZANTINE`) from its
        next start, or honest again with None."""
        path = self.nodes[i].directory / "node.toml"
        text = path.read_text().split("\n[test]\n")[0]
        extra = f'byzantine = "{byzantine}"\n' if byzantine else ""
        path.write_text(text + "\n[test]\nfaults = true\n" + extra)

    @property
    def f(self) -> int:
        """How many faulty members the consortium tolerates."""
        return (self.size - 1) // 3

    def primary(self, among: list[int] | None = None) -> int:
        """The primary the first answering node of `among` (default: all) works under."""
        for i in among if among is not None else self.running():
            try:
                return int(str(self.status(i)["primary"]).removeprefix("node"))
            except httpx.HTTPError:
                continue
        raise AssertionError("no node answers")

    def pause(self, i: int) -> None:
        """SIGSTOP node i: it holds its sockets but answers nothing."""
        process = self.nodes[i].process
        assert process is not None
        process.send_signal(signal.SIGSTOP)

    def resume(self, i: int) -> None:
        """SIGCONT node i."""
        process = self.nodes[i].process
        assert process is not None
        process.send_signal(signal.SIGCONT)

    def set_faults(self, i: int, **rules: Any) -> None:
        """Set node i's fault rules (see `tally.consensus.transport.FaultRules`)."""
        response = httpx.post(self.nodes[i].url + "/v1/test/faults", json=rules, timeout=5)
        response.raise_for_status()

    def partition(self, *groups: list[int]) -> None:
        """Cut every link between nodes of different groups."""
        where = {i: g for g, members in enumerate(groups) for i in members}
        for i in self.running():
            blocked = [f"node{j}" for j in range(self.size) if where.get(j) != where.get(i)]
            self.set_faults(i, blocked=blocked)

    def heal(self) -> None:
        """Remove every fault on every running node."""
        for i in self.running():
            httpx.delete(self.nodes[i].url + "/v1/test/faults", timeout=5).raise_for_status()

    # -- reading ------------------------------------------------------------------------------

    def status(self, i: int) -> dict[str, Any]:
        """Node i's `/v1/status`."""
        return httpx.get(self.nodes[i].url + "/v1/status", timeout=5).json()  # type: ignore[no-any-return]

    def heights(self, nodes: list[int] | None = None) -> dict[int, int]:
        """Height of each of `nodes` (default: the running ones) that answers."""
        heights = {}
        for i in nodes if nodes is not None else self.running():
            try:
                heights[i] = int(self.status(i)["height"])
            except (httpx.HTTPError, KeyError, ValueError):
                continue
        return heights

    def wait_for(self, nodes: list[int], height: int, timeout: float) -> float:
        """Wait until every node in `nodes` reached `height`; returns the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            heights = self.heights(nodes)
            if len(heights) == len(nodes) and min(heights.values()) >= height:
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(
            f"nodes {nodes} did not reach height {height} in {timeout} s: {self.heights(nodes)}"
        )

    def issuer_key(self) -> PrivateKey:
        """The key of the first asset's issuer."""
        assert self.network is not None
        asset = sorted(self.network.issuer_keys)[0]
        return read_key(self.network.issuer_keys[asset])

    def check_invariants(self, nodes: list[int], acknowledged: list[str]) -> None:
        """One chain, the same state at every shared height, conservation, nothing lost."""
        heights = self.heights(nodes)
        assert len(heights) == len(nodes), f"some nodes do not answer: {heights}"
        shared = min(heights.values())
        # Each header holds the previous block's hash and its own state root, so one hash
        # at the highest shared height covers every block and state below it.
        if shared > 0:
            headers = {
                i: httpx.get(f"{self.nodes[i].url}/v1/blocks/{shared}", timeout=10).json()
                for i in nodes
            }
            hashes = {i: h["header"]["hash"] for i, h in headers.items()}
            assert len(set(hashes.values())) == 1, f"fork at or below height {shared}: {hashes}"
            signers = headers[nodes[0]]["certificate"]["signatures"]
            assert len(signers) >= 2 * ((self.size - 1) // 3) + 1, f"no quorum at {shared}"
        supplies = {
            i: httpx.get(f"{self.nodes[i].url}/v1/supply", timeout=10).json() for i in nodes
        }
        at_top = [i for i in nodes if heights[i] == max(heights.values())]
        assert len({str(supplies[i]) for i in at_top}) == 1, f"supplies differ: {supplies}"
        # Every node has the chain that ends in the agreed hash, so one node's copy, checked
        # link by link up to that hash, shows what all of them hold.
        committed = self._committed_txids(nodes[0], shared)
        lost = [txid for txid in acknowledged if txid not in committed]
        assert not lost, f"{len(lost)} acknowledged transactions lost, such as {lost[:3]}"

    def _committed_txids(self, i: int, height: int) -> set[str]:
        """The accepted transactions of node i's blocks 1 … `height`, chain links checked."""
        accepted: set[str] = set()
        previous = None
        with httpx.Client(base_url=self.nodes[i].url, timeout=30) as http:
            for h in range(1, height + 1):
                response = http.get(f"/v1/blocks/{h}/certified")
                response.raise_for_status()
                raw, _ = decode(response.content, tuple[bytes, bytes])
                block = decode(raw, Block)
                if previous is not None:
                    assert block.header.prev_hash == previous, f"broken chain at {h}"
                previous = block_hash(block.header)
                for tx, receipt in zip(block.txs, block.receipts, strict=True):
                    if receipt.accepted:
                        accepted.add(tx_id(tx.body).hex())
        return accepted


@contextmanager
def running(root: Path, size: int, byzantine: dict[int, str] | None = None) -> Iterator[Consortium]:
    """A consortium of `size` nodes created in `root` and started; stopped at the end."""
    consortium = Consortium(root, size=size, byzantine=byzantine or {})
    consortium.create()
    consortium.start()
    try:
        yield consortium
    finally:
        consortium.stop()


class Load:
    """Issuances submitted to live nodes at a steady rate, on a background thread."""

    def __init__(
        self, consortium: Consortium, rate: float = 20.0, seed: int = 0, batch: int = 1
    ) -> None:
        """Submit about `rate` requests a second, each of `batch` issuances."""
        self._consortium = consortium
        self._rate = rate
        self._batch = batch
        self._rng = random.Random(seed)
        self._key = consortium.issuer_key()
        assert consortium.network is not None
        self._chain_id = consortium.network.chain_id
        self._asset = sorted(consortium.network.issuer_keys)[0]
        self._nonce = itertools.count(seed * 1_000_000)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.acknowledged: list[str] = []
        """Transaction ids some node acknowledged as committed."""
        self.commits: list[float] = []
        """When each acknowledgement arrived (monotonic seconds)."""
        self.targets: list[int] = list(range(consortium.size))
        """Nodes the load may submit to; tests narrow it around the faults they inject."""

    def start(self, workers: int = 4) -> None:
        """Start submitting."""
        for _ in range(workers):
            thread = threading.Thread(target=self._run, args=(workers,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop submitting and wait for the submitters."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def committed_between(self, start: float, end: float) -> int:
        """How many acknowledgements arrived between two monotonic times."""
        with self._lock:
            return sum(1 for t in self.commits if start <= t < end)

    def _run(self, workers: int) -> None:
        interval = workers / self._rate
        while not self._stop.is_set():
            with self._lock:
                nonces = [next(self._nonce) for _ in range(self._batch)]
                target = self._rng.choice(self.targets)
            started = time.monotonic()
            results: list[dict[str, Any]] = []
            try:
                with NodeClient(self._consortium.nodes[target].url, timeout=5) as client:
                    height = int(client.status()["height"])
                    txs = [
                        make_issue(
                            self._asset,
                            self._key,
                            [(self._key.public_key, 100)],
                            bytes(32),
                            nonce,
                            height + 500,
                            self._chain_id,
                        )
                        for nonce in nonces
                    ]
                    if self._batch == 1:
                        results = [client.submit(txs[0], wait=True)]
                    else:
                        results = client.submit_batch(txs, wait=True)
            except Exception:  # a node down or a timeout: the load goes on elsewhere
                results = []
            done = [str(r["txid"]) for r in results if r.get("status") == "committed"]
            with self._lock:
                self.acknowledged.extend(done)
                self.commits.extend([time.monotonic()] * len(done))
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))
