"""Prometheus metrics of one node, in a registry of its own (several nodes may share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tally.node.core import BlockProposal, Node

__all__ = ["NodeMetrics"]


class NodeMetrics:
    """Counters and gauges fed by the API (admissions) and the node (commits)."""

    def __init__(self, node: Node) -> None:
        self.registry = CollectorRegistry()
        self.admitted = Counter(
            "tally_txs_admitted", "Transactions admitted to the mempool", registry=self.registry
        )
        self.refused = Counter(
            "tally_txs_refused",
            "Transactions refused at admission, by rejection code",
            ["code"],
            registry=self.registry,
        )
        self.committed = Counter(
            "tally_txs_committed",
            "Transactions committed in blocks, by receipt code",
            ["code"],
            registry=self.registry,
        )
        self.blocks = Counter("tally_blocks", "Blocks committed", registry=self.registry)
        self.height = Gauge("tally_height", "Height of the last block", registry=self.registry)
        self.mempool = Gauge("tally_mempool_size", "Transactions waiting", registry=self.registry)
        self.mempool.set_function(lambda: len(node.mempool))
        self.commit_seconds = Histogram(
            "tally_block_commit_seconds",
            "Time of the durable write of one block",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        self.height.set(node.store.tip()[0])
        node.on_block.append(self._on_block)

    def _on_block(self, proposal: BlockProposal, seconds: float) -> None:
        self.blocks.inc()
        self.height.set(proposal.block.header.height)
        self.commit_seconds.observe(seconds)
        for receipt in proposal.outcome.receipts:
            self.committed.labels(code=receipt.code).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
