"""The API figures: transfers through a real node process's HTTP API on loopback.

A node runs as its own process (`python -m tally.node`) over LMDB, and the load comes from
another process (`tally.bench.load`), so that neither shares the other's interpreter:

- `api_batch`: `POST /v1/txs/batch`, committed transfers per second;
- `api_single`: `POST /v1/txs`, one transfer per request from 64 concurrent clients;
- latency p50 / p99 from submission to commit acknowledgement, with the load paced at half
  the `api_batch` rate.

Coins are issued through the API and the transfers signed before any clock starts.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec

from tally.bench.pipeline import _NODE, _funding, _transfers, bench_genesis
from tally.model.encoding import encode
from tally.node.config import render_config
from tally.node.keyfile import write_key

__all__ = ["ApiResult", "node_process", "serving_node", "run_api", "fund_and_sign", "load"]

Progress = Callable[[str, int, int], None]

_START_TIMEOUT_S = 60.0
_BATCH_SIZE = 500
"""Transactions per batch request."""
_BATCH_INFLIGHT = 4
"""Batch requests in flight at once."""
_SINGLE_CLIENTS = 64
"""Concurrent clients of the single-transaction figure, as the issue sets it."""
_PACED_BATCH = 25
"""Transactions per request of the paced latency run."""


@dataclass(frozen=True)
class ApiResult:
    """One load run through the API."""

    committed: int
    """Transfers committed."""
    seconds: float
    """From the first request to the last answer."""
    latencies_ms: list[float]
    """Per transfer, submission to commit acknowledgement."""

    @property
    def rate(self) -> float:
        """Committed transfers per second."""
        return self.committed / self.seconds


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def node_process(directory: Path) -> Iterator[str]:
    """Run a one-node bench network's node as a process; yields its API's base URL."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "genesis.bin").write_bytes(encode(bench_genesis()))
    write_key(directory / "node.key", _NODE, label="bench node")
    port = _free_port()
    (directory / "node.toml").write_text(render_config("bench", "node.key", "genesis.bin", port))
    with serving_node(directory, f"http://127.0.0.1:{port}") as url:
        yield url


@contextmanager
def serving_node(directory: Path, url: str) -> Iterator[str]:
    """Run the node configured in `directory` as a process until the block ends."""
    with (directory / "node.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
            [sys.executable, "-m", "tally.node", str(directory)], stdout=log, stderr=log
        )
        try:
            _wait_ready(url, process)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bench node exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/v1/status", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the bench node did not answer within {_START_TIMEOUT_S:g} s")


def fund_and_sign(url: str, count: int, nonce_base: int) -> list[bytes]:
    """Issue `count` coins through the node at `url`, then sign one transfer of each."""
    issues, coins = _funding(count, nonce_base)
    body = msgspec.msgpack.encode([encode(tx) for tx in issues])
    response = httpx.post(
        f"{url}/v1/txs/batch?wait=commit",
        content=body,
        headers={"content-type": "application/octet-stream"},
        timeout=600,
    )
    response.raise_for_status()
    statuses = {result.get("status") for result in response.json()["results"]}
    if statuses != {"committed"}:
        raise RuntimeError(f"funding the API benchmark failed: {statuses}")
    height = int(httpx.get(f"{url}/v1/status", timeout=10).json()["height"])
    return _transfers(coins, height + 900)


def load(url: str, raws: list[bytes], directory: Path, mode: list[str]) -> ApiResult:
    """Send `raws` to `url` from a load-generator process (`tally.bench.load` `mode`)."""
    path = directory / "load.bin"
    path.write_bytes(msgspec.msgpack.encode(raws))
    done = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "tally.bench.load", url, str(path), *mode],
        capture_output=True,
        check=True,
        timeout=900,
    )
    result = json.loads(done.stdout)
    if result["committed"] != len(raws):
        raise RuntimeError(f"{len(raws) - result['committed']} API benchmark transfers failed")
    return ApiResult(
        committed=result["committed"],
        seconds=result["seconds"],
        latencies_ms=result["latencies_ms"],
    )


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_api(
    transfers: int, rounds: int, progress: Progress | None = None, directory: Path | None = None
) -> dict[str, float | list[float]]:
    """`api_batch`, `api_single`, `p50_ms` and `p99_ms` (medians of `rounds` runs each)."""

    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    batch: list[float] = []
    single: list[float] = []
    p50: list[float] = []
    p99: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tally-bench-api-", dir=directory) as tmp:
        base = Path(tmp)
        with node_process(base / "node") as url:
            runs = 3 * rounds
            for run in range(runs):
                raws = fund_and_sign(url, transfers, nonce_base=(run + 1) * 10_000_000)
                kind = ("batch", "single", "paced")[run % 3]
                if kind == "batch":
                    mode = ["batch", str(_BATCH_SIZE), str(_BATCH_INFLIGHT)]
                elif kind == "single":
                    mode = ["single", str(_SINGLE_CLIENTS)]
                else:
                    rate = statistics.median(batch) / 2
                    mode = ["paced", f"{rate:.1f}", str(_PACED_BATCH)]
                result = load(url, raws, base, mode)
                if kind == "batch":
                    batch.append(result.rate)
                elif kind == "single":
                    single.append(result.rate)
                else:
                    p50.append(percentile(result.latencies_ms, 0.50))
                    p99.append(percentile(result.latencies_ms, 0.99))
                report("api", run + 1, runs)
    return {
        "api_batch": statistics.median(batch),
        "api_single": statistics.median(single),
        "p50_ms": statistics.median(p50),
        "p99_ms": statistics.median(p99),
        "api_batch_runs": batch,
        "api_single_runs": single,
        "p99_ms_runs": p99,
    }
