"""`tally bench --nodes N`: committed transfers per second of an N-node PBFT consortium.

The consortium runs as it does in production on one machine: N node processes over LMDB,
talking over mutual TLS on loopback, each with its member certificate under a root in
genesis. The load comes from another process through node0's `POST /v1/txs/batch`; node0
forwards every transaction to the others, and a transfer counts once its block is final
(2f+1 commit signatures) and written at node0. Latency p50/p99 is measured with the load
paced at half the measured rate. On one machine the N nodes share its cores, so the figure
is a floor for N machines, not an estimate of them.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tally.bench.api import fund_and_sign, load, percentile, serving_node
from tally.bench.pipeline import bench_genesis
from tally.crypto.schnorr import PrivateKey
from tally.model.encoding import encode
from tally.node.consortium import (
    api_url,
    consortium_genesis,
    free_base_port,
    write_certificates,
    write_node_dirs,
)
from tally.node.keyfile import new_key, write_key

__all__ = ["run_consortium"]

Progress = Callable[[str, int, int], None]

_BATCH_SIZE = 500
_BATCH_INFLIGHT = 4
_PACED_BATCH = 25


def _write_network(root: Path, nodes: int) -> list[tuple[Path, str]]:
    """The bench genesis with `nodes` members; returns each node's directory and API URL."""
    names = [f"node{i}" for i in range(nodes)]
    keys: dict[str, PrivateKey] = {}
    for name in names:
        keys[name] = new_key()
        write_key(root / "keys" / f"{name}.key", keys[name], label=f"bench {name}")
    certificate = write_certificates(root / "keys", "tally-bench", keys)
    genesis = consortium_genesis(bench_genesis(), keys, certificate)
    (root / "genesis.bin").write_bytes(encode(genesis))
    base = free_base_port(nodes)
    dirs = write_node_dirs(root, names, base, base + 100)
    return [(directory, api_url(base + i)) for i, directory in enumerate(dirs)]


def run_consortium(
    nodes: int,
    transfers: int,
    rounds: int,
    progress: Progress | None = None,
    directory: Path | None = None,
) -> dict[str, Any]:  # Any: the benchmark's JSON document
    """`consortium_batch` (committed transfers/s), `consortium_p50_ms`, `consortium_p99_ms`."""
    rates: list[float] = []
    p50: list[float] = []
    p99: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tally-bench-pbft-", dir=directory) as tmp:
        root = Path(tmp)
        members = _write_network(root, nodes)
        with ExitStack() as running:
            urls = [running.enter_context(serving_node(d, url)) for d, url in members]
            entry = urls[0]
            steps = 2 * rounds
            for step in range(steps):
                raws = fund_and_sign(entry, transfers, nonce_base=(step + 1) * 10_000_000)
                if step % 2 == 0:
                    mode = ["batch", str(_BATCH_SIZE), str(_BATCH_INFLIGHT)]
                else:
                    mode = ["paced", f"{statistics.median(rates) / 2:.1f}", str(_PACED_BATCH)]
                result = load(entry, raws, root, mode)
                if step % 2 == 0:
                    rates.append(result.rate)
                else:
                    p50.append(percentile(result.latencies_ms, 0.50))
                    p99.append(percentile(result.latencies_ms, 0.99))
                if progress is not None:
                    progress("consortium", step + 1, steps)
    return {
        "nodes": nodes,
        "consortium_batch": round(statistics.median(rates), 1),
        "consortium_p50_ms": round(statistics.median(p50), 1),
        "consortium_p99_ms": round(statistics.median(p99), 1),
        "consortium_runs": [round(rate, 1) for rate in rates],
    }
