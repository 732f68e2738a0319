"""What the rules read from the ledger state, and the multiset elements the commitment covers.

The rules never see a database. They read through `StateView`, a narrow read-only protocol
that the store implements over LMDB or memory, and return a `StateDelta` for the node to
write in one atomic batch.

The state commitment covers three kinds of element, each O(1) to add or remove: every
unspent coin (`coin_element`), every asset's supply row (`supply_element`), and every key
barred from offline locks (`barred_element`), since a barred key changes which transactions
are valid. The double-spend references kept with a barred key are evidence derived from the
blocks, like the transaction index, and are not committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from tally.crypto.commitment import StateCommitment
from tally.model.coin import Coin
from tally.model.encoding import encode, prepare_decoders
from tally.model.genesis import Genesis, Member
from tally.model.params import Params
from tally.model.types import AssetCode, CoinId, Height, PublicKey, TxId

__all__ = [
    "Supply",
    "Governance",
    "StateView",
    "StateDelta",
    "BlockContext",
    "DoubleSpend",
    "coin_element",
    "supply_element",
    "barred_element",
    "commitment_from_scratch",
    "governance_from_genesis",
]


class Supply(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Totals of one asset since genesis; outstanding = issued - redeemed."""

    issued: int
    """Sum of all issuances."""
    redeemed: int
    """Sum of all redemptions."""

    @property
    def outstanding(self) -> int:
        """What should equal the sum of the asset's unspent coins."""
        return self.issued - self.redeemed


class Governance(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Who governs and who orders: admins, their threshold, members, parameters."""

    admins: tuple[PublicKey, ...]
    """Keys of the admins who sign `Govern` transactions."""
    admin_threshold: int
    """How many admins must sign."""
    members: tuple[Member, ...]
    """Consensus members; certificate signer indices point into this tuple."""
    params: Params
    """The network parameters in force."""


@dataclass(frozen=True)
class BlockContext:
    """Everything about the block being applied that is not state."""

    chain_id: str
    """The network's chain id, bound into every sighash."""
    height: Height
    """The height of the block being applied."""
    time_ms: int
    """The block's time as the orderer set it."""


class StateView(Protocol):
    """Read-only access to the committed state, as of the end of the previous block."""

    def coin(self, coin_id: CoinId) -> Coin | None:
        """The unspent coin with this id, or None if it is spent or never existed."""

    def spender(self, coin_id: CoinId) -> TxId | None:
        """The transaction that spent this coin, or None if it is unspent or unknown."""

    def spent(self, coin_id: CoinId) -> tuple[TxId, Coin] | None:
        """The spending transaction and the coin itself, for a spent coin; else None."""

    def is_barred(self, owner: PublicKey) -> bool:
        """Whether `owner` is barred from offline locks for a double spend."""

    def supply(self, asset: AssetCode) -> Supply | None:
        """The asset's supply totals, or None before its first issuance."""

    def issuer(self, asset: AssetCode) -> PublicKey | None:
        """The key registered to issue the asset, or None if it is not registered."""

    def is_committed(self, txid: TxId) -> bool:
        """Whether an accepted transaction with this id is in the idempotency table."""

    def governance(self) -> Governance:
        """Admins, members and parameters in force."""

    def commitment(self) -> StateCommitment:
        """A copy of the state commitment accumulator, for the rules to update."""


@dataclass(frozen=True)
class DoubleSpend:
    """A transfer that spent an offline coin its owner had already signed away: the evidence."""

    owner: PublicKey
    """The coin's `OfflineLock` owner, who signed both spends; barred from then on."""
    coin_id: CoinId
    """The coin spent twice."""
    first: TxId
    """The transaction that spent it, applied earlier (in this block or before)."""
    second: TxId
    """The transaction recorded as `offline.double_spend` and not applied."""


@dataclass
class StateDelta:
    """Everything one block changes, for the store to write in one atomic batch."""

    created: dict[CoinId, Coin] = field(default_factory=dict)
    """Coins created by the block and still unspent at its end."""
    spent: dict[CoinId, tuple[TxId, Coin]] = field(default_factory=dict)
    """Coins spent by the block (also those created in it), with the spending transaction."""
    supply: dict[AssetCode, Supply] = field(default_factory=dict)
    """New supply totals of the assets the block changed."""
    issuers: dict[AssetCode, PublicKey] = field(default_factory=dict)
    """Assets registered or re-keyed by the block."""
    governance: Governance | None = None
    """New governance, if the block changed it."""
    committed: dict[TxId, Height] = field(default_factory=dict)
    """Accepted transaction ids with their `valid_until`, for the idempotency table."""
    barred: list[PublicKey] = field(default_factory=list)
    """Keys barred from offline locks by this block (each once, none barred before)."""
    double_spends: list[DoubleSpend] = field(default_factory=list)
    """The double spends this block recorded, in order (also those of keys barred before)."""


def coin_element(coin_id: CoinId, coin_bytes: bytes) -> bytes:
    """The commitment element of one unspent coin: its id and canonical bytes."""
    return b"C" + coin_id + coin_bytes


def supply_element(asset: AssetCode, supply: Supply) -> bytes:
    """The commitment element of one asset's supply row."""
    return b"S" + encode((asset, supply.issued, supply.redeemed))


def barred_element(owner: PublicKey) -> bytes:
    """The commitment element of one key barred from offline locks."""
    return b"B" + owner


def commitment_from_scratch(
    coins: Iterable[tuple[CoinId, bytes]],
    supplies: Iterable[tuple[AssetCode, Supply]],
    barred: Iterable[PublicKey] = (),
) -> StateCommitment:
    """Recompute the commitment from the full unspent set, supply table and barred keys (audits)."""
    acc = StateCommitment()
    for cid, coin_bytes in coins:
        acc.add(coin_element(cid, coin_bytes))
    for asset, supply in supplies:
        acc.add(supply_element(asset, supply))
    for owner in barred:
        acc.add(barred_element(owner))
    return acc


def governance_from_genesis(genesis: Genesis) -> Governance:
    """The governance in force at height 0."""
    return Governance(
        admins=genesis.admins,
        admin_threshold=genesis.admin_threshold,
        members=genesis.members,
        params=genesis.params,
    )


prepare_decoders(Supply, Governance)  # decoded by the store on several threads
