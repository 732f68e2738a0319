"""Network parameters: the limits every node enforces, fixed in genesis and changed by `Govern`."""

from __future__ import annotations

import msgspec

__all__ = ["Params"]


class Params(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Limits on sizes, counts and time windows, the same on every node."""

    max_tx_bytes: int = 64 * 1024
    """Largest encoded transaction, witnesses included, in bytes."""
    max_inputs: int = 64
    """Most input coins one transaction may spend."""
    max_outputs: int = 64
    """Most output coins one transaction may create."""
    max_block_txs: int = 10_000
    """Most transactions one block may order."""
    max_block_bytes: int = 64 * 1024 * 1024
    """Largest encoded block in bytes."""
    max_window: int = 1_000
    """How many blocks past the current height a transaction's `valid_until` may lie."""
    block_interval_ms: int = 50
    """The orderer cuts a block at least this often while transactions wait."""
