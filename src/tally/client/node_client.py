"""Clients of a node's HTTP API: `NodeClient` (blocking) and `AsyncNodeClient` (asyncio).

Both offer the same methods with the same meaning. What a call sends and how its answer is
read live once, in `_Call` and `_read`; the two classes differ only in how they move bytes.
Answers are the API's JSON documents as dicts (amounts as decimal strings, ids as hex);
`tally.client.wire` turns coin views back into protocol objects.

A refusal (4xx) raises `NodeRejection` with the node's code; no answer at all raises
`NodeUnreachable` naming the URL; anything else the API does not promise raises
`NodeResponseError`. For tests, pass `transport=` (an `httpx.MockTransport`, or for the
asynchronous client an `httpx.ASGITransport` over the node's app), or a ready `client=`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Generator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from tally.client.errors import NodeRejection, NodeResponseError, NodeUnreachable
from tally.model.encoding import encode
from tally.model.tx import SignedTx

__all__ = ["NodeClient", "AsyncNodeClient", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 30.0
"""Seconds a call waits for the node, including a commit it waits for."""
_EVENT_READ_TIMEOUT = 60.0
"""Seconds without a byte on the event stream before it counts as dead; the node sends a
keep-alive comment every 15 seconds."""
_POLL_INTERVAL = 0.05
_OCTETS = {"content-type": "application/octet-stream"}

# Any: JSON documents as the API returns them; their shapes are documented in the README
# and in `tally.node.views`.
JsonDict = dict[str, Any]


@dataclass(frozen=True)
class _Call:
    """One request, built without I/O."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _hex_id(value: bytes | str, what: str) -> str:
    text = value.hex() if isinstance(value, bytes | bytearray) else value.lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{what} is 32 bytes (64 hex digits), got {str(value)[:80]!r}")
    return text


def _tx_bytes(tx: SignedTx | bytes) -> bytes:
    return encode(tx) if isinstance(tx, SignedTx) else bytes(tx)


def _wait_params(wait: bool) -> dict[str, str]:
    return {"wait": "commit"} if wait else {}


def _submit_call(tx: SignedTx | bytes, wait: bool) -> _Call:
    return _Call("POST", "/v1/txs", _wait_params(wait), _tx_bytes(tx), _OCTETS)


def _batch_call(txs: Sequence[SignedTx | bytes], wait: bool) -> _Call:
    body = encode([_tx_bytes(tx) for tx in txs])
    return _Call("POST", "/v1/txs/batch", _wait_params(wait), body, _OCTETS)


def _block_call(height_or_latest: int | str) -> _Call:
    if height_or_latest == "latest":
        return _Call("GET", "/v1/blocks/latest")
    text = str(height_or_latest)
    if not text.isdigit():
        raise ValueError(f"a block is a height (0, 1, …) or 'latest', got {text[:40]!r}")
    return _Call("GET", f"/v1/blocks/{int(text)}")


def _address_call(address: str, limit: int | None) -> _Call:
    params = {"limit": str(limit)} if limit is not None else {}
    return _Call("GET", f"/v1/addresses/{quote(address, safe='')}/coins", params)


def _inclusion_call(txid: bytes | str) -> _Call:
    return _Call("GET", f"/v1/txs/{_hex_id(txid, 'a txid')}/inclusion")


def _barred_call(owner: bytes | str) -> _Call:
    return _Call("GET", f"/v1/offline/barred/{_hex_id(owner, 'an owner key')}")


def _read(response: httpx.Response) -> Any:  # Any: the JSON document
    """The JSON body of a successful answer, or the exception the answer stands for."""
    try:
        document = response.json()
    except ValueError:
        document = None
    if response.status_code >= 500 or (response.status_code >= 400 and document is None):
        message = document.get("message") if isinstance(document, dict) else None
        raise NodeResponseError(
            f"the node answered {response.status_code} to {response.request.method} "
            f"{response.request.url.path}: {message or response.text[:200] or 'no body'}",
            response.status_code,
        )
    if response.status_code >= 400:
        if not isinstance(document, dict) or not isinstance(document.get("code"), str):
            raise NodeResponseError(
                f"the node refused with {response.status_code} but no code: {response.text[:200]}",
                response.status_code,
            )
        detail = document.get("detail")
        raise NodeRejection(
            document["code"],
            str(document.get("message", "")),
            detail if isinstance(detail, dict) else {},
            response.status_code,
        )
    if document is None:
        raise NodeResponseError(
            f"the node's answer to {response.request.url.path} is not JSON", response.status_code
        )
    return document


