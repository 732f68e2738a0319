"""What each explorer page shows: the template and the values it is filled with.

Each `*_page` function reads a bounded amount from a `LedgerSource` and returns a `Page`,
or raises `NotFoundError` for a malformed or unknown key. The routes in
`tally.explorer.app` turn those into HTML responses; nothing here knows about HTTP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tally.explorer.charts import bar_chart, line_chart
from tally.explorer.history import ChainHistory
from tally.explorer.index import RecentIndex
from tally.explorer.source import Json, LedgerSource, NetworkInfo
from tally.model.address import parse_address
from tally.model.coin import coin_id
from tally.model.rejection import Rejection
from tally.model.types import TxId

__all__ = [
    "Page",
    "Explorer",
    "NotFoundError",
    "parse_height",
    "parse_id",
    "dashboard_page",
    "blocks_page",
    "block_page",
    "tx_page",
    "coin_page",
    "address_page",
    "resolve_search",
    "BLOCKS_PER_PAGE",
    "TXS_PER_PAGE",
]

BLOCKS_PER_PAGE = 25
"""Rows of the blocks list."""
TXS_PER_PAGE = 50
"""Transactions listed per page of a block."""
ADDRESS_COINS = 200
"""Unspent coins listed on an address page."""
_LATEST_BLOCKS = 8
_MAX_HEIGHT_DIGITS = 18


class NotFoundError(Exception):
    """Nothing matches what was asked for: a malformed key, or an unknown object.

    Attributes:
        what: What was looked for, for the page's heading ("block", "transaction", ...).
        key: The key as given.
    """

    def __init__(self, what: str, key: str, message: str) -> None:
        super().__init__(message)
        self.what = what
        self.key = key
        self.message = message


@dataclass
class Page:
    """A template and its values."""

    template: str
    values: dict[str, Any]
    status: int = 200


@dataclass
class Explorer:
    """What the pages read: the ledger, the recent-history memory and the index."""

    source: LedgerSource
    history: ChainHistory = field(default_factory=ChainHistory)
    index: RecentIndex | None = None

    def network(self) -> NetworkInfo:
        """The network's chain id, prefix and members."""
        return self.source.network()


# -- parsing keys ---------------------------------------------------------------------------


def parse_height(text: str) -> int | None:
    """A height written in decimal digits, or None if `text` is not one."""
    if not text or not text.isascii() or not text.isdigit() or len(text) > _MAX_HEIGHT_DIGITS:
        return None
    return int(text)


def parse_id(text: str) -> bytes | None:
    """A 32-byte id written as 64 hex digits (either case), or None."""
    if len(text) != 64 or not text.isascii():
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- shared pieces -------------------------------------------------------------------------


def _asset_totals(coins: list[Json]) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    for coin in coins:
        totals[coin["asset"]] = totals.get(coin["asset"], 0) + int(coin["amount"])
    return sorted(totals.items())


def _lock_summary(lock: Json) -> str:
    kind = lock.get("kind", "?")
    if kind == "multisig":
        return f"multisig {lock['threshold']} of {len(lock['keys'])}"
    if kind == "escrow":
        return f"escrow until height {lock['expiry']}"
    if kind == "offline":
        return f"offline until height {lock['unlock_height']}"
    return str(kind)


def _tx_summary(tx: Json) -> dict[str, Any]:
    """A one-line description of a transaction for block listings."""
    kind = tx.get("kind", "?")
    outputs = tx.get("outputs", [])
    summary = {
        "txid": tx["txid"],
        "kind": kind,
        "inputs": len(tx.get("inputs", [])),
        "outputs": len(outputs),
        "totals": _asset_totals(outputs),
        "receipt": tx.get("receipt"),
    }
    if kind == "govern":
        summary["action"] = tx["action"]["kind"].replace("_", " ")
    if kind == "redeem":
        summary["asset"] = tx["asset"]
    return summary


