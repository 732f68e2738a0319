"""Domain types of the protocol: names for the integers, strings and byte strings it uses.

They are `NewType`s, so they cost nothing at run time and msgspec encodes them as their base
type; their ranges are enforced where objects are built (see `tally.model.coin`) and by the
stateless checks in `tally.rules`.
"""

from __future__ import annotations

import re
from typing import Final, NewType

__all__ = [
    "Amount",
    "AssetCode",
    "CoinId",
    "TxId",
    "BlockHash",
    "Hash32",
    "Height",
    "PublicKey",
    "SignatureBytes",
    "MIN_AMOUNT",
    "MAX_AMOUNT",
    "ASSET_CODE_PATTERN",
    "is_valid_amount",
    "is_valid_asset_code",
]

Amount = NewType("Amount", int)
"""A count of an asset's minor units, 1 … 2^63-1. Never a float."""
AssetCode = NewType("AssetCode", str)
"""An asset's code: an upper-case letter, then 1 to 11 upper-case letters or digits (`CNY`)."""
Hash32 = NewType("Hash32", bytes)
"""A 32-byte SHA-256 digest."""
CoinId = NewType("CoinId", bytes)
"""A coin's id: tagged hash of its creating transaction's id and the output's index."""
TxId = NewType("TxId", bytes)
"""A transaction's id: tagged hash of its body's canonical encoding (witnesses excluded)."""
BlockHash = NewType("BlockHash", bytes)
"""A block's hash: tagged hash of its header's canonical encoding."""
Height = NewType("Height", int)
"""A block height; genesis is 0 and the first block is 1."""
PublicKey = NewType("PublicKey", bytes)
"""A 32-byte BIP-340 x-only public key."""
SignatureBytes = NewType("SignatureBytes", bytes)
"""A 64-byte BIP-340 Schnorr signature."""

MIN_AMOUNT: Final = 1
MAX_AMOUNT: Final = 2**63 - 1
ASSET_CODE_PATTERN: Final = re.compile(r"[A-Z][A-Z0-9]{1,11}")


def is_valid_amount(value: object) -> bool:
    """Whether `value` is an int (not a bool) in 1 … 2^63-1."""
    return type(value) is int and MIN_AMOUNT <= value <= MAX_AMOUNT


def is_valid_asset_code(value: object) -> bool:
    """Whether `value` is a well-formed asset code."""
    return isinstance(value, str) and ASSET_CODE_PATTERN.fullmatch(value) is not None
