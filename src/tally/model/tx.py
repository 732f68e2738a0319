"""Transactions: a tagged union of `Issue`, `Transfer`, `Redeem` and `Govern`, and their witnesses.

A `SignedTx` is a body and its witnesses. The transaction id hashes the body alone, so
nobody can change a transaction's id by changing its signatures; each signature signs the
`sighash`, which binds the chain id to the transaction id so that a transaction cannot be
replayed on another network.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

import msgspec

from tally.crypto.hashing import tagged_hash
from tally.model.coin import Coin
from tally.model.params import Params
from tally.model.types import AssetCode, CoinId, Hash32, Height, PublicKey, SignatureBytes, TxId

__all__ = [
    "Signature",
    "Witness",
    "Issue",
    "Transfer",
    "Redeem",
    "Govern",
    "RegisterAsset",
    "AddMember",
    "RevokeMember",
    "SetParams",
    "GovernAction",
    "TxBody",
    "SignedTx",
    "sighash",
]

_Id = Annotated[CoinId, msgspec.Meta(min_length=32, max_length=32)]
_Hash = Annotated[Hash32, msgspec.Meta(min_length=32, max_length=32)]
_Key = Annotated[PublicKey, msgspec.Meta(min_length=32, max_length=32)]
_Sig = Annotated[SignatureBytes, msgspec.Meta(min_length=64, max_length=64)]


class Signature(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One BIP-340 signature over the transaction's sighash, by the key at index `signer`."""

    signer: int
    """Index of the signing key in the lock's key list (0 for a `KeyLock` and for issuers)."""
    sig: _Sig
    """The 64-byte Schnorr signature."""


class Witness(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """What authorises one input (or, for `Issue` and `Govern`, the whole transaction)."""

    signatures: tuple[Signature, ...]
    """Signatures in strictly increasing signer order."""


class Issue(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=1):
    """The issuer creates new coins of an asset it is registered for, against frozen reserves."""

    asset: AssetCode
    """The asset issued; every output must be of it."""
    issuer: _Key
    """The issuer's key; must be the key registered for `asset`. It signs witness 0."""
    outputs: tuple[Coin, ...]
    """The new coins; their sum is added to the asset's issued supply."""
    reserve_ref: _Hash
    """Hash of the freeze certificate of the reserve that backs this issuance."""
    nonce: int
    """Makes otherwise identical issuances distinct transactions."""
    valid_until: Height
    """Last height at which the transaction may be committed."""


class Transfer(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=2):
    """Spends input coins and creates outputs of equal value per asset (pay, split, merge)."""

    inputs: tuple[_Id, ...]
    """Coins consumed, each at most once, each unspent; witness i authorises input i."""
    outputs: tuple[Coin, ...]
    """Coins created; ids derive from this transaction's id and the index."""
    valid_until: Height
    """Last height at which the transaction may be committed."""


class Redeem(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=3):
    """Hands coins back to the issuer; the asset's supply falls by their sum."""

    asset: AssetCode
    """The asset redeemed; every input must be of it."""
    inputs: tuple[_Id, ...]
    """Coins destroyed. Witness i authorises input i."""
    account: Annotated[bytes, msgspec.Meta(max_length=64)]
    """The reserve account at the issuer to be credited (opaque to the ledger)."""
    valid_until: Height
    """Last height at which the transaction may be committed."""


class RegisterAsset(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=1):
    """Registers an asset and the one key allowed to issue it (or replaces that key)."""

    asset: AssetCode
    """The asset's code."""
    issuer: _Key
    """The issuer's key."""


class AddMember(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=2):
    """Adds a consortium member whose key may sign commit certificates."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """The member's name, unique among members."""
    key: _Key
    """The member's node key."""


class RevokeMember(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=3):
    """Removes a consortium member; its key no longer counts in certificates."""

    key: _Key
    """The member's node key."""


class SetParams(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=4):
    """Replaces the network parameters from the next block on."""

    params: Params
    """The new parameters."""


GovernAction: TypeAlias = RegisterAsset | AddMember | RevokeMember | SetParams
"""Every governance action."""


class Govern(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=4):
    """A change of membership or parameters, signed by a threshold of consortium admins."""

    action: GovernAction
    """What changes."""
    nonce: int
    """Makes otherwise identical actions distinct transactions."""
    valid_until: Height
    """Last height at which the transaction may be committed."""


TxBody: TypeAlias = Issue | Transfer | Redeem | Govern
"""Every transaction kind, encoded as a tagged array `[tag, ...fields]`."""


class SignedTx(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A transaction body with its witnesses, as submitted and as stored in blocks."""

    body: TxBody
    """What the transaction does; its canonical encoding is hashed into the id."""
    witnesses: tuple[Witness, ...]
    """One per input for `Transfer` and `Redeem`; exactly one for `Issue` and `Govern`."""


def sighash(chain_id: str, txid: TxId) -> Hash32:
    """The 32-byte message every witness signature of `txid` signs on chain `chain_id`."""
    return Hash32(tagged_hash("tally/sighash", chain_id.encode() + b"\x00" + txid))