def _member_name(members: tuple[tuple[str, str], ...], index: int) -> str:
    return members[index][0] if 0 <= index < len(members) else f"signer {index}"


# -- dashboard and blocks --------------------------------------------------------------------


def dashboard_page(explorer: Explorer, *, fragment: bool = False) -> Page:
    """Height, throughput, mempool, interval, supply, consensus and health, live."""
    source = explorer.source
    status = source.status()
    network = explorer.network()
    tip = int(status["height"])
    explorer.history.refresh(source, tip)
    now_ms = _now_ms()
    throughput = explorer.history.throughput(tip, now_ms)
    buckets = len(throughput.rates)
    labels = [
        f"{(buckets - i) * throughput.bucket_s} s ago: "
        + ("no data" if rate is None else f"{rate:.1f} tx/s")
        for i, rate in enumerate(throughput.rates)
    ]
    supply = source.supply()
    samples = explorer.history.supply_samples()
    supply_charts = []
    for number, asset in enumerate(sorted(supply)):
        series = [(s.height, s.outstanding[asset]) for s in samples if asset in s.outstanding]
        supply_charts.append((asset, line_chart({asset: series}, first_colour=number)))
    latest = [h for h in (source.header(tip - i) for i in range(min(tip, _LATEST_BLOCKS))) if h]
    view = source.certificate_view(tip) if tip else 0
    view = view or 0
    members = network.members
    primary = _member_name(members, view % len(members)) if members else "—"
    consensus = "solo" if len(members) <= 1 else f"BFT, {len(members)} members"
    nodes = [
        {
            "name": name,
            "key": key,
            "is_primary": index == view % max(1, len(members)),
            "is_self": name == status.get("node"),
        }
        for index, (name, key) in enumerate(members)
    ]
    values = {
        "status": status,
        "network": network,
        "tip": tip,
        "now_ms": now_ms,
        "throughput": throughput,
        "tps_chart": bar_chart(throughput.rates, labels),
        "interval_ms": explorer.history.interval_ms(tip),
        "supply": supply,
        "supply_charts": supply_charts,
        "latest": latest,
        "view": view,
        "primary": primary,
        "consensus": consensus,
        "nodes": nodes,
    }
    return Page("_dashboard_live.html" if fragment else "dashboard.html", values)


def blocks_page(explorer: Explorer, start: str | None, *, fragment: bool = False) -> Page:
    """A page of blocks, newest first, from height `start` (the tip when None).

    Raises:
        NotFoundError: `start` is not a height.
    """
    tip = explorer.source.tip()
    top = tip
    if start:
        parsed = parse_height(start)
        if parsed is None:
            raise NotFoundError("blocks", start, f"{start!r} is not a block height")
        top = min(parsed, tip)
    headers = [
        h
        for h in (explorer.source.header(top - i) for i in range(min(top, BLOCKS_PER_PAGE)))
        if h is not None
    ]
    values = {
        "tip": tip,
        "top": top,
        "headers": headers,
        "live": top == tip,
        "newer": min(tip, top + BLOCKS_PER_PAGE) if top < tip else None,
        "older": top - BLOCKS_PER_PAGE if top > BLOCKS_PER_PAGE else None,
        "now_ms": _now_ms(),
    }
    return Page("_blocks_table.html" if fragment else "blocks.html", values)


