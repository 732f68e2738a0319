"""The load generator of the API figures, run as its own process (`python -m tally.bench.load`).

It reads canonical transactions from a file, sends them to a node's HTTP API, waits for
every one to be committed (`wait=commit`), and prints one JSON line: the seconds from the
first request to the last answer, how many were committed, and each transaction's latency
from submission to commit acknowledgement in milliseconds.

Modes:
    batch N C: `POST /v1/txs/batch` with N transactions per request, C requests in flight.
    single C: `POST /v1/txs`, one transaction per request, C clients each one at a time.
    paced R N: batches of N sent every N/R seconds (R transactions per second), whatever
        the answers; for latency at a chosen load.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

__all__ = ["main"]

_OCTETS = {"content-type": "application/octet-stream"}


def _committed(document: dict[str, Any]) -> bool:
    return document.get("status") == "committed"


async def _batch(client: httpx.AsyncClient, raws: list[bytes], size: int, inflight: int) -> Any:
    chunks = [raws[i : i + size] for i in range(0, len(raws), size)]
    latencies: list[float] = []
    committed = 0
    queue: asyncio.Queue[list[bytes]] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)

    async def worker() -> None:
        nonlocal committed
        while not queue.empty():
            chunk = queue.get_nowait()
            sent = time.perf_counter()
            response = await client.post(
                "/v1/txs/batch?wait=commit", content=msgspec.msgpack.encode(chunk), headers=_OCTETS
            )
            elapsed_ms = (time.perf_counter() - sent) * 1000
            results = response.json()["results"]
            committed += sum(map(_committed, results))
            latencies.extend([elapsed_ms] * len(results))

    await asyncio.gather(*(worker() for _ in range(inflight)))
    return committed, latencies


async def _single(client: httpx.AsyncClient, raws: list[bytes], clients: int) -> Any:
    latencies: list[float] = []
    committed = 0
    pending = iter(raws)

    async def worker() -> None:
        nonlocal committed
        # A client of its own per worker: one shared pool of 64 connections spends more
        # time in its own bookkeeping than the node spends on the requests.
        async with httpx.AsyncClient(base_url=client.base_url, timeout=600) as own:
            for raw in pending:
                sent = time.perf_counter()
                response = await own.post("/v1/txs?wait=commit", content=raw, headers=_OCTETS)
                latencies.append((time.perf_counter() - sent) * 1000)
                committed += _committed(response.json())

    await asyncio.gather(*(worker() for _ in range(clients)))
    return committed, latencies


async def _paced(client: httpx.AsyncClient, raws: list[bytes], rate: float, size: int) -> Any:
    latencies: list[float] = []
    committed = 0

    async def send(chunk: list[bytes]) -> None:
        nonlocal committed
        sent = time.perf_counter()
        response = await client.post(
            "/v1/txs/batch?wait=commit", content=msgspec.msgpack.encode(chunk), headers=_OCTETS
        )
        elapsed_ms = (time.perf_counter() - sent) * 1000
        results = response.json()["results"]
        committed += sum(map(_committed, results))
        latencies.extend([elapsed_ms] * len(results))

    period = size / rate
    start = time.perf_counter()
    tasks = []
    for index in range(0, len(raws), size):
        due = start + (index // size) * period
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(raws[index : index + size])))
    await asyncio.gather(*tasks)
    return committed, latencies


async def _run(url: str, mode: str, raws: list[bytes], args: list[str]) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=600) as client:
        started = time.perf_counter()
        if mode == "batch":
            committed, latencies = await _batch(client, raws, int(args[0]), int(args[1]))
        elif mode == "single":
            committed, latencies = await _single(client, raws, int(args[0]))
        else:
            committed, latencies = await _paced(client, raws, float(args[0]), int(args[1]))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "committed": committed, "latencies_ms": latencies}


def main() -> None:
    """`python -m tally.bench.load URL TXS_FILE MODE ARGS...`; prints one JSON line."""
    url, path, mode, *args = sys.argv[1:]
    raws = msgspec.msgpack.decode(Path(path).read_bytes(), type=list[bytes])
    result = asyncio.run(_run(url, mode, raws, args))
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
