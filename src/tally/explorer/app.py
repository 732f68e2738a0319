"""The explorer's routes: HTML pages, live fragments, the event stream and static files.

`mount_explorer(app, node)` adds everything under `/explorer` to a node's API application
(the process runner calls it); `create_explorer_app(node_url)` builds a stand-alone
application that reads a node over its HTTP API. Both serve the same pages.

Every page answers a malformed or unknown key with the not-found page and status 404.
A fault while rendering is logged and answered with a bare error page (500) that holds
no details; the node keeps serving either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.staticfiles import StaticFiles

from tally.explorer import format as fmt
from tally.explorer.history import ChainHistory
from tally.explorer.index import RecentIndex
from tally.explorer.pages import (
    Explorer,
    NotFoundError,
    Page,
    address_page,
    block_page,
    blocks_page,
    coin_page,
    dashboard_page,
    resolve_search,
    tx_page,
)
from tally.explorer.source import Json, LedgerSource, LocalSource, SourceUnavailableError
from tally.node.core import Node

__all__ = ["PREFIX", "mount_explorer", "create_explorer_app", "mount_source"]

log = logging.getLogger(__name__)

PREFIX = "/explorer"
"""Where the explorer's pages live in an application."""
_HERE = Path(__file__).parent
_KEEPALIVE_S = 15.0


def _static_version() -> str:
    """A digest of the static files, so that browsers fetch them again when they change."""
    digest = hashlib.sha256()
    for path in sorted((_HERE / "static").iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        amount=fmt.format_amount,
        short=fmt.short_id,
        utc=fmt.format_time,
        count=fmt.format_count,
    )
    env.globals.update(ago=fmt.format_age, base=PREFIX, static_version=_static_version())
    return env


class _Broker:
    """Fans committed-block events out to the explorer's event-stream clients.

    Subscribes once to the source; each browser gets its own bounded queue, filled on the
    loop that serves it. A slow browser loses events rather than memory.
    """

    def __init__(self, explorer: Explorer) -> None:
        self._explorer = explorer
        self._clients: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Json]]] = []
        self._lock = threading.Lock()

    def on_event(self, event: Json) -> None:
        """Called by the source on its thread for each committed block."""
        self._explorer.history.record(event)
        if self._explorer.index is not None:
            self._explorer.index.wake()
        brief = {
            "height": event.get("height"),
            "time_ms": event.get("time_ms"),
            "tx_count": event.get("tx_count"),
        }
        with self._lock:
            clients = list(self._clients)
        for loop, queue in clients:
            try:
                loop.call_soon_threadsafe(_offer, queue, brief)
            except RuntimeError:  # that client's loop has closed; its stream is gone
                self.leave(loop, queue)

    def join(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[Json]]:
        """A queue for one event-stream client."""
        entry = (asyncio.get_running_loop(), asyncio.Queue[Json](maxsize=256))
        with self._lock:
            self._clients.append(entry)
        return entry

    def leave(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Json]) -> None:
        """Forget one client."""
        with self._lock:
            if (loop, queue) in self._clients:
                self._clients.remove((loop, queue))


def _offer(queue: asyncio.Queue[Json], event: Json) -> None:
    if not queue.full():
        queue.put_nowait(event)


class _Renderer:
    """Turns `Page`s and errors into HTML responses."""

    def __init__(self, explorer: Explorer) -> None:
        self._env = _environment()
        self._explorer = explorer

    def page(self, page: Page) -> HTMLResponse:
        values = {"network": self._explorer.network(), **page.values}
        html = self._env.get_template(page.template).render(values)
        return HTMLResponse(html, status_code=page.status)

    def not_found(self, error: NotFoundError) -> HTMLResponse:
        try:
            return self.page(Page("not_found.html", {"error": error}, status=404))
        except SourceUnavailableError:
            return self.failure(503, "The node does not answer right now. Try again shortly.")

    def failure(self, status: int, message: str) -> HTMLResponse:
        try:
            html = self._env.get_template("error.html").render(status=status, message=message)
        except Exception:  # the error page itself failed: answer in plain words
            log.exception("the explorer's error page failed to render")
            html = f"<!doctype html><title>{status}</title><p>{status}: {message}</p>"
        return HTMLResponse(html, status_code=status)

    def respond(self, request: Request, build: Callable[[], Page]) -> HTMLResponse:
        """Build and render a page; 404 for not found, 503 when the node is away, else 500."""
        try:
            return self.page(build())
        except NotFoundError as error:
            return self.not_found(error)
        except SourceUnavailableError as exc:
            log.warning("explorer: the node is unavailable: %s", exc)
            return self.failure(503, "The node does not answer right now. Try again shortly.")
        except Exception:  # a fault in the explorer must not take the node's API down
            log.exception("explorer: internal error serving %s", request.url.path)
            return self.failure(500, "The explorer hit an internal error; it has been logged.")