def block_page(explorer: Explorer, key: str, page: str | None) -> Page:
    """A block's header, certificate and transactions with receipts.

    Args:
        explorer: What to read.
        key: A height or a block hash.
        page: Which page of the block's transactions, from 1.

    Raises:
        NotFoundError: `key` is neither, or no such block exists.
    """
    source = explorer.source
    height = parse_height(key)
    if height is None:
        digest = parse_id(key)
        if digest is None:
            raise NotFoundError("block", key, "a block is named by its height or its hash")
        height = source.height_of(digest)
        if height is None:
            raise NotFoundError("block", key, "no block has this hash")
    if height == 0:
        raise NotFoundError("block", key, "height 0 is the genesis state, not a block")
    block = source.block(height)
    if block is None:
        raise NotFoundError("block", key, f"no block at height {height} (the tip is lower)")
    page_number = parse_height(page or "1") or 1
    txs = block["txs"]
    pages = max(1, -(-len(txs) // TXS_PER_PAGE))
    page_number = min(page_number, pages)
    shown = txs[(page_number - 1) * TXS_PER_PAGE : page_number * TXS_PER_PAGE]
    network = explorer.network()
    certificate = block.get("certificate")
    signers = []
    if certificate is not None:
        signers = [
            {
                "index": s["signer"],
                "name": _member_name(network.members, s["signer"]),
                "sig": s["sig"],
            }
            for s in certificate["signatures"]
        ]
    accepted = sum(1 for tx in txs if tx["receipt"]["accepted"])
    values = {
        "header": block["header"],
        "certificate": certificate,
        "signers": signers,
        "txs": [_tx_summary(tx) for tx in shown],
        "tx_total": len(txs),
        "accepted": accepted,
        "page": page_number,
        "pages": pages,
        "offset": (page_number - 1) * TXS_PER_PAGE,
        "tip": source.tip(),
        "now_ms": _now_ms(),
    }
    return Page("block.html", values)


# -- transactions, coins, addresses -----------------------------------------------------------


def _coin_card(coin: Json | None, cid: str, *, index: int | None = None) -> dict[str, Any]:
    """One coin in the money-flow picture."""
    if coin is None:
        return {"coin_id": cid, "known": False, "index": index}
    lock = coin["lock"]
    return {
        "coin_id": cid,
        "known": True,
        "index": index,
        "asset": coin["asset"],
        "amount": int(coin["amount"]),
        "lock_kind": lock.get("kind", "?"),
        "lock_summary": _lock_summary(lock),
        "address": lock.get("address", ""),
        "status": coin.get("status"),
        "spent_by": coin.get("spent_by"),
    }


def tx_page(explorer: Explorer, key: str) -> Page:
    """A transaction's status, receipt and money flow.

    Raises:
        NotFoundError: `key` is not a transaction id, or no such transaction is known.
    """
    source = explorer.source
    txid = parse_id(key)
    if txid is None:
        raise NotFoundError("transaction", key, "a transaction id is 64 hex digits")
    found = source.tx(txid)
    if found is None or "tx" not in found:
        raise NotFoundError("transaction", key, "no pending or committed transaction has this id")
    tx = found["tx"]
    created = found["status"] == "committed"
    inputs = [_coin_card(source.coin(bytes.fromhex(cid)), cid) for cid in tx.get("inputs", [])]
    outputs = []
    for index, output in enumerate(tx.get("outputs", [])):
        card = _coin_card(output, output["coin_id"], index=index)
        card["status"] = None
        if created:
            current = source.coin(bytes.fromhex(output["coin_id"]))
            if current is not None:
                card["status"] = current["status"]
                card["spent_by"] = current.get("spent_by")
        outputs.append(card)
    header = source.header(found["height"]) if "height" in found else None
    values = {
        "found": found,
        "tx": tx,
        "txid": found["txid"],
        "kind": tx.get("kind", "?"),
        "header": header,
        "inputs": inputs,
        "outputs": outputs,
        "created": created,
        "in_totals": _asset_totals([c for c in inputs if c["known"]]),
        "out_totals": _asset_totals([c for c in outputs if c["known"]]),
        "now_ms": _now_ms(),
    }
    return Page("tx.html", values)


def _creator_from_link(cid: bytes, tx: str | None, out: str | None) -> tuple[str, int] | None:
    """The creator named by the link that led here, if it really made this coin."""
    txid = parse_id(tx or "")
    index = parse_height(out or "")
    if txid is None or index is None or index > 0xFFFF:
        return None
    if coin_id(TxId(txid), index) != cid:
        return None
    return txid.hex(), index


def coin_page(explorer: Explorer, key: str, tx: str | None = None, out: str | None = None) -> Page:
    """A coin's life: amount and lock, created by, spent by.

    Args:
        explorer: What to read.
        key: The coin id.
        tx: The creating transaction, as the link from it says (checked).
        out: The output index in it, as the link says.

    Raises:
        NotFoundError: `key` is not a coin id, or no such coin was ever created.
    """
    cid = parse_id(key)
    if cid is None:
        raise NotFoundError("coin", key, "a coin id is 64 hex digits")
    coin = explorer.source.coin(cid)
    if coin is None:
        raise NotFoundError("coin", key, "no coin with this id was ever created")
    creator: tuple[str, int] | None = None
    creator_height: int | None = None
    indexed = explorer.source.creator(cid)
    if indexed is None and explorer.index:
        indexed = explorer.index.creator(cid)
    if indexed is not None:
        creator, creator_height = (indexed.txid.hex(), indexed.index), indexed.height
    else:
        creator = _creator_from_link(cid, tx, out)
    values = {
        "coin": _coin_card(coin, cid.hex()),
        "lock": coin["lock"],
        "creator": creator,
        "creator_height": creator_height,
        "index_from": explorer.index.indexed_from if explorer.index else None,
    }
    return Page("coin.html", values)


def address_page(explorer: Explorer, key: str) -> Page:
    """An address's balance, unspent coins and recent activity.

    Raises:
        NotFoundError: `key` is not an address of this network.
    """
    network = explorer.network()
    try:
        lock_hash = parse_address(key, network.hrp)
        document = explorer.source.address_coins(key, ADDRESS_COINS)
    except Rejection:
        raise NotFoundError(
            "address", key, f"not an address of this network (they start with {network.hrp}1)"
        ) from None
    coins = [_coin_card(coin, coin["coin_id"]) for coin in document["coins"]]
    activity = explorer.source.activity(lock_hash, 50)
    if activity is None:
        activity = explorer.index.activity(lock_hash, 50) if explorer.index else []
    values = {
        "address": key,
        "balance": [(asset, int(total)) for asset, total in document["balance"].items()],
        "coins": coins,
        "truncated": len(coins) >= ADDRESS_COINS,
        "activity": activity,
        "index_from": explorer.index.indexed_from if explorer.index else None,
        "index_to": explorer.index.indexed_to if explorer.index else None,
        "lock_kinds": sorted({c["lock_kind"] for c in coins}),
    }
    return Page("address.html", values)


# -- search ---------------------------------------------------------------------------------


def resolve_search(explorer: Explorer, query: str, base: str) -> str:
    """The page a search box entry leads to.

    A height goes to its block; 64 hex digits to the block, transaction or coin with that
    id (in that order); an address of this network to its page.

    Raises:
        NotFoundError: nothing matches.
    """
    text = query.strip()
    source = explorer.source
    if not text:
        raise NotFoundError(
            "search", text, "type a height, block hash, transaction id, coin id or address"
        )
    height = parse_height(text)
    if height is not None:
        if 1 <= height <= source.tip():
            return f"{base}/block/{height}"
        raise NotFoundError("search", text, f"no block at height {height}")
    key = parse_id(text)
    if key is not None:
        found_height = source.height_of(key)
        if found_height:
            return f"{base}/block/{found_height}"
        if source.tx(key) is not None:
            return f"{base}/tx/{key.hex()}"
        if source.coin(key) is not None:
            return f"{base}/coin/{key.hex()}"
        raise NotFoundError("search", text, "no block, transaction or coin has this id")
    network = explorer.network()
    if text.lower().startswith(network.hrp + "1"):
        try:
            parse_address(text, network.hrp)
        except Rejection as exc:
            raise NotFoundError("search", text, f"not a valid address: {exc}") from None
        return f"{base}/address/{text}"
    raise NotFoundError(
        "search",
        text,
        "search takes a block height, a block hash, a transaction id, a coin id or an address",
    )