def _read_dict(response: httpx.Response) -> JsonDict:
    document = _read(response)
    if not isinstance(document, dict):
        raise NodeResponseError(
            f"the node's answer to {response.request.url.path} is not a JSON object",
            response.status_code,
        )
    return document


def _read_batch(response: httpx.Response) -> list[JsonDict]:
    results = _read_dict(response).get("results")
    if not isinstance(results, list):
        raise NodeResponseError('a batch answer has a "results" list', response.status_code)
    return results


class _EventParser:
    """Server-sent events, line by line: `event:` and `data:` lines up to a blank line."""

    def __init__(self) -> None:
        self._name = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> JsonDict | None:
        """Take one line (without its newline); return an event when a blank line ends one."""
        if not line:
            if not self._data:
                self._name = "message"
                return None
            payload, name = "\n".join(self._data), self._name
            self._name, self._data = "message", []
            try:
                document = json.loads(payload)
            except ValueError:
                document = {"data": payload}
            if not isinstance(document, dict):
                document = {"data": document}
            document.setdefault("type", name)
            return document
        if line.startswith(":"):
            return None  # a comment: the node's keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._name = value
        elif name == "data":
            self._data.append(value)
        return None


def _unreachable(base_url: str, exc: httpx.TransportError, timeout: float) -> NodeUnreachable:
    if isinstance(exc, httpx.TimeoutException):
        return NodeUnreachable(base_url, f"no answer within {timeout:g} s ({type(exc).__name__})")
    return NodeUnreachable(base_url, str(exc) or type(exc).__name__)


def _stream_timeout(
    timeout: float, read_timeout: float | None, owned: bool
) -> httpx.Timeout | httpx._client.UseClientDefault:
    # A client passed in keeps its own timeouts (Starlette's test client refuses others).
    return httpx.Timeout(timeout, read=read_timeout) if owned else httpx.USE_CLIENT_DEFAULT


