"""Blocks: an ordered list of transactions with their receipts, a header, and its certificate."""

from __future__ import annotations

from typing import Annotated

import msgspec

from tally.model.tx import Signature, SignedTx
from tally.model.types import BlockHash, Hash32, Height

__all__ = ["Receipt", "Header", "Block", "CommitCertificate", "ACCEPTED"]

_Hash = Annotated[Hash32, msgspec.Meta(min_length=32, max_length=32)]

ACCEPTED = "ok"
"""The receipt code of an accepted transaction."""


class Receipt(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """What became of one ordered transaction: accepted, or rejected with a stable code.

    Rejection is deterministic, so every node records the same receipts.
    """

    code: str
    """`"ok"` when accepted, else the rejection code (`input.spent`, …)."""

    @property
    def accepted(self) -> bool:
        """Whether the transaction was applied."""
        return self.code == ACCEPTED


class Header(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """What a block's hash covers; the certificate signs that hash."""

    chain_id: str
    """The network's id from genesis."""
    height: Height
    """This block's height; the first block is 1."""
    prev_hash: _Hash
    """Hash of the previous block's header, or of genesis for the first block."""
    time_ms: int
    """Milliseconds since the Unix epoch, set by the orderer; the rules treat it as data."""
    tx_count: int
    """Number of transactions (and receipts)."""
    tx_root: _Hash
    """Merkle root over each transaction id followed by its encoded receipt."""
    state_root: _Hash
    """The state commitment after applying this block."""


class Block(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A header, the transactions it orders, and one receipt per transaction."""

    header: Header
    """The header."""
    txs: tuple[SignedTx, ...]
    """Transactions in execution order."""
    receipts: tuple[Receipt, ...]
    """One receipt per transaction, in the same order."""


class CommitCertificate(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Signatures of a quorum of consensus members over a block hash: the block is final."""

    height: Height
    """The certified block's height."""
    block_hash: Annotated[BlockHash, msgspec.Meta(min_length=32, max_length=32)]
    """The certified block's hash."""
    view: int
    """The consensus view (round) in which it was committed; 0 under solo."""
    signatures: tuple[Signature, ...]
    """Commit signatures; `signer` indexes the member list in force at that height."""
