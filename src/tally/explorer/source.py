"""Where the explorer reads the ledger: a node in the same process, or one over HTTP.

`LedgerSource` is the narrow interface the pages use. Its answers are the node API's JSON
views (`tally.node.views`: ids in hex, amounts as decimal strings, locks with their kind and
address), so that `LocalSource` (a `Node` in this process) and `RemoteSource` (a node's
HTTP API, in `tally.explorer.remote`) give the pages the same documents.

Every method reads a bounded amount: one block, one transaction, one coin, a page of an
address's coins. Nothing here walks the chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from tally.model.address import lock_hash, parse_address
from tally.model.block import Header
from tally.model.coin import coin_id
from tally.model.encoding import tx_id
from tally.model.tx import Issue, Redeem, Transfer
from tally.model.types import BlockHash, CoinId, Height, TxId
from tally.node.core import Node
from tally.node.views import block_json, coin_json, header_json, receipt_json, tx_json

__all__ = [
    "Json",
    "EventCallback",
    "TxFlow",
    "NetworkInfo",
    "LedgerSource",
    "LocalSource",
    "SourceUnavailableError",
]

Json = dict[str, Any]
"""A JSON document as the node API writes it (Any: its shapes are those of `tally.node.views`)."""

EventCallback = Callable[[Json], None]
"""Called with each committed-block event: `{"type": "block", "height", "time_ms", ...}`."""


class SourceUnavailableError(Exception):
    """The ledger cannot be read right now (the remote node does not answer)."""


@dataclass(frozen=True)
class TxFlow:
    """The coins an accepted transaction spent and created, for the explorer's index."""

    txid: bytes
    """The transaction's id."""
    inputs: tuple[bytes, ...]
    """Ids of the coins it spent."""
    outputs: tuple[tuple[bytes, bytes], ...]
    """`(coin id, lock hash)` of each coin it created, in output order."""


@dataclass(frozen=True)
class NetworkInfo:
    """What the explorer shows about the network itself."""

    chain_id: str
    """The network's chain id."""
    hrp: str
    """The address prefix."""
    members: tuple[tuple[str, str], ...]
    """`(name, public key hex)` of each consensus member in force, in signer order."""
    block_interval_ms: int | None
    """The orderer's block interval in force, if known."""


@dataclass(frozen=True)
class Creator:
    """Where a coin came from."""

    txid: bytes
    """The creating transaction."""
    index: int
    """The output's index in it."""
    height: int
    """The height of the block that committed it."""
    lock_hash: bytes
    """The hash of the coin's lock (its address)."""


@dataclass(frozen=True)
class Activity:
    """One transaction touching an address."""

    height: int
    """The block's height."""
    txid: bytes
    """The transaction."""
    received: int
    """How many of its outputs went to the address."""
    spent: int
    """How many of the address's coins it spent."""


class LedgerSource(Protocol):
    """Bounded reads of one node's ledger, in the node API's JSON shapes."""

    def network(self) -> NetworkInfo:
        """Chain id, address prefix, members and block interval."""
        ...

    def status(self) -> Json:
        """The node's `/v1/status` document (height, mempool size, health, ...)."""
        ...

    def tip(self) -> int:
        """The height of the last committed block (0 before any)."""
        ...

    def header(self, height: int) -> Json | None:
        """The header (with its hash) of the block at `height`, or None."""
        ...

    def block(self, height: int) -> Json | None:
        """The block at `height` with its certificate and transactions, or None."""
        ...

    def height_of(self, digest: bytes) -> int | None:
        """The height of the block with this hash (0 for genesis), or None if unknown."""
        ...

    def tx(self, txid: bytes) -> Json | None:
        """A transaction as `/v1/txs/{txid}` shows it (committed, rejected or pending)."""
        ...

    def coin(self, cid: bytes) -> Json | None:
        """A coin as `/v1/coins/{id}` shows it (unspent, or spent and by whom), or None."""
        ...

    def address_coins(self, address: str, limit: int) -> Json:
        """An address's unspent coins (at most `limit`) and balance.

        Raises:
            Rejection: the address is not one of this network.
        """
        ...

    def supply(self) -> dict[str, dict[str, int]]:
        """`{asset: {"issued", "redeemed", "outstanding"}}` in minor units."""
        ...

    def certificate_view(self, height: int) -> int | None:
        """The consensus view in which the block at `height` was certified."""
        ...

    def flows(self, height: int) -> list[TxFlow] | None:
        """The coins each accepted transaction of the block at `height` spent and created."""
        ...

    def spent_lock_hash(self, cid: bytes) -> bytes | None:
        """The lock hash of a spent coin, if it can be read cheaply; else None."""
        ...

    def creator(self, cid: bytes) -> Creator | None:
        """Which transaction created the coin, if this source keeps that; else None."""
        ...

    def activity(self, address_hash: bytes, limit: int) -> list[Activity] | None:
        """An address's transactions, newest first, if this source keeps them; else None."""
        ...

    def subscribe(self, callback: EventCallback) -> None:
        """Call `callback` with each committed-block event, from any thread."""
        ...

    def unsubscribe(self, callback: EventCallback) -> None:
        """Stop calling `callback`."""
        ...

    def close(self) -> None:
        """Release what the source holds (connections, threads)."""
        ...


class _HeaderOnly(msgspec.Struct, array_like=True):
    """A block's first field alone: msgspec skips the transactions that follow unparsed."""

    header: Header


_header_decoder = msgspec.msgpack.Decoder(_HeaderOnly)


