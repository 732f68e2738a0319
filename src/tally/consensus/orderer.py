"""The interface between a node and whatever orders its transactions into blocks.

An orderer decides *when* a block is cut and *who* certifies it; the node (the
`Application`) decides *what* goes in it, executes it and writes it. Solo and PBFT both sit
behind `Orderer`, so the node does not know which one it runs.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from tally.model.block import Block, CommitCertificate

__all__ = ["Proposal", "ProposalT", "Application", "Orderer"]


class Proposal(Protocol):
    """A block executed but not yet committed, with whatever the application keeps beside it."""

    @property
    def block(self) -> Block:
        """The proposed block, header included."""


ProposalT = TypeVar("ProposalT", bound=Proposal)


class Application(Protocol[ProposalT]):
    """What an orderer needs from the node; `ProposalT` is the node's own proposal type."""

    @property
    def chain_id(self) -> str:
        """The network's chain id."""

    def wait_for_work(self, timeout: float) -> bool:
        """Block up to `timeout` seconds until a transaction is pending; whether one is."""

    def pending_count(self) -> int:
        """How many transactions wait in the mempool."""

    def propose(self, max_txs: int, time_ms: int) -> ProposalT | None:
        """Take up to `max_txs` pending transactions and execute them as the next block."""

    def commit(self, proposal: ProposalT, certificate: CommitCertificate) -> None:
        """Write the block durably, then acknowledge its transactions."""


class Orderer(Protocol):
    """Cuts blocks from the application's pending transactions and certifies them."""

    def start(self) -> None:
        """Start ordering in the background."""

    def stop(self) -> None:
        """Stop after the block in progress, if any, is committed."""
