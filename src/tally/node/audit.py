"""Auditing a node's store offline: the commitment recomputed from scratch, and conservation."""

from __future__ import annotations

from dataclasses import dataclass, field

from tally.model.block import Block
from tally.model.coin import Coin
from tally.model.encoding import decode
from tally.store.ledger import LedgerStore

__all__ = ["AuditReport", "audit_store"]


@dataclass
class AuditReport:
    """What an audit found; `ok` when every check holds."""

    height: int
    """Height of the last block."""
    stored_root: str
    """The state commitment the store holds (hex)."""
    recomputed_root: str
    """The commitment recomputed from every unspent coin and supply row (hex)."""
    header_root: str | None
    """The state root in the last block's header (hex), if there is a block."""
    unspent: dict[str, int] = field(default_factory=dict)
    """Sum of unspent coins per asset."""
    outstanding: dict[str, int] = field(default_factory=dict)
    """Issued minus redeemed per asset."""

    @property
    def conserved(self) -> bool:
        """Whether every asset's unspent sum equals its outstanding supply."""
        assets = set(self.unspent) | set(self.outstanding)
        return all(self.unspent.get(a, 0) == self.outstanding.get(a, 0) for a in assets)

    @property
    def ok(self) -> bool:
        """Whether commitments agree and value is conserved."""
        header_agrees = self.header_root is None or self.header_root == self.stored_root
        return self.stored_root == self.recomputed_root and header_agrees and self.conserved


def audit_store(store: LedgerStore) -> AuditReport:
    """Recompute the state commitment and the per-asset sums from the whole store."""
    height, _ = store.tip()
    unspent: dict[str, int] = {}
    for _, coin_bytes in store.unspent():
        coin = decode(coin_bytes, Coin)
        unspent[coin.asset] = unspent.get(coin.asset, 0) + coin.amount
    block: Block | None = store.block(height) if height > 0 else None
    return AuditReport(
        height=height,
        stored_root=store.stored_commitment().digest().hex(),
        recomputed_root=store.recompute_commitment().digest().hex(),
        header_root=block.header.state_root.hex() if block is not None else None,
        unspent=unspent,
        outstanding={asset: supply.outstanding for asset, supply in store.supplies()},
    )
