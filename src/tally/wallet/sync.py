"""Keeping the wallet's coin store in step with the node, block by block.

From the height after the store's cursor up to the node's tip, each block is fetched
(`GET /v1/blocks/{h}`) and read by `scan_block`, a pure function that decides what the block
changes for the wallet: outputs under a `KeyLock` of one of its keys become its coins,
`EscrowLock` outputs naming one of its keys as payer or payee become escrow coins,
`OfflineLock` outputs owned by one of its keys become offline coins (its offline purse), its
coins that appear as inputs of an accepted transaction are spent, each transaction that
touched it gets a history row, and transactions it sent are settled (their inputs released if
the block rejected them). For each transaction that made offline coins of the wallet, the
syncer fetches its inclusion proof (`GET /v1/txs/{txid}/inclusion`): the root of those coins'
trust chain, which the payee of an offline payment checks with no network.
`CoinStore.apply_block` writes all of that and the cursor in one SQLite transaction.

Blocks are final once committed (BFT consensus), so there are no reorganisations to undo;
a block whose `prev_hash` is not the hash the cursor remembers, or whose chain id is not the
wallet's, means the node serves another chain, and syncing stops with `WalletChainError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from tally.client.errors import NodeRejection, NodeUnreachable
from tally.client.node_client import NodeClient
from tally.client.wire import WireError, coin_from_json
from tally.model.lock import EscrowLock, KeyLock, OfflineLock
from tally.model.rejection import Rejection
from tally.model.types import CoinId, PublicKey, TxId
from tally.wallet.coinstore import (
    ROLE_ESCROW_PAYEE,
    ROLE_ESCROW_PAYER,
    ROLE_OFFLINE,
    ROLE_OWN,
    BlockChanges,
    CoinStore,
    HistoryEntry,
    NewCoin,
    PendingTx,
    StoredCoin,
)
from tally.wallet.errors import WalletError
from tally.wallet.offline.messages import encode_root, root_from_inclusion

__all__ = ["WalletChainError", "BlockFormatError", "scan_block", "Syncer"]

log = logging.getLogger(__name__)

# Any: block and transaction views as the node's API returns them (`tally.node.views`).
JsonDict = dict[str, Any]


class WalletChainError(WalletError):
    """The node serves blocks of another chain than the one the wallet follows."""

    code = "wallet.chain"
    http_status = 409


class BlockFormatError(WalletError):
    """A block from the node is not the JSON view the API promises."""

    code = "wallet.block_format"
    http_status = 502


@dataclass
class _TxEffect:
    """What one transaction does to the wallet, gathered while reading it."""

    own_in: dict[str, int] = field(default_factory=dict)
    own_out: dict[str, int] = field(default_factory=dict)
    assets: set[str] = field(default_factory=set)
    spent_escrow_as_payer: StoredCoin | None = None
    spent_escrow_as_payee: bool = False
    new_escrow_as_payer: bool = False
    new_escrow_as_payee: bool = False
    spent_offline: bool = False
    new_offline: bool = False
    outputs_to_us: int = 0

    def add(self, table: dict[str, int], asset: str, amount: int) -> None:
        table[asset] = table.get(asset, 0) + amount
        self.assets.add(asset)


def _bytes32(value: object, what: str) -> bytes:
    try:
        data = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        data = b""
    if len(data) != 32:
        raise BlockFormatError(f"{what} is not 64 hex digits: {str(value)[:80]!r}")
    return data


def _kind(effect: _TxEffect, pending: PendingTx | None, asset: str) -> str:
    """The history kind of a transaction the wallet did not send from here (or did)."""
    if pending is not None:
        return pending.kind
    if effect.spent_escrow_as_payer is not None:
        escrowed = effect.spent_escrow_as_payer.coin.amount
        back = effect.own_in.get(asset, 0)
        return "reclaim" if back == escrowed and effect.outputs_to_us == 1 else "capture"
    if effect.spent_escrow_as_payee:
        return "capture"
    if effect.new_escrow_as_payer or effect.new_escrow_as_payee:
        return "preauth"
    net = effect.own_in.get(asset, 0) - effect.own_out.get(asset, 0)
    if effect.spent_offline or effect.new_offline:
        if net > 0:
            return "offline_unlock"
        if net < 0:
            return "offline_fund"
        return "offline_pay" if effect.spent_offline else "offline_receive"
    if net > 0:
        return "receive"
    if net < 0:
        return "pay"
    return "merge"


def scan_block(
    block: JsonDict,
    keys: Mapping[PublicKey, int],
    lookup: Callable[[CoinId], StoredCoin | None],
    pending: Callable[[TxId], PendingTx | None],
    *,
    chain_id: str,
    prev_hash: bytes | None,
) -> BlockChanges:
    """What one block (as the API shows it) changes in the wallet's store.

    Args:
        block: The block view (`header`, `txs` with `outputs`, `inputs` and `receipt`).
        keys: The wallet's keys, public key to index.
        lookup: The wallet's stored coin by id (spent or not), or None.
        pending: The wallet's pending sent transaction by id, or None.
        chain_id: The wallet's chain.
        prev_hash: The hash of the block before, as the cursor remembers it (None if not
            known: the first block a new wallet reads).

    Returns:
        The changes, for `CoinStore.apply_block`.

    Raises:
        WalletChainError: the block is of another chain, or does not follow `prev_hash`.
        BlockFormatError: the view is malformed.
    """
    try:
        header = block["header"]
        height = int(header["height"])
        time_ms = int(header["time_ms"])
        txs = block["txs"]
        if not isinstance(txs, list):
            raise TypeError("txs is not a list")
    except (KeyError, TypeError, ValueError) as exc:
        raise BlockFormatError(f"a block view lacks a header or transactions: {exc!r}") from None
    if header.get("chain_id") != chain_id:
        raise WalletChainError(
            f"block {height} is of chain {header.get('chain_id')!r}; the wallet is on {chain_id!r}",
            height=height,
        )
    if prev_hash is not None and _bytes32(header.get("prev_hash"), "prev_hash") != prev_hash:
        raise WalletChainError(
            f"block {height} does not follow the block the wallet read at {height - 1}",
            height=height,
        )
    changes = BlockChanges(height=height, block_hash=_bytes32(header.get("hash"), "block hash"))
    created_here: dict[bytes, StoredCoin] = {}
    for view in txs:
        _scan_tx(view, keys, lookup, pending, created_here, changes, time_ms)
    return changes


def _scan_tx(
    view: JsonDict,
    keys: Mapping[PublicKey, int],
    lookup: Callable[[CoinId], StoredCoin | None],
    pending: Callable[[TxId], PendingTx | None],
    created_here: dict[bytes, StoredCoin],
    changes: BlockChanges,
    time_ms: int,
) -> None:
    txid = TxId(_bytes32(view.get("txid"), "txid"))
    ours = pending(txid)
    if ours is not None:
        changes.settled.append(txid)
    receipt = view.get("receipt")
    if not isinstance(receipt, dict) or receipt.get("accepted") is not True:
        return
    effect = _TxEffect()
    for input_hex in view.get("inputs") or []:
        cid = CoinId(_bytes32(input_hex, "an input"))
        stored = created_here.get(cid) or lookup(cid)
        if stored is None:
            continue
        changes.spent.append((cid, txid))
        asset = stored.coin.asset
        if stored.role == ROLE_OWN:
            effect.add(effect.own_out, asset, stored.coin.amount)
        elif stored.role == ROLE_OFFLINE:
            effect.spent_offline = True
            effect.assets.add(asset)
        elif stored.role == ROLE_ESCROW_PAYER:
            effect.spent_escrow_as_payer = stored
            effect.assets.add(asset)
        else:
            effect.spent_escrow_as_payee = True
            effect.assets.add(asset)
    for output in view.get("outputs") or []:
        try:
            cid, coin = coin_from_json(output)
        except (WireError, Rejection) as exc:
            raise BlockFormatError(f"an output of {txid.hex()} is malformed: {exc}") from None
        lock = coin.lock
        role: str | None = None
        index: int | None = None
        if isinstance(lock, KeyLock) and lock.key in keys:
            role, index = ROLE_OWN, keys[lock.key]
            effect.add(effect.own_in, coin.asset, coin.amount)
            effect.outputs_to_us += 1
        elif isinstance(lock, EscrowLock) and lock.payer in keys:
            role, index = ROLE_ESCROW_PAYER, keys[lock.payer]
            effect.new_escrow_as_payer = True
            effect.assets.add(coin.asset)
        elif isinstance(lock, EscrowLock) and lock.payee in keys:
            role, index = ROLE_ESCROW_PAYEE, keys[lock.payee]
            effect.new_escrow_as_payee = True
            effect.assets.add(coin.asset)
        elif isinstance(lock, OfflineLock) and lock.owner in keys:
            role, index = ROLE_OFFLINE, keys[lock.owner]
            effect.new_offline = True
            effect.assets.add(coin.asset)
            if txid not in changes.offline_txids:
                changes.offline_txids.append(txid)
        if role is None or index is None:
            continue
        new = NewCoin(coin_id=cid, coin=coin, role=role, key_index=index, txid=txid)
        changes.created.append(new)
        created_here[cid] = StoredCoin(
            coin_id=cid,
            coin=coin,
            role=role,
            key_index=index,
            created_height=changes.height,
            created_txid=txid,
        )
    for touched in sorted(effect.assets):
        net = effect.own_in.get(touched, 0) - effect.own_out.get(touched, 0)
        changes.history.append(
            HistoryEntry(
                txid=txid,
                height=changes.height,
                kind=_kind(effect, ours, touched),
                asset=touched,
                amount_in=max(net, 0),
                amount_out=max(-net, 0),
                memo=ours.memo if ours is not None else "",
                time_ms=time_ms,
            )
        )


class Syncer:
    """Brings a `CoinStore` up to the node's tip.

    Args:
        client: The node's client.
        store: The wallet's store.
        chain_id: The wallet's chain.
    """

    def __init__(self, client: NodeClient, store: CoinStore, chain_id: str) -> None:
        self.client = client
        self.store = store
        self.chain_id = chain_id
        self.max_window: int | None = None
        """The node's `max_window`, when its status reports one."""

    def tip(self) -> int:
        """The node's current height."""
        status = self.client.status()
        height = status.get("height")
        if not isinstance(height, int):
            raise BlockFormatError("the node's status has no height")
        max_window = status.get("max_window")
        if isinstance(max_window, int) and max_window > 0:
            self.max_window = max_window
        return height

    def sync(self, to_height: int | None = None) -> int:
        """Apply every block after the cursor, up to the tip (or `to_height`).

        Pending transactions whose window ended before the next height are released
        afterwards: no later block can commit them.

        Args:
            to_height: Stop at this height, if lower than the tip.

        Returns:
            The height the store is at now.

        Raises:
            WalletChainError: the node serves another chain.
            BlockFormatError: a block view is malformed.
            NodeError: the node cannot be reached or refuses.
        """
        target = self.tip() if to_height is None else min(to_height, self.tip())
        height, prev_hash = self.store.cursor()
        keys = self.store.keys()
        while height < target:
            block = self.client.block(height + 1)
            changes = scan_block(
                block,
                keys,
                self.store.coin,
                self.store.pending,
                chain_id=self.chain_id,
                prev_hash=prev_hash,
            )
            if changes.height != height + 1:
                raise BlockFormatError(
                    f"asked for block {height + 1}, the node sent block {changes.height}"
                )
            changes.roots.extend(self.fetch_roots(changes.offline_txids))
            self.store.apply_block(changes)
            height, prev_hash = changes.height, changes.block_hash
        released = self.store.release_expired(height + 1)
        for txid in released:
            log.info("transaction %s expired uncommitted; its inputs are free again", txid.hex())
        return height

    def fetch_roots(self, txids: list[TxId]) -> list[tuple[TxId, bytes]]:
        """The inclusion proofs of `txids` (`RootProof` bytes), from the node.

        A transaction the node has no proof for (`not_found`) is logged and left out; its
        offline coins are kept, and cannot be paid offline until a later call finds the proof.

        Raises:
            NodeError: the node cannot be reached or refuses otherwise.
            OfflineMessageError: the node's inclusion view is malformed.
        """
        roots: list[tuple[TxId, bytes]] = []
        for txid in txids:
            try:
                view = self.client.inclusion(txid)
            except NodeRejection as rejection:
                if rejection.code != "not_found":
                    raise
                log.warning("the node has no inclusion proof of %s yet", txid.hex())
                continue
            roots.append((txid, encode_root(root_from_inclusion(view))))
        return roots

    def wait_for_tx(self, txid: bytes, timeout: float = 30.0) -> JsonDict:
        """Wait until `txid` is in a block, then sync up to that block.

        Follows the node's event stream (`/v1/events`), so it returns as soon as the block
        is committed.

        Args:
            txid: The transaction.
            timeout: Seconds to wait.

        Returns:
            `{"txid", "height", "code"}`: the block height and the receipt code (`ok` when
            accepted).

        Raises:
            TimeoutError: no block held the transaction within `timeout` seconds.
        """
        txid_hex = bytes(txid).hex()
        deadline = time.monotonic() + timeout
        events = self.client.events(read_timeout=max(timeout, 0.1))
        try:
            with closing(events):
                for event in events:
                    if event.get("type") == "hello":
                        found = self._committed(txid_hex)
                        if found is not None:
                            return found
                    elif event.get("type") == "block":
                        for receipt in event.get("receipts") or []:
                            if receipt.get("txid") == txid_hex:
                                height = int(event["height"])
                                self.sync()
                                return {"txid": txid_hex, "height": height, "code": receipt["code"]}
                    if time.monotonic() >= deadline:
                        break
        except NodeUnreachable:
            if time.monotonic() < deadline:
                raise
        raise TimeoutError(f"transaction {txid_hex} was not committed within {timeout:g} s")

    def _committed(self, txid_hex: str) -> JsonDict | None:
        try:
            view = self.client.tx(txid_hex)
        except NodeRejection as rejection:
            if rejection.code == "not_found":
                return None
            raise
        if view.get("status") not in ("committed", "rejected"):
            return None
        self.sync()
        receipt = view.get("receipt") or {}
        return {"txid": txid_hex, "height": view.get("height"), "code": receipt.get("code")}
