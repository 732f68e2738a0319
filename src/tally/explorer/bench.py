"""`bench_explorer`: how fast the explorer's pages render over a long chain.

It fills an LMDB store with many small blocks (one transfer, now and then an issuance,
every fourth block empty) by committing them straight into the `LedgerStore` with the
rules (`apply_block`, `build_header`) and a solo certificate, without the mempool and
orderer, then serves the explorer in-process and times each page: the median of several
renders after one warm-up. The pages must stay under `BUDGET_MS` however long the chain.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tally.crypto.schnorr import PrivateKey
from tally.model.address import address_of
from tally.model.block import Block
from tally.model.coin import Coin, coin_id
from tally.model.encoding import block_hash, tx_id
from tally.model.genesis import AssetEntry, Genesis, Member
from tally.model.lock import KeyLock
from tally.model.params import Params
from tally.model.tx import Issue, Signature, SignedTx, Transfer, Witness, sighash
from tally.model.types import (
    Amount,
    AssetCode,
    CoinId,
    Hash32,
    Height,
    PublicKey,
    SignatureBytes,
    TxId,
)
from tally.rules.apply import apply_block
from tally.rules.block import build_header
from tally.rules.certificate import sign_certificate
from tally.rules.state import BlockContext
from tally.store.ledger import LedgerStore
from tally.store.lmdb_store import LmdbStore

__all__ = ["bench_explorer", "bench_genesis", "append_block", "Progress", "BUDGET_MS"]

BUDGET_MS = 300.0
"""The most a page may take to render with 100,000 blocks in the store."""

Progress = Callable[[str, int, int], None]
"""`progress(stage, done, total)`, called while the store is filled and pages are timed."""

_CHAIN = "tally-explorer-bench"
_ASSET = AssetCode("CNY")
_ISSUER = PrivateKey.from_bytes((3001).to_bytes(32, "big"))
_MEMBER = PrivateKey.from_bytes((3002).to_bytes(32, "big"))
_ADMIN = PrivateKey.from_bytes((3003).to_bytes(32, "big"))
_OWNERS = [PrivateKey.from_bytes((4000 + i).to_bytes(32, "big")) for i in range(16)]
_GENESIS_MS = 1_700_000_000_000
_BLOCK_MS = 1_000


def bench_genesis() -> Genesis:
    """A one-member network with a CNY issuer, for the explorer benchmark."""
    return Genesis(
        chain_id=_CHAIN,
        hrp="tly",
        time_ms=_GENESIS_MS,
        params=Params(),
        admins=(PublicKey(_ADMIN.public_key),),
        admin_threshold=1,
        assets=(AssetEntry(asset=_ASSET, issuer=PublicKey(_ISSUER.public_key)),),
        members=(Member(name="bench-0", key=PublicKey(_MEMBER.public_key)),),
    )


def _trust(public_key: bytes, msg32: bytes, signature: bytes) -> bool:
    """A verifier that accepts every signature: the benchmark signs what it commits itself."""
    del public_key, msg32, signature
    return True


def append_block(
    store: LedgerStore,
    txs: Sequence[SignedTx],
    *,
    key: PrivateKey,
    signer: int = 0,
    time_ms: int | None = None,
    verify: Callable[[bytes, bytes, bytes], bool] | None = None,
) -> Block:
    """Execute `txs` as the next block on `store` and commit it with a solo certificate.

    Transactions the rules refuse are ordered with their rejection receipt, as an orderer
    would. Meant for benchmarks and tests that need a chain without running a node.

    Args:
        store: The ledger to extend.
        txs: The block's transactions.
        key: The member key that signs the certificate.
        signer: The member's index.
        time_ms: The block's time; by default one second per height after genesis.
        verify: The signature check; by default every signature is checked for real.
    """
    from tally.crypto.schnorr import verify as verify_schnorr  # the real check, by default

    height, tip_hash = store.tip()
    next_height = Height(height + 1)
    if time_ms is None:
        time_ms = store.genesis().time_ms + next_height * _BLOCK_MS
    ctx = BlockContext(chain_id=store.genesis().chain_id, height=next_height, time_ms=time_ms)
    txids = [tx_id(tx.body) for tx in txs]
    outcome = apply_block(store, txs, ctx, verify or verify_schnorr, txids)
    header = build_header(ctx, tip_hash, txids, outcome)
    block = Block(header=header, txs=tuple(txs), receipts=tuple(outcome.receipts))
    certificate = sign_certificate(
        ctx.chain_id, next_height, block_hash(header), 0, [(signer, key)]
    )
    store.commit_block(block, certificate, txids, outcome)
    return block


def _sign(body: Issue | Transfer, keys: Sequence[PrivateKey]) -> SignedTx:
    msg = sighash(_CHAIN, tx_id(body))
    return SignedTx(
        body=body,
        witnesses=tuple(
            Witness(signatures=(Signature(signer=0, sig=SignatureBytes(k.sign(msg))),))
            for k in keys
        ),
    )


def _lock(owner: int) -> KeyLock:
    return KeyLock(key=PublicKey(_OWNERS[owner].public_key))


class _Chain:
    """Builds the benchmark's transactions: issuances, then transfers that split coins."""

    def __init__(self) -> None:
        self.coins: deque[tuple[CoinId, Coin, int]] = deque()
        self.nonce = 0

    def issue(self, height: int) -> SignedTx:
        self.nonce += 1
        outputs = tuple(
            Coin(asset=_ASSET, amount=Amount(10**12), lock=_lock(i % len(_OWNERS)))
            for i in range(16)
        )
        body = Issue(
            asset=_ASSET,
            issuer=PublicKey(_ISSUER.public_key),
            outputs=outputs,
            reserve_ref=Hash32(bytes(32)),
            nonce=self.nonce,
            valid_until=Height(height + 500),
        )
        txid = tx_id(body)
        for index, output in enumerate(outputs):
            self.coins.append((coin_id(txid, index), output, index % len(_OWNERS)))
        return _sign(body, [_ISSUER])

    def transfer(self, height: int) -> SignedTx:
        cid, coin, owner = self.coins.popleft()
        pay = max(1, coin.amount // 2)
        payee = (owner + 1) % len(_OWNERS)
        outputs = (
            Coin(asset=_ASSET, amount=Amount(pay), lock=_lock(payee)),
            Coin(asset=_ASSET, amount=Amount(coin.amount - pay), lock=coin.lock),
        )
        body = Transfer(inputs=(cid,), outputs=outputs, valid_until=Height(height + 500))
        txid = TxId(tx_id(body))
        self.coins.append((coin_id(txid, 0), outputs[0], payee))
        self.coins.append((coin_id(txid, 1), outputs[1], owner))
        return _sign(body, [_OWNERS[owner]])


def fill_store(store: LedgerStore, blocks: int, progress: Progress | None = None) -> dict[str, str]:
    """Commit `blocks` small blocks onto an empty ledger; ids of sample objects to show."""
    store.init_genesis(bench_genesis())
    chain = _Chain()
    samples: dict[str, str] = {}
    step = max(1, blocks // 200)
    for height in range(1, blocks + 1):
        txs: list[SignedTx] = []
        if height == 1 or height % 1000 == 0 or len(chain.coins) < 2:
            txs.append(chain.issue(height))
        elif height % 4 != 0:
            txs.append(chain.transfer(height))
        append_block(store, txs, key=_MEMBER, verify=_trust)
        if txs and height >= blocks // 2 and "old_tx" not in samples:
            txid = tx_id(txs[0].body)
            samples["old_tx"] = txid.hex()
            samples["old_coin"] = coin_id(txid, 0).hex()
        if progress is not None and (height % step == 0 or height == blocks):
            progress("fill", height, blocks)
    last_cid, last_coin, _ = chain.coins[-1]
    samples["new_coin"] = last_cid.hex()
    samples["address"] = address_of(last_coin.lock, "tly")
    samples.setdefault("old_tx", "")
    samples.setdefault("old_coin", last_cid.hex())
    return samples


def _default_directory() -> Path:
    # tmpfs: the fill is not bound by fsync, and reads come from memory either way.
    shm = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private, unique directory there
    return Path(tempfile.mkdtemp(prefix="tally-explorer-bench-", dir=shm if shm.is_dir() else None))


def bench_explorer(
    blocks: int = 100_000,
    *,
    repeats: int = 15,
    progress: Progress | None = None,
    directory: Path | None = None,
) -> dict[str, Any]:
    """Fill a store with `blocks` small blocks, then time every explorer page.

    Args:
        blocks: How many blocks to commit first.
        repeats: Timed renders per page; the median is reported.
        progress: Called with `("fill", done, total)` and `("pages", done, total)`.
        directory: Where to put the LMDB store; a temporary directory by default,
            removed afterwards.

    Returns:
        `{"blocks", "fill_s", "budget_ms", "slowest_ms", "within_budget", "pages": {name:
        {"path", "status", "median_ms", "first_ms", "max_ms"}}}`.
    """
    with warnings.catch_warnings():
        # Starlette asks to move its test client to `httpx2`, which is not released yet.
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient  # the benchmark serves pages in-process

    from tally.explorer.app import mount_source
    from tally.explorer.source import LocalSource
    from tally.node.api import create_app
    from tally.node.core import Node

    owned = directory is None
    path = _default_directory() if directory is None else directory
    store = LedgerStore.open(LmdbStore(path))
    try:
        started = time.perf_counter()
        samples = fill_store(store, blocks, progress)
        fill_s = time.perf_counter() - started
        node = Node(store, _MEMBER, "bench-0")
        app = create_app(node, verify_threads=1)
        explorer = mount_source(app, LocalSource(node))
        tip = blocks
        tip_hash = store.tip()[1].hex()
        pages = {
            "dashboard": "/explorer/",
            "dashboard_fragment": "/explorer/fragments/dashboard",
            "blocks": "/explorer/blocks",
            "blocks_deep": f"/explorer/blocks?start={blocks // 3}",
            "block_tip": f"/explorer/block/{tip}",
            "block_first": "/explorer/block/1",
            "block_by_hash": f"/explorer/block/{tip_hash}",
            "tx": f"/explorer/tx/{samples['old_tx']}",
            "coin_spent": f"/explorer/coin/{samples['old_coin']}",
            "coin_unspent": f"/explorer/coin/{samples['new_coin']}",
            "address": f"/explorer/address/{samples['address']}",
            "search_height": f"/explorer/search?q={blocks // 2}",
            "search_txid": f"/explorer/search?q={samples['old_tx']}",
            "search_address": f"/explorer/search?q={samples['address']}",
            "not_found": "/explorer/search?q=no-such-thing",
        }
        figures: dict[str, dict[str, Any]] = {}
        with TestClient(app) as client:
            if explorer.index is not None:
                deadline = time.monotonic() + 60
                while explorer.index.indexed_to < tip and time.monotonic() < deadline:
                    time.sleep(0.05)
            for number, (name, url) in enumerate(pages.items(), start=1):
                timings = []
                status = 0
                for _ in range(repeats + 1):
                    begin = time.perf_counter()
                    response = client.get(url, follow_redirects=False)
                    timings.append((time.perf_counter() - begin) * 1000)
                    status = response.status_code
                figures[name] = {
                    "path": url,
                    "status": status,
                    "first_ms": round(timings[0], 2),
                    "median_ms": round(statistics.median(timings[1:]), 2),
                    "max_ms": round(max(timings[1:]), 2),
                }
                if progress is not None:
                    progress("pages", number, len(pages))
        slowest = max(f["median_ms"] for f in figures.values())
        return {
            "blocks": blocks,
            "fill_s": round(fill_s, 1),
            "budget_ms": BUDGET_MS,
            "slowest_ms": slowest,
            "within_budget": slowest < BUDGET_MS
            and all(f["status"] < 500 for f in figures.values()),
            "pages": figures,
        }
    finally:
        store.close()
        if owned:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover - `python -m tally.explorer.bench [blocks]`
    import json
    import sys

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(json.dumps(bench_explorer(count), indent=2))
