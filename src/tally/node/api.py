"""The node's HTTP API (FastAPI): thin routes over `Node`, errors mapped in one place.

Every refusal is a `Rejection`, answered as `{"code", "message", "detail"}` with its 4xx
status by `_rejection_response`; anything else is a bare 500 whose details go to the log
only. Request bodies are parsed here, not by FastAPI's validation, so that malformed input
gets our own stable codes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tally.model.address import parse_address
from tally.model.encoding import encode
from tally.model.rejection import Rejection
from tally.model.types import CoinId, Height, PublicKey, TxId
from tally.node.core import Node, TxResult
from tally.node.errors import BadRequestError, NotFoundError, UnsupportedMediaError
from tally.node.metrics import NodeMetrics
from tally.node.requests import parse_batch, parse_height, parse_hex_id, parse_tx_json
from tally.node.views import (
    barred_json,
    block_json,
    coin_json,
    inclusion_json,
    receipt_json,
    tx_json,
)

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_SSE_KEEPALIVE_S = 15.0


def _rejection_response(rejection: Rejection) -> JSONResponse:
    return JSONResponse(status_code=rejection.http_status, content=rejection.to_dict())


def _result_json(result: TxResult) -> dict[str, Any]:
    return {
        "txid": result.txid.hex(),
        "status": "committed" if result.receipt.accepted else "rejected",
        "height": result.height,
        "index": result.index,
        "receipt": receipt_json(result.receipt),
    }


def create_app(node: Node, *, verify_threads: int = 0) -> FastAPI:
    """The FastAPI application serving `node`."""
    pool = ThreadPoolExecutor(
        max_workers=verify_threads or os.cpu_count() or 2, thread_name_prefix="admit"
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="Tally node", version="1", docs_url="/docs", redoc_url=None, lifespan=lifespan
    )
    metrics = NodeMetrics(node)
    hrp = node.genesis.hrp
    app.state.node = node
    app.state.metrics = metrics

    @app.exception_handler(Rejection)
    async def on_rejection(_: Request, exc: Rejection) -> JSONResponse:
        return _rejection_response(exc)

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error serving %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            status_code=500, content={"code": "internal", "message": "internal error"}
        )

    async def read_tx_body(request: Request) -> bytes:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        body = await request.body()
        if content_type == "application/octet-stream":
            return body
        if content_type in ("application/json", ""):
            return parse_tx_json(body)
        raise UnsupportedMediaError(
            f"content type {content_type!r}; use application/json or application/octet-stream"
        )

    async def admit(raw: bytes) -> tuple[TxId, Future[TxResult]]:
        loop = asyncio.get_running_loop()
        try:
            admitted = await loop.run_in_executor(pool, node.admit, raw)
        except Rejection as rejection:
            metrics.refused.labels(code=rejection.code).inc()
            raise
        metrics.admitted.inc()
        return admitted

    @app.post("/v1/txs")
    async def submit_tx(request: Request, wait: str = "none") -> Response:
        if wait not in ("none", "commit"):
            raise BadRequestError("wait must be 'none' or 'commit'")
        txid, future = await admit(await read_tx_body(request))
        if wait == "commit" or future.done():
            result = await asyncio.wrap_future(future)
            return JSONResponse(status_code=200, content=_result_json(result))
        return JSONResponse(status_code=202, content={"txid": txid.hex(), "status": "pending"})

    @app.post("/v1/txs/batch")
    async def submit_batch(request: Request, wait: str = "none") -> Response:
        if wait not in ("none", "commit"):
            raise BadRequestError("wait must be 'none' or 'commit'")
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != "application/octet-stream":
            raise UnsupportedMediaError(
                "the batch body is a MessagePack array of canonical transactions "
                "(application/octet-stream)"
            )
        raws = parse_batch(await request.body())
        loop = asyncio.get_running_loop()
        outcomes = await loop.run_in_executor(pool, _admit_many, node, raws)
        results: list[dict[str, Any]] = []
        for outcome in outcomes:
            if isinstance(outcome, Rejection):
                metrics.refused.labels(code=outcome.code).inc()
                results.append(outcome.to_dict())
                continue
            metrics.admitted.inc()
            txid, future = outcome
            if wait == "commit" or future.done():
                results.append(_result_json(await asyncio.wrap_future(future)))
            else:
                results.append({"txid": txid.hex(), "status": "pending"})
        return JSONResponse(status_code=200, content={"results": results})

    @app.get("/v1/txs/{txid}")
    def get_tx(txid: str) -> dict[str, Any]:
        key = TxId(parse_hex_id(txid, "txid"))
        result = node.result(key)
        if result is not None:
            block = node.store.block(result.height)
            view = _result_json(result)
            if block is not None:
                view["tx"] = tx_json(block.txs[result.index], hrp, key)
            return view
        pending = node.mempool.get(key)
        if pending is not None:
            return {"txid": txid, "status": "pending", "tx": tx_json(pending.tx, hrp, key)}
        raise NotFoundError(f"no transaction {txid} is pending or committed", txid=txid)

    @app.get("/v1/txs/{txid}/inclusion")
    def get_tx_inclusion(txid: str) -> dict[str, Any]:
        key = TxId(parse_hex_id(txid, "txid"))
        inclusion = node.store.inclusion(key)
        if inclusion is None:
            if node.mempool.get(key) is not None:
                raise NotFoundError(f"transaction {txid} is pending, not yet in a block", txid=txid)
            raise NotFoundError(f"no transaction {txid} was ordered", txid=txid)
        return inclusion_json(inclusion)

    @app.get("/v1/offline/barred/{owner}")
    def get_offline_barred(owner: str) -> dict[str, Any]:
        key = PublicKey(parse_hex_id(owner, "owner key"))
        barred = node.store.is_barred(key)
        return barred_json(key, barred, node.store.double_spend_proofs(key) if barred else [])

    @app.get("/v1/coins/{coin_id}")
    def get_coin(coin_id: str) -> dict[str, Any]:
        cid = CoinId(parse_hex_id(coin_id, "coin id"))
        coin = node.store.coin(cid)
        if coin is not None:
            return {"status": "unspent", **coin_json(cid, coin, hrp)}
        spent = node.store.spent(cid)
        if spent is not None:
            spender, spent_coin = spent
            return {"status": "spent", "spent_by": spender.hex(), **coin_json(cid, spent_coin, hrp)}
        raise NotFoundError(f"no coin {coin_id}", coin_id=coin_id)

    @app.get("/v1/addresses/{address}/coins")
    def get_address_coins(address: str, limit: int = 1000) -> dict[str, Any]:
        lock_hash = parse_address(address, hrp)
        coins = node.store.coins_of(lock_hash, limit=max(1, min(limit, 10_000)))
        balance: dict[str, int] = {}
        for _, coin in coins:
            balance[coin.asset] = balance.get(coin.asset, 0) + coin.amount
        return {
            "address": address,
            "balance": {asset: str(total) for asset, total in sorted(balance.items())},
            "coins": [coin_json(cid, coin, hrp) for cid, coin in coins],
        }

    @app.get("/v1/blocks/latest")
    def get_latest_block() -> dict[str, Any]:
        height, _ = node.store.tip()
        return _block_view(node, Height(height), hrp)

    @app.get("/v1/blocks/{height}")
    def get_block(height: str) -> dict[str, Any]:
        return _block_view(node, Height(parse_height(height)), hrp)

    @app.get("/v1/blocks/{height}/certified")
    def get_certified_block(height: str) -> Response:
        """The block's canonical bytes and its certificate's, as a MessagePack pair.

        What observers and lagging nodes fetch: they check the certificate against the
        members' keys and re-execute the block before they keep it.
        """
        found = node.committed_block(parse_height(height))
        if found is None:
            raise NotFoundError(f"no block at height {height}", height=height)
        raw, certificate = found
        return Response(
            content=encode((raw, encode(certificate))), media_type="application/octet-stream"
        )

    @app.get("/v1/supply")
    def get_supply() -> dict[str, Any]:
        return {
            "assets": {
                asset: {
                    "issued": str(supply.issued),
                    "redeemed": str(supply.redeemed),
                    "outstanding": str(supply.outstanding),
                }
                for asset, supply in node.store.supplies()
            }
        }

    @app.get("/v1/status")
    def get_status() -> dict[str, Any]:
        return node.status()

    @app.get("/v1/events")
    async def get_events(request: Request) -> StreamingResponse:
        return StreamingResponse(_event_stream(node, request), media_type="text/event-stream")

    @app.get("/metrics")
    def get_metrics() -> Response:
        return Response(content=metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def _admit_many(node: Node, raws: list[bytes]) -> list[tuple[TxId, Future[TxResult]] | Rejection]:
    outcomes: list[tuple[TxId, Future[TxResult]] | Rejection] = []
    for raw in raws:
        try:
            outcomes.append(node.admit(raw))
        except Rejection as rejection:
            outcomes.append(rejection)
    return outcomes


def _block_view(node: Node, height: Height, hrp: str) -> dict[str, Any]:
    if height == 0:
        raise NotFoundError("height 0 is genesis, which has no block", height=0)
    block = node.store.block(height)
    if block is None:
        raise NotFoundError(f"no block at height {height}", height=height)
    return block_json(block, node.store.certificate(height), hrp)


async def _event_stream(node: Node, request: Request) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

    def deliver(event: dict[str, Any]) -> None:
        def put() -> None:
            if not queue.full():  # a slow reader loses events rather than memory
                queue.put_nowait(event)

        loop.call_soon_threadsafe(put)

    node.subscribe(deliver)
    try:
        height, _ = node.store.tip()
        yield f"event: hello\ndata: {msgspec.json.encode({'height': height}).decode()}\n\n".encode()
        while not await request.is_disconnected():
            try:
                event = await asyncio.wait_for(queue.get(), timeout=_SSE_KEEPALIVE_S)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            yield b"event: block\ndata: " + msgspec.json.encode(event) + b"\n\n"
    finally:
        node.unsubscribe(deliver)