class LocalSource:
    """Reads the ledger of a `Node` in this process, straight from its store."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._store = node.store
        self._hrp = node.genesis.hrp

    def network(self) -> NetworkInfo:
        """Chain id, address prefix, members and block interval in force."""
        governance = self._store.governance()
        return NetworkInfo(
            chain_id=self._node.chain_id,
            hrp=self._hrp,
            members=tuple((m.name, m.key.hex()) for m in governance.members),
            block_interval_ms=governance.params.block_interval_ms,
        )

    def status(self) -> Json:
        """The node's status document."""
        return self._node.status()

    def tip(self) -> int:
        """The height of the last committed block."""
        return int(self._store.tip()[0])

    def header(self, height: int) -> Json | None:
        """The header of the block at `height`, decoded without its transactions."""
        data = self._store.block_bytes(Height(height))
        if data is None:
            return None
        return header_json(_header_decoder.decode(data).header)

    def block(self, height: int) -> Json | None:
        """The block at `height` with its certificate and transactions."""
        if height < 1:
            return None
        block = self._store.block(Height(height))
        if block is None:
            return None
        return block_json(block, self._store.certificate(Height(height)), self._hrp)

    def height_of(self, digest: bytes) -> int | None:
        """The height of the block with this hash."""
        height = self._store.height_of(BlockHash(digest))
        return None if height is None else int(height)

    def tx(self, txid: bytes) -> Json | None:
        """A committed, rejected or pending transaction."""
        key = TxId(txid)
        record = self._store.tx(key)
        if record is not None:
            block = self._store.block(record.height)
            view: Json = {
                "txid": txid.hex(),
                "status": "committed" if record.receipt.accepted else "rejected",
                "height": int(record.height),
                "index": record.index,
                "receipt": receipt_json(record.receipt),
            }
            if block is not None and record.index < len(block.txs):
                view["tx"] = tx_json(block.txs[record.index], self._hrp, key)
            return view
        pending = self._node.mempool.get(key)
        if pending is not None:
            return {"txid": txid.hex(), "status": "pending", "tx": tx_json(pending.tx, self._hrp)}
        return None

    def coin(self, cid: bytes) -> Json | None:
        """A coin, unspent or spent."""
        key = CoinId(cid)
        coin = self._store.coin(key)
        if coin is not None:
            return {"status": "unspent", **coin_json(key, coin, self._hrp)}
        spent = self._store.spent(key)
        if spent is not None:
            spender, spent_coin = spent
            return {
                "status": "spent",
                "spent_by": spender.hex(),
                **coin_json(key, spent_coin, self._hrp),
            }
        return None

    def address_coins(self, address: str, limit: int) -> Json:
        """An address's unspent coins and balance.

        Raises:
            BadAddressError: not an address of this network.
        """
        coins = self._store.coins_of(parse_address(address, self._hrp), limit=limit)
        balance: dict[str, int] = {}
        for _, coin in coins:
            balance[coin.asset] = balance.get(coin.asset, 0) + coin.amount
        return {
            "address": address,
            "balance": {asset: str(total) for asset, total in sorted(balance.items())},
            "coins": [coin_json(cid, coin, self._hrp) for cid, coin in coins],
        }

    def supply(self) -> dict[str, dict[str, int]]:
        """Issued, redeemed and outstanding per asset."""
        return {
            asset: {
                "issued": supply.issued,
                "redeemed": supply.redeemed,
                "outstanding": supply.outstanding,
            }
            for asset, supply in self._store.supplies()
        }

    def certificate_view(self, height: int) -> int | None:
        """The view of the certificate of the block at `height`."""
        certificate = self._store.certificate(Height(height))
        return None if certificate is None else certificate.view

    def flows(self, height: int) -> list[TxFlow] | None:
        """The coins the accepted transactions of the block at `height` spent and created."""
        block = self._store.block(Height(height))
        if block is None:
            return None
        flows: list[TxFlow] = []
        for tx, receipt in zip(block.txs, block.receipts, strict=True):
            if not receipt.accepted:
                continue
            body = tx.body
            txid = tx_id(body)
            inputs = tuple(body.inputs) if isinstance(body, Transfer | Redeem) else ()
            outputs: tuple[tuple[bytes, bytes], ...] = ()
            if isinstance(body, Transfer | Issue):
                outputs = tuple(
                    (coin_id(txid, index), lock_hash(output.lock))
                    for index, output in enumerate(body.outputs)
                )
            flows.append(TxFlow(txid=txid, inputs=inputs, outputs=outputs))
        return flows

    def spent_lock_hash(self, cid: bytes) -> bytes | None:
        """The lock hash of a spent coin, from the store's spent table."""
        spent = self._store.spent(CoinId(cid))
        return None if spent is None else lock_hash(spent[1].lock)

    def creator(self, cid: bytes) -> Creator | None:
        """The creating transaction, from the store's origin table (any coin, any age)."""
        origin = self._store.origin(CoinId(cid))
        if origin is None:
            return None
        coin = self._store.coin(CoinId(cid))
        if coin is None:
            spent = self._store.spent(CoinId(cid))
            coin = None if spent is None else spent[1]
        owner = lock_hash(coin.lock) if coin is not None else b""
        return Creator(origin.txid, origin.output, origin.height, owner)

    def activity(self, address_hash: bytes, limit: int) -> list[Activity]:
        """The address's transactions from the store's history table (its whole history)."""
        return [
            Activity(entry.height, entry.txid, entry.received, entry.spent)
            for entry in self._store.history(address_hash, limit)
        ]

    def subscribe(self, callback: EventCallback) -> None:
        """Follow the node's committed blocks (the callback runs on the commit thread)."""
        self._node.subscribe(callback)

    def unsubscribe(self, callback: EventCallback) -> None:
        """Stop following the node's blocks."""
        self._node.unsubscribe(callback)

    def close(self) -> None:
        """Nothing to release: the node belongs to its process runner."""
