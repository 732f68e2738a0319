"""Genesis: the first state of a network, agreed by every member before the first block."""

from __future__ import annotations

from typing import Annotated

import msgspec

from tally.model.params import Params
from tally.model.types import AssetCode, PublicKey

__all__ = ["Genesis", "AssetEntry", "Member"]

_Key = Annotated[PublicKey, msgspec.Meta(min_length=32, max_length=32)]


class AssetEntry(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """An asset and the one key registered to issue it."""

    asset: AssetCode
    """The asset's code."""
    issuer: _Key
    """The issuer's key."""


class Member(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A consortium member and its node key."""

    name: str
    """The member's name."""
    key: _Key
    """The key that signs commit certificates."""


class Genesis(msgspec.Struct, frozen=True, kw_only=True, array_like=True, omit_defaults=True):
    """Chain id, parameters, admins, registered assets and members at height 0.

    Fields added after the first release have defaults and come last, and
    `tally.model.encoding.encode` leaves trailing fields at their defaults out of the array,
    so a genesis that does not use a later field keeps the encoding (and hash) it always had;
    an array that spells such a default out is refused as non-canonical. That trimming
    applies to a genesis encoded on its own: never nest one inside another object, carry its
    encoding as bytes instead.
    """

    chain_id: str
    """The network's id; every sighash and header carries it."""
    hrp: str
    """Human-readable prefix of addresses on this network (`tly` for dev networks)."""
    time_ms: int
    """When the network was created, milliseconds since the Unix epoch."""
    params: Params
    """The initial network parameters."""
    admins: tuple[_Key, ...]
    """Keys of the consortium admins who sign `Govern` transactions."""
    admin_threshold: int
    """How many admins must sign a `Govern` transaction."""
    assets: tuple[AssetEntry, ...]
    """Assets registered at genesis."""
    members: tuple[Member, ...]
    """Consensus members at genesis."""
    root_certificate: bytes = b""
    """DER of the consortium's root CA certificate, under which every member's TLS
    certificate is issued; empty on a single-node development network."""
