"""Single-thread cost of each pipeline stage per transfer: `python -m tally.bench.stages`.

Decode, admission, execution (`apply_block`) and the durable commit are timed one after the
other on one thread, over LMDB in a temporary directory, so that a change to one stage shows
in its own figure. Wall time per transfer, in microseconds; noisy on a shared machine.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tally.bench.pipeline import _NODE, _funding, _transfers, bench_genesis
from tally.consensus.solo import SoloOrderer
from tally.model.encoding import block_hash, decode_tx, tx_id
from tally.node.core import BlockProposal, Node
from tally.store.ledger import LedgerStore
from tally.store.lmdb_store import LmdbStore

__all__ = ["stage_costs"]


def _commit(node: Node, orderer: SoloOrderer[BlockProposal], proposal: BlockProposal) -> None:
    header = proposal.block.header
    node.commit(proposal, orderer.certify(block_hash(header), header.height))


def _proposed(node: Node) -> BlockProposal:
    proposal = node.propose(10_000, 0)
    if proposal is None:
        raise RuntimeError("nothing to propose: the admitted transactions are missing")
    return proposal


def stage_costs(transfers: int = 4_000) -> dict[str, float]:
    """Microseconds per transfer of each stage, measured one stage at a time."""
    with tempfile.TemporaryDirectory(prefix="tally-stages-") as tmp:
        store = LedgerStore.open(LmdbStore(Path(tmp)))
        node = Node.create(store, bench_genesis(), _NODE, "stages", mempool_max=transfers * 2)
        orderer = SoloOrderer(node, _NODE, 0, max_txs=lambda: 10_000, interval_ms=lambda: 50)
        try:
            issues, coins = _funding(transfers, nonce_base=0)
            for issue in issues:
                node.admit_tx(issue, tx_id(issue.body))
            _commit(node, orderer, _proposed(node))
            raws = _transfers(coins, valid_until=500)
            params = store.governance().params
            started = time.perf_counter()
            for raw in raws:
                decode_tx(raw, params)
            decoded = time.perf_counter()
            for raw in raws:
                node.admit(raw)
            admitted = time.perf_counter()
            proposal = _proposed(node)
            executed = time.perf_counter()
            _commit(node, orderer, proposal)
            committed = time.perf_counter()
        finally:
            store.close()
    per = 1e6 / len(raws)
    return {
        "decode_us": (decoded - started) * per,
        "admit_us": (admitted - decoded) * per,
        "execute_us": (executed - admitted) * per,
        "commit_us": (committed - executed) * per,
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 4_000
    for stage, micros in stage_costs(count).items():
        print(f"{stage:12} {micros:8.1f}")
