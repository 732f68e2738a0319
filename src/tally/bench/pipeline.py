"""The pipeline figure: committed 1-input-2-output transfers per second, in-process.

The node's whole path runs: decode, stateless checks, signature verification on a thread
per core, mempool, solo orderer, execution, and one durable LMDB commit per block. Only
the HTTP layer is left out. Transfers are signed before the clock starts.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tally.consensus.solo import SoloOrderer
from tally.crypto.schnorr import PrivateKey
from tally.model.block import Receipt
from tally.model.coin import Coin, coin_id
from tally.model.encoding import encode, tx_id
from tally.model.genesis import AssetEntry, Genesis, Member
from tally.model.lock import KeyLock
from tally.model.params import Params
from tally.model.tx import Issue, Signature, SignedTx, Transfer, Witness, sighash
from tally.model.types import Amount, AssetCode, CoinId, Hash32, Height, PublicKey, SignatureBytes
from tally.node.core import Node, TxResult
from tally.store.ledger import LedgerStore
from tally.store.lmdb_store import LmdbStore

__all__ = [
    "PipelineResult",
    "bench_genesis",
    "bench_node",
    "fund",
    "measure_round",
    "run_pipeline",
]

_CHAIN = "tally-bench"
_ASSET = AssetCode("CNY")
_ISSUER = PrivateKey.from_bytes((1001).to_bytes(32, "big"))
_NODE = PrivateKey.from_bytes((1002).to_bytes(32, "big"))
_ADMIN = PrivateKey.from_bytes((1003).to_bytes(32, "big"))
_OWNERS = [PrivateKey.from_bytes((2000 + i).to_bytes(32, "big")) for i in range(64)]

Progress = Callable[[str, int, int], None]
"""`progress(stage, done, total)`, called while data is prepared."""


@dataclass(frozen=True)
class PipelineResult:
    """One measured run."""

    transfers: int
    """Transfers committed in the measured window."""
    seconds: float
    """Wall time from the first submission to the last commit."""
    blocks: int
    """Blocks the transfers were committed in."""

    @property
    def rate(self) -> float:
        """Committed transfers per second."""
        return self.transfers / self.seconds


def bench_genesis() -> Genesis:
    """A one-node network with a CNY issuer, for benchmarks."""
    return Genesis(
        chain_id=_CHAIN,
        hrp="tly",
        time_ms=0,
        params=Params(),
        admins=(PublicKey(_ADMIN.public_key),),
        admin_threshold=1,
        assets=(AssetEntry(asset=_ASSET, issuer=PublicKey(_ISSUER.public_key)),),
        members=(Member(name="bench", key=PublicKey(_NODE.public_key)),),
    )


def _no_progress(stage: str, done: int, total: int) -> None:
    del stage, done, total


def _signed(body: Issue | Transfer, keys: list[PrivateKey]) -> SignedTx:
    msg = sighash(_CHAIN, tx_id(body))
    return SignedTx(
        body=body,
        witnesses=tuple(
            Witness(signatures=(Signature(signer=0, sig=SignatureBytes(k.sign(msg))),))
            for k in keys
        ),
    )


def _funding(
    count: int, nonce_base: int, valid_until: int = 900
) -> tuple[list[SignedTx], list[tuple[CoinId, Coin, int]]]:
    """Issuances creating `count` coins, and (coin id, coin, owner index) for each."""
    issues: list[SignedTx] = []
    coins: list[tuple[CoinId, Coin, int]] = []
    for start in range(0, count, 64):
        outputs = tuple(
            Coin(
                asset=_ASSET,
                amount=Amount(1_000 + i),
                lock=KeyLock(key=PublicKey(_OWNERS[i % 64].public_key)),
            )
            for i in range(start, min(start + 64, count))
        )
        body = Issue(
            asset=_ASSET,
            issuer=PublicKey(_ISSUER.public_key),
            outputs=outputs,
            reserve_ref=Hash32(bytes(32)),
            nonce=nonce_base + start,
            valid_until=Height(valid_until),
        )
        issues.append(_signed(body, [_ISSUER]))
        txid = tx_id(body)
        coins.extend(
            (coin_id(txid, j), output, (start + j) % 64) for j, output in enumerate(outputs)
        )
    return issues, coins


def _transfers(coins: list[tuple[CoinId, Coin, int]], valid_until: int) -> list[bytes]:
    raws = []
    for cid, coin, owner in coins:
        pay = coin.amount // 3
        body = Transfer(
            inputs=(cid,),
            outputs=(
                Coin(
                    asset=_ASSET,
                    amount=Amount(pay),
                    lock=KeyLock(key=PublicKey(_OWNERS[(owner + 1) % 64].public_key)),
                ),
                Coin(asset=_ASSET, amount=Amount(coin.amount - pay), lock=coin.lock),
            ),
            valid_until=Height(valid_until),
        )
        raws.append(encode(_signed(body, [_OWNERS[owner]])))
    return raws


def _submit_all(node: Node, raws: list[bytes], threads: int) -> list[Future[TxResult]]:
    def admit_chunk(chunk: list[bytes]) -> list[Future[TxResult]]:
        return [node.admit(raw)[1] for raw in chunk]

    size = max(1, len(raws) // (threads * 8))
    chunks = [raws[i : i + size] for i in range(0, len(raws), size)]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bench-admit") as pool:
        return [f for part in pool.map(admit_chunk, chunks) for f in part]


def _wait_ok(futures: list[Future[TxResult]]) -> list[Receipt]:
    wait(futures, timeout=600)
    receipts = [f.result().receipt for f in futures]
    rejected = [r.code for r in receipts if not r.accepted]
    if rejected:
        raise RuntimeError(f"{len(rejected)} benchmark transactions rejected, e.g. {rejected[0]}")
    return receipts


@contextmanager
def bench_node(directory: Path | None, mempool_max: int) -> Iterator[tuple[Node, Path]]:
    """A one-node network over LMDB in a temporary directory, its solo orderer running.

    Yields the node and its LMDB directory.
    """
    with tempfile.TemporaryDirectory(prefix="tally-bench-", dir=directory) as tmp:
        store = LedgerStore.open(LmdbStore(Path(tmp)))
        node = Node.create(store, bench_genesis(), _NODE, "bench", mempool_max=mempool_max)
        orderer = SoloOrderer(
            node, _NODE, 0, max_txs=node.params_max_txs, interval_ms=node.params_interval_ms
        )
        orderer.start()
        try:
            yield node, Path(tmp)
        finally:
            orderer.stop()
            node.stop()
            store.close()


def fund(
    node: Node, count: int, nonce_base: int, progress: Progress | None = None
) -> list[tuple[CoinId, Coin, int]]:
    """Issue `count` coins to the bench owners and wait until they are committed."""
    report = progress or _no_progress
    issues, coins = _funding(count, nonce_base, valid_until=node.store.tip()[0] + 900)
    report("fund", 0, count)
    _wait_ok([node.admit_tx(tx, tx_id(tx.body)) for tx in issues])
    report("fund", count, count)
    return coins


def measure_round(
    node: Node, transfers: int, nonce_base: int, threads: int, progress: Progress | None = None
) -> PipelineResult:
    """Fund `transfers` coins, sign a transfer of each, then time them until all commit."""
    report = progress or _no_progress
    coins = fund(node, transfers, nonce_base, report)
    height = node.store.tip()[0]
    raws = []
    for start in range(0, len(coins), 1000):
        raws.extend(_transfers(coins[start : start + 1000], height + 900))
        report("sign", min(start + 1000, len(coins)), len(coins))
    first_height = node.store.tip()[0]
    started = time.perf_counter()
    _wait_ok(_submit_all(node, raws, threads))
    elapsed = time.perf_counter() - started
    return PipelineResult(
        transfers=transfers, seconds=elapsed, blocks=node.store.tip()[0] - first_height
    )


def run_pipeline(
    transfers: int,
    rounds: int = 3,
    directory: Path | None = None,
    progress: Progress | None = None,
    threads: int | None = None,
) -> list[PipelineResult]:
    """Measure `rounds` runs of `transfers` transfers each through one node over LMDB.

    Each round funds fresh coins, signs the transfers, then measures from the first
    submission until every transfer is committed.
    """
    threads = threads or os.cpu_count() or 1
    report = progress or _no_progress
    results = []
    with bench_node(directory, mempool_max=transfers + 1000) as (node, _):
        for round_no in range(rounds):
            results.append(measure_round(node, transfers, round_no * 10_000_000, threads, report))
            report("measure", round_no + 1, rounds)
    return results