class NodeClient:
    """A blocking client of one node's HTTP API.

    Use it as a context manager, or call `close()`, to release its connections.

    Args:
        base_url: The node's API, such as `http://127.0.0.1:7545`.
        timeout: Seconds each call may take, a commit it waits for included.
        transport: An httpx transport to use instead of the network (tests).
        client: A ready `httpx.Client` to send through (such as Starlette's `TestClient`);
            the caller keeps ownership of it.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._owned = client is None
        self._http = (
            client if client is not None else httpx.Client(transport=transport, timeout=timeout)
        )

    def close(self) -> None:
        """Release the connections (not those of a client passed in)."""
        if self._owned:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: _Call) -> httpx.Response:
        try:
            return self._http.request(
                call.method,
                self.base_url + call.path,
                params=call.params,
                content=call.content,
                headers=call.headers,
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc, self.timeout) from exc

    def submit(self, tx: SignedTx | bytes, wait: bool = True) -> JsonDict:
        """Send one transaction (a `SignedTx` or its canonical bytes).

        Args:
            tx: The transaction.
            wait: Wait until its block is committed.

        Returns:
            `{"txid", "status": "committed"|"rejected", "height", "index", "receipt"}` once
            committed, or `{"txid", "status": "pending"}` when not waiting.

        Raises:
            NodeRejection: the node refused it before ordering (bad signature, spent input…).
            NodeUnreachable: no answer; the transaction may still be committed.
        """
        return _read_dict(self._send(_submit_call(tx, wait)))

    def submit_batch(self, txs: Sequence[SignedTx | bytes], wait: bool = False) -> list[JsonDict]:
        """Send many transactions in one request.

        Returns:
            One entry per transaction, in order: a result as `submit` returns it, or a
            refusal `{"code", "message", "detail"}`.

        Raises:
            NodeRejection: the batch as a whole was refused (too large, malformed).
            NodeUnreachable: no answer.
        """
        return _read_batch(self._send(_batch_call(txs, wait)))

    def tx(self, txid: bytes | str) -> JsonDict:
        """A transaction, pending or committed, with its receipt once committed.

        Raises:
            NodeRejection: `not_found` if the node has never seen it.
        """
        return _read_dict(self._send(_Call("GET", f"/v1/txs/{_hex_id(txid, 'a txid')}")))

    def inclusion(self, txid: bytes | str) -> JsonDict:
        """What proves offline that a transaction is in a final block.

        Returns:
            `{"txid", "height", "index", "tx", "receipt", "proof", "header", "certificate"}`,
            the last five hex of the canonical bytes of a `SignedTx`, `Receipt`,
            `TxInclusionProof`, `Header` and `CommitCertificate` (check them with
            `tally.rules.offline.verify_tx_inclusion` and `check_certificate`).

        Raises:
            NodeRejection: `not_found` if the transaction is not in a block (yet).
        """
        return _read_dict(self._send(_inclusion_call(txid)))

    def double_spend_proofs(self, owner: bytes | str) -> JsonDict:
        """Whether a key is barred from offline locks, with the proofs of its double spends.

        Returns:
            `{"owner", "barred": bool, "proofs": [hex of a DoubleSpendProof, ...]}`; check
            each with `tally.rules.offline.verify_double_spend_proof`.
        """
        return _read_dict(self._send(_barred_call(owner)))

    def coin(self, coin_id: bytes | str) -> JsonDict:
        """A coin, unspent or spent (and by which transaction).

        Raises:
            NodeRejection: `not_found` if no such coin was ever created.
        """
        return _read_dict(self._send(_Call("GET", f"/v1/coins/{_hex_id(coin_id, 'a coin id')}")))

    def address_coins(self, address: str, limit: int | None = None) -> JsonDict:
        """The unspent coins and the balance per asset of an address.

        Raises:
            NodeRejection: `address.invalid` for an address of another network.
        """
        return _read_dict(self._send(_address_call(address, limit)))

    def block(self, height_or_latest: int | str = "latest") -> JsonDict:
        """A block with its transactions, receipts and commit certificate.

        Raises:
            NodeRejection: `not_found` above the tip, and for height 0 (genesis).
        """
        return _read_dict(self._send(_block_call(height_or_latest)))

    def supply(self) -> JsonDict:
        """Issued, redeemed and outstanding amounts per asset."""
        return _read_dict(self._send(_Call("GET", "/v1/supply")))

    def status(self) -> JsonDict:
        """Chain id, height, tip hash, state commitment and mempool size."""
        return _read_dict(self._send(_Call("GET", "/v1/status")))

    def metrics(self) -> str:
        """The node's Prometheus metrics, as text."""
        response = self._send(_Call("GET", "/metrics"))
        if response.status_code != 200:
            _read(response)
        return response.text

    def events(
        self, read_timeout: float | None = _EVENT_READ_TIMEOUT
    ) -> Generator[JsonDict, None, None]:
        """Follow the node's event stream until the caller stops iterating.

        The first event is `{"type": "hello", "height": h}`; then one
        `{"type": "block", "height", "tx_count", "receipts", …}` per committed block.
        Close the generator (or use `contextlib.closing`) to end the stream.

        Args:
            read_timeout: Seconds of silence after which the stream counts as dead
                (`NodeUnreachable`); None waits forever.

        Yields:
            Each event's data, with its name under `"type"`.
        """
        timeout = _stream_timeout(self.timeout, read_timeout, self._owned)
        try:
            with self._http.stream("GET", self.base_url + "/v1/events", timeout=timeout) as reply:
                if reply.status_code != 200:
                    reply.read()
                    _read(reply)
                parser = _EventParser()
                for line in reply.iter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        yield event
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc, read_timeout or self.timeout) from exc

    def wait_for_height(self, height: int, timeout: float = DEFAULT_TIMEOUT) -> JsonDict:
        """Wait until the node has committed `height`.

        Returns:
            The node's status at or after `height`.

        Raises:
            TimeoutError: the node did not reach `height` within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status.get("height", -1) >= height:
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the node at {self.base_url} is at height {status.get('height')}, "
                    f"not {height}, after {timeout:g} s"
                )
            time.sleep(_POLL_INTERVAL)


class AsyncNodeClient:
    """An asyncio client of one node's HTTP API; the methods of `NodeClient`, awaited.

    Args:
        base_url: The node's API, such as `http://127.0.0.1:7545`.
        timeout: Seconds each call may take, a commit it waits for included.
        transport: An httpx transport to use instead of the network (such as
            `httpx.ASGITransport(app)` in tests).
        client: A ready `httpx.AsyncClient` to send through; the caller keeps ownership.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._owned = client is None
        self._http = (
            client
            if client is not None
            else httpx.AsyncClient(transport=transport, timeout=timeout)
        )

    async def aclose(self) -> None:
        """Release the connections (not those of a client passed in)."""
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: _Call) -> httpx.Response:
        try:
            return await self._http.request(
                call.method,
                self.base_url + call.path,
                params=call.params,
                content=call.content,
                headers=call.headers,
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc, self.timeout) from exc

    async def submit(self, tx: SignedTx | bytes, wait: bool = True) -> JsonDict:
        """Send one transaction; see `NodeClient.submit`."""
        return _read_dict(await self._send(_submit_call(tx, wait)))

    async def submit_batch(
        self, txs: Sequence[SignedTx | bytes], wait: bool = False
    ) -> list[JsonDict]:
        """Send many transactions in one request; see `NodeClient.submit_batch`."""
        return _read_batch(await self._send(_batch_call(txs, wait)))

    async def tx(self, txid: bytes | str) -> JsonDict:
        """A transaction, pending or committed; see `NodeClient.tx`."""
        return _read_dict(await self._send(_Call("GET", f"/v1/txs/{_hex_id(txid, 'a txid')}")))

    async def inclusion(self, txid: bytes | str) -> JsonDict:
        """What proves a transaction final offline; see `NodeClient.inclusion`."""
        return _read_dict(await self._send(_inclusion_call(txid)))

    async def double_spend_proofs(self, owner: bytes | str) -> JsonDict:
        """Whether a key is barred, with its proofs; see `NodeClient.double_spend_proofs`."""
        return _read_dict(await self._send(_barred_call(owner)))

    async def coin(self, coin_id: bytes | str) -> JsonDict:
        """A coin, unspent or spent; see `NodeClient.coin`."""
        call = _Call("GET", f"/v1/coins/{_hex_id(coin_id, 'a coin id')}")
        return _read_dict(await self._send(call))

    async def address_coins(self, address: str, limit: int | None = None) -> JsonDict:
        """The unspent coins and balance of an address; see `NodeClient.address_coins`."""
        return _read_dict(await self._send(_address_call(address, limit)))

    async def block(self, height_or_latest: int | str = "latest") -> JsonDict:
        """A block with receipts and certificate; see `NodeClient.block`."""
        return _read_dict(await self._send(_block_call(height_or_latest)))

    async def supply(self) -> JsonDict:
        """Issued, redeemed and outstanding amounts per asset."""
        return _read_dict(await self._send(_Call("GET", "/v1/supply")))

    async def status(self) -> JsonDict:
        """Chain id, height, tip hash, state commitment and mempool size."""
        return _read_dict(await self._send(_Call("GET", "/v1/status")))

    async def metrics(self) -> str:
        """The node's Prometheus metrics, as text."""
        response = await self._send(_Call("GET", "/metrics"))
        if response.status_code != 200:
            _read(response)
        return response.text

    async def events(
        self, read_timeout: float | None = _EVENT_READ_TIMEOUT
    ) -> AsyncGenerator[JsonDict, None]:
        """Follow the node's event stream; see `NodeClient.events`.

        Yields:
            Each event's data, with its name under `"type"`.
        """
        timeout = _stream_timeout(self.timeout, read_timeout, self._owned)
        try:
            async with self._http.stream(
                "GET", self.base_url + "/v1/events", timeout=timeout
            ) as reply:
                if reply.status_code != 200:
                    await reply.aread()
                    _read(reply)
                parser = _EventParser()
                async for line in reply.aiter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        yield event
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc, read_timeout or self.timeout) from exc

    async def wait_for_height(self, height: int, timeout: float = DEFAULT_TIMEOUT) -> JsonDict:
        """Wait until the node has committed `height`; see `NodeClient.wait_for_height`.

        Raises:
            TimeoutError: the node did not reach `height` within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            status = await self.status()
            if status.get("height", -1) >= height:
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the node at {self.base_url} is at height {status.get('height')}, "
                    f"not {height}, after {timeout:g} s"
                )
            await asyncio.sleep(_POLL_INTERVAL)
