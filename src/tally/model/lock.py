"""Locks: who may spend a coin.

Each lock kind is a small frozen struct; `tally.rules.locks` owns the one function per kind
that checks a spend. Locks are hashed for addresses (`lock_hash`), so two coins with the same
lock share an address.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

import msgspec

from tally.model.types import Height, PublicKey

__all__ = [
    "KeyLock",
    "MultiLock",
    "EscrowLock",
    "OfflineLock",
    "Lock",
    "ESCROW_PAYER",
    "ESCROW_PAYEE",
    "OFFLINE_OWNER",
]

_Key = Annotated[PublicKey, msgspec.Meta(min_length=32, max_length=32)]

ESCROW_PAYER = 0
"""Signer index of the payer in an `EscrowLock` witness: reclaims after expiry."""
ESCROW_PAYEE = 1
"""Signer index of the payee in an `EscrowLock` witness: captures until expiry."""
OFFLINE_OWNER = 0
"""Signer index of the owner in an `OfflineLock` witness, the only signer it has."""


class KeyLock(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=1):
    """Spendable by one signature of one key."""

    key: _Key
    """The owner's x-only public key."""


class MultiLock(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=2):
    """Spendable by signatures of at least `threshold` of `keys`."""

    threshold: int
    """How many distinct keys must sign, 1 … len(keys)."""
    keys: tuple[_Key, ...]
    """The co-owners' keys, at most 16; a witness names signers by index into this tuple."""


class EscrowLock(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=3):
    """A pre-payment: the payee may capture up to the amount until expiry, the payer reclaims after.

    A capture spends the escrow coin alone and pays the captured part to any lock and the
    rest back to `KeyLock(payer)` in the same transaction; a reclaim by the payer is allowed
    only at heights after `expiry`.
    """

    payer: _Key
    """Who pre-paid; signer index 0 in a witness."""
    payee: _Key
    """Who may capture; signer index 1 in a witness."""
    expiry: Height
    """Last height at which the payee may capture; from the next height the payer may reclaim."""


class OfflineLock(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=4):
    """Money for offline payments: handed on offline at any time, spent online only later.

    The owner spends the coin with one signature as signer 0 (`OFFLINE_OWNER`). Up to and
    including `unlock_height` the only spend allowed is an offline hop: a `Transfer` whose
    every output is again an `OfflineLock` with an `unlock_height` at least this one's, which
    a device signs offline and the ledger settles later, at any height. From the next height
    on the owner may spend the coin like a `KeyLock`. A payee that receives such a coin
    offline therefore knows it cannot be spent online behind its back before that height.
    An offline coin is never redeemed, and a key caught signing one coin away twice is
    barred from receiving offline coins again.
    """

    owner: _Key
    """The holder's x-only public key; signer index 0 in a witness."""
    unlock_height: Height
    """Last height at which the coin may only move as an offline hop; from the next height
    the owner may spend it online."""


Lock: TypeAlias = KeyLock | MultiLock | EscrowLock | OfflineLock
"""Every lock kind, encoded as a tagged array `[tag, ...fields]`."""