def _router(explorer: Explorer, broker: _Broker) -> APIRouter:
    renderer = _Renderer(explorer)
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    @router.get("", response_class=HTMLResponse)
    @router.get("/", response_class=HTMLResponse)
    def dashboard(request: Request) -> HTMLResponse:
        return renderer.respond(request, lambda: dashboard_page(explorer))

    @router.get("/fragments/dashboard", response_class=HTMLResponse)
    def dashboard_fragment(request: Request) -> HTMLResponse:
        return renderer.respond(request, lambda: dashboard_page(explorer, fragment=True))

    @router.get("/blocks", response_class=HTMLResponse)
    def blocks(request: Request, start: str | None = None) -> HTMLResponse:
        return renderer.respond(request, lambda: blocks_page(explorer, start))

    @router.get("/fragments/blocks", response_class=HTMLResponse)
    def blocks_fragment(request: Request) -> HTMLResponse:
        return renderer.respond(request, lambda: blocks_page(explorer, None, fragment=True))

    @router.get("/block/{key}", response_class=HTMLResponse)
    def block(request: Request, key: str, page: str | None = None) -> HTMLResponse:
        return renderer.respond(request, lambda: block_page(explorer, key, page))

    @router.get("/tx/{key}", response_class=HTMLResponse)
    def tx(request: Request, key: str) -> HTMLResponse:
        return renderer.respond(request, lambda: tx_page(explorer, key))

    @router.get("/coin/{key}", response_class=HTMLResponse)
    def coin(
        request: Request, key: str, tx: str | None = None, out: str | None = None
    ) -> HTMLResponse:
        return renderer.respond(request, lambda: coin_page(explorer, key, tx, out))

    @router.get("/address/{key}", response_class=HTMLResponse)
    def address(request: Request, key: str) -> HTMLResponse:
        return renderer.respond(request, lambda: address_page(explorer, key))

    @router.get("/search", response_model=None)
    def search(q: str = "") -> Response:
        try:
            target = resolve_search(explorer, q[:200], PREFIX)
        except NotFoundError as error:
            return renderer.not_found(error)
        except SourceUnavailableError:
            return renderer.failure(503, "The node does not answer right now. Try again shortly.")
        except Exception:  # never a server error for what people type
            log.exception("explorer: search for %r failed", q[:200])
            return renderer.failure(500, "The explorer hit an internal error; it has been logged.")
        return RedirectResponse(target, status_code=303)

    @router.get("/events")
    async def events(request: Request) -> StreamingResponse:
        return StreamingResponse(
            _event_stream(broker, request),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    @router.get("/{rest:path}", response_class=HTMLResponse)
    def unknown(rest: str) -> HTMLResponse:
        return renderer.not_found(
            NotFoundError("page", rest, "the explorer has no page at this address")
        )

    return router


async def _event_stream(broker: _Broker, request: Request) -> AsyncIterator[bytes]:
    loop, queue = broker.join()
    try:
        yield b"retry: 2000\nevent: hello\ndata: {}\n\n"
        while not await request.is_disconnected():
            try:
                event = await asyncio.wait_for(queue.get(), timeout=_KEEPALIVE_S)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            yield b"event: block\ndata: " + msgspec.json.encode(event) + b"\n\n"
    finally:
        broker.leave(loop, queue)


def mount_source(
    app: FastAPI, source: LedgerSource, *, index: bool = True, backfill: int = 1_000
) -> Explorer:
    """Add the explorer's routes and static files over `source` to `app`.

    The explorer subscribes to the source's block events, starts its index thread, and
    stops both when the application's lifespan ends.

    Args:
        app: The application to add to.
        source: Where the ledger is read.
        index: Whether to keep the index of recent coin creators and address activity.
        backfill: How many blocks below the tip the index reads when it starts.

    Returns:
        The explorer's state (tests reach the index and history through it).
    """
    explorer = Explorer(source=source, history=ChainHistory())
    if index:
        explorer.index = RecentIndex(source, backfill=backfill)
        explorer.index.start()
    broker = _Broker(explorer)
    source.subscribe(broker.on_event)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=_HERE / "static"), name="explorer-static")
    app.include_router(_router(explorer, broker))
    app.state.explorer = explorer

    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        async with previous(application) as state:
            yield state
        source.unsubscribe(broker.on_event)
        if explorer.index is not None:
            explorer.index.stop()
        source.close()

    app.router.lifespan_context = lifespan
    return explorer


def mount_explorer(app: FastAPI, node: Node) -> None:
    """Serve the explorer of `node` under `/explorer` in the node's API application.

    Args:
        app: The node's FastAPI application (`tally.node.api.create_app`).
        node: The node whose ledger it shows.
    """
    # The node's own store keeps every coin's origin and every address's history, so the
    # in-memory index of recent blocks (which costs the node CPU under load) is not needed.
    mount_source(app, LocalSource(node), index=False)


def create_explorer_app(node_url: str, *, hrp: str | None = None, timeout: float = 10.0) -> FastAPI:
    """A stand-alone explorer of the node at `node_url`, read through its HTTP API.

    Args:
        node_url: The node's API, such as `http://127.0.0.1:7545`.
        hrp: The network's address prefix, if the node's status does not give it.
        timeout: Seconds each request to the node may take.
    """
    from tally.explorer.remote import RemoteSource  # the client is needed only here

    app = FastAPI(title="Tally explorer", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    # Each block the index reads is one request to the node: start with fewer.
    mount_source(app, RemoteSource(node_url, hrp=hrp, timeout=timeout), backfill=200)
    return app
