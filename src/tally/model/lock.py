"""Locks: who may spend a coin.

Each lock kind is a small frozen struct; `tally.rules.locks` owns the one function per kind
that checks a spend. Locks are hashed for addresses (`lock_hash`), so two coins with the same
lock share an address.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

import msgspec

from tally.model.types import Height, PublicKey

__all__ = ["KeyLock", "MultiLock", "EscrowLock", "Lock", "ESCROW_PAYER", "ESCROW_PAYEE"]

_Key = Annotated[PublicKey, msgspec.Meta(min_length=32, max_length=32)]

ESCROW_PAYER = 0
"""Signer index of the payer in an `EscrowLock` witness: reclaims after expiry."""
ESCROW_PAYEE = 1
"""Signer index of the payee in an `EscrowLock` witness: captures until expiry."""


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


Lock: TypeAlias = KeyLock | MultiLock | EscrowLock
"""Every lock kind, encoded as a tagged array `[tag, ...fields]`."""
