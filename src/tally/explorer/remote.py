"""`RemoteSource`: the explorer's `LedgerSource` over a node's HTTP API.

Used by `tally explorer --node URL`. Blocks never change once committed, so their headers
are cached; everything else is asked for on each page. What the API does not offer is
left out rather than guessed at great cost:

- a block hash is found only among the blocks the explorer has seen (its index), since the
  API looks blocks up by height alone;
- the address prefix and the member list come from `/v1/status` when the node puts them
  there, else from the `hrp` argument and the answering node's name.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from tally.client.errors import NodeError, NodeRejection
from tally.client.node_client import NodeClient
from tally.explorer.source import (
    Activity,
    Creator,
    EventCallback,
    Json,
    NetworkInfo,
    SourceUnavailableError,
    TxFlow,
)
from tally.model.address import parse_address
from tally.model.rejection import Rejection

__all__ = ["RemoteSource"]

log = logging.getLogger(__name__)

_HEADER_CACHE = 4096
_RECONNECT_S = 2.0
T = TypeVar("T")


class RemoteSource:
    """Reads one node's ledger through its HTTP API.

    Args:
        node_url: The node's API, such as `http://127.0.0.1:7545`.
        hrp: The network's address prefix, when the node's status does not name it.
        timeout: Seconds each request may take.
        client: A ready client (tests pass one over an in-process app).
    """

    def __init__(
        self,
        node_url: str,
        *,
        hrp: str | None = None,
        timeout: float = 10.0,
        client: NodeClient | None = None,
    ) -> None:
        self._client = client if client is not None else NodeClient(node_url, timeout=timeout)
        self._owns_client = client is None
        self._hrp = hrp
        self._headers: OrderedDict[int, Json] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._subscribers: list[EventCallback] = []
        self._subscribers_lock = threading.Lock()
        self._stopping = threading.Event()
        self._follower: threading.Thread | None = None

    def _call(self, read: Callable[[], T]) -> T | None:
        """Run one API call: None for a refusal (not found, malformed), raise when unreachable."""
        try:
            return read()
        except NodeRejection:
            return None
        except NodeError as exc:
            raise SourceUnavailableError(str(exc)) from exc

    def _required(self, read: Callable[[], T]) -> T:
        answer = self._call(read)
        if answer is None:
            raise SourceUnavailableError("the node refused a request every node answers")
        return answer

    def network(self) -> NetworkInfo:
        """Chain id, prefix and members from the node's status."""
        status = self.status()
        members_json: list[Any] = status.get("members") or []
        members = tuple(
            (str(m.get("name", "")), str(m.get("key", "")))
            for m in members_json
            if isinstance(m, dict)
        ) or ((str(status.get("node", "node")), ""),)
        interval = status.get("block_interval_ms")
        return NetworkInfo(
            chain_id=str(status.get("chain_id", "")),
            hrp=self._hrp or str(status.get("hrp") or "tly"),
            members=members,
            block_interval_ms=interval if isinstance(interval, int) else None,
        )

    def status(self) -> Json:
        """The node's `/v1/status`."""
        return self._required(self._client.status)

    def tip(self) -> int:
        """The node's height."""
        return int(self.status()["height"])

    def header(self, height: int) -> Json | None:
        """A block header, cached: committed blocks never change."""
        with self._cache_lock:
            cached = self._headers.get(height)
            if cached is not None:
                self._headers.move_to_end(height)
                return cached
        block = self.block(height)
        return None if block is None else block["header"]

    def block(self, height: int) -> Json | None:
        """The block at `height` from `/v1/blocks/{height}`."""
        if height < 1:
            return None
        block = self._call(lambda: self._client.block(height))
        if block is not None:
            with self._cache_lock:
                self._headers[height] = block["header"]
                while len(self._headers) > _HEADER_CACHE:
                    self._headers.popitem(last=False)
        return block

    def height_of(self, digest: bytes) -> int | None:
        """A block's height by hash, among the cached headers (the API has no such query)."""
        wanted = digest.hex()
        with self._cache_lock:
            for height, header in self._headers.items():
                if header.get("hash") == wanted:
                    return height
        return None

    def tx(self, txid: bytes) -> Json | None:
        """`/v1/txs/{txid}`."""
        return self._call(lambda: self._client.tx(txid))

    def coin(self, cid: bytes) -> Json | None:
        """`/v1/coins/{id}`."""
        return self._call(lambda: self._client.coin(cid))

    def address_coins(self, address: str, limit: int) -> Json:
        """`/v1/addresses/{address}/coins`.

        Raises:
            BadAddressError: not an address of this network.
        """
        parse_address(address, self.network().hrp)
        answer = self._call(lambda: self._client.address_coins(address, limit))
        if answer is None:
            raise SourceUnavailableError("the node refused an address it should know")
        return answer

    def supply(self) -> dict[str, dict[str, int]]:
        """`/v1/supply`, amounts as integers."""
        document = self._required(self._client.supply)
        return {
            asset: {name: int(value) for name, value in totals.items()}
            for asset, totals in document.get("assets", {}).items()
        }

    def certificate_view(self, height: int) -> int | None:
        """The view in the certificate of the block at `height`."""
        block = self.block(height)
        certificate = None if block is None else block.get("certificate")
        return None if certificate is None else int(certificate["view"])

    def flows(self, height: int) -> list[TxFlow] | None:
        """The accepted transactions' coins, from the block's JSON."""
        block = self.block(height)
        if block is None:
            return None
        hrp = self.network().hrp
        flows: list[TxFlow] = []
        for tx in block["txs"]:
            if not tx["receipt"]["accepted"]:
                continue
            try:
                outputs = tuple(
                    (
                        bytes.fromhex(out["coin_id"]),
                        bytes(parse_address(out["lock"]["address"], hrp)),
                    )
                    for out in tx.get("outputs", [])
                )
            except (Rejection, ValueError, KeyError):
                outputs = ()
            flows.append(
                TxFlow(
                    txid=bytes.fromhex(tx["txid"]),
                    inputs=tuple(bytes.fromhex(cid) for cid in tx.get("inputs", [])),
                    outputs=outputs,
                )
            )
        return flows

    def spent_lock_hash(self, cid: bytes) -> bytes | None:
        """Not looked up: one request per input would cost more than it shows."""
        del cid
        return None

    def creator(self, cid: bytes) -> Creator | None:
        """The node's API has no origin lookup: the explorer's index answers instead."""
        del cid
        return None

    def activity(self, address_hash: bytes, limit: int) -> list[Activity] | None:
        """The node's API has no history lookup: the explorer's index answers instead."""
        del address_hash, limit
        return None

    def subscribe(self, callback: EventCallback) -> None:
        """Follow the node's `/v1/events` on a background thread."""
        with self._subscribers_lock:
            self._subscribers.append(callback)
            if self._follower is None:
                self._follower = threading.Thread(
                    target=self._follow, name="explorer-events", daemon=True
                )
                self._follower.start()

    def unsubscribe(self, callback: EventCallback) -> None:
        """Stop calling `callback`."""
        with self._subscribers_lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def _follow(self) -> None:
        while not self._stopping.is_set():
            try:
                with contextlib.closing(self._client.events()) as events:
                    for event in events:
                        if self._stopping.is_set():
                            return
                        if event.get("type") == "block":
                            self._publish(event)
            except NodeError as exc:
                log.info("event stream of the node ended (%s); reconnecting", exc)
            except Exception:  # a thread boundary: log, wait, try again
                log.exception("following the node's events failed")
            self._stopping.wait(_RECONNECT_S)

    def _publish(self, event: Json) -> None:
        with self._subscribers_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # one subscriber's failure must not stop the others
                log.exception("explorer event subscriber failed")

    def close(self) -> None:
        """Stop following events and close the client."""
        self._stopping.set()
        if self._owns_client:
            self._client.close()
