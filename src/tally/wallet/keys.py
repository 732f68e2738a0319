"""Wallet keys: one random seed, and every key of the wallet derived from it.

A wallet holds a single 32-byte seed drawn from the operating system. Receive keys are
derived from it by index, one fresh key per payment received, so that two payments to one
wallet cannot be linked by their key; the identity key, under a separate tag, authenticates
the wallet to its operator and never holds coins. Derivation is deterministic: the same
seed gives the same keys, so the seed alone restores them.

    key(seed, i) = the first valid scalar among
        tagged_hash("tally/wallet/key", seed || i)             (i: 4 bytes, big-endian)
        tagged_hash("tally/wallet/key", seed || i || counter)  (counter: 4 bytes, 1, 2, ...)

Fewer than one candidate in 2^127 is not a valid secp256k1 scalar, so the retry is there for
completeness; it keeps derivation total without changing any key a wallet will ever see.
"""

from __future__ import annotations

import secrets
from typing import Final

from tally.crypto.hashing import tagged_hash
from tally.crypto.schnorr import InvalidKeyError, PrivateKey
from tally.wallet.errors import WalletError

__all__ = [
    "SEED_SIZE",
    "MAX_KEY_INDEX",
    "KeyIndexError",
    "new_seed",
    "derive_key",
    "identity_key",
]

SEED_SIZE: Final = 32
"""Bytes in a wallet seed."""
MAX_KEY_INDEX: Final = 2**31 - 1
"""The largest receive-key index."""

_KEY_TAG: Final = "tally/wallet/key"
_IDENTITY_TAG: Final = "tally/wallet/identity"


class KeyIndexError(WalletError):
    """A key index is outside 0 … 2^31-1, the range a wallet derives keys in."""

    code = "wallet.key_index"


def new_seed() -> bytes:
    """Draw a fresh wallet seed from the operating system's random source.

    Returns:
        32 random bytes.

    """
    return secrets.token_bytes(SEED_SIZE)


def _check_seed(seed: bytes) -> None:
    if len(seed) != SEED_SIZE:
        raise ValueError(f"a wallet seed is {SEED_SIZE} bytes, got {len(seed)}")


def _first_valid_key(tag: str, data: bytes) -> PrivateKey:
    """The first candidate of `tag` over `data`, then `data || counter`, that is a key."""
    candidate = tagged_hash(tag, data)
    counter = 0
    while True:
        try:
            return PrivateKey.from_bytes(candidate)
        except InvalidKeyError:
            counter += 1
            candidate = tagged_hash(tag, data + counter.to_bytes(4, "big"))


def derive_key(seed: bytes, index: int) -> PrivateKey:
    """The receive key number `index` of the wallet with `seed`.

    Args:
        seed: The wallet's 32-byte seed.
        index: The key's index, 0 … 2^31-1.

    Returns:
        The key; the same seed and index always give the same key.

    Raises:
        KeyIndexError: `index` is not an integer in 0 … 2^31-1.
        ValueError: `seed` is not 32 bytes.

    """
    if type(index) is not int or not 0 <= index <= MAX_KEY_INDEX:
        raise KeyIndexError(
            f"a key index is an integer in 0 … {MAX_KEY_INDEX}, got {index!r}", index=str(index)
        )
    _check_seed(seed)
    return _first_valid_key(_KEY_TAG, bytes(seed) + index.to_bytes(4, "big"))


def identity_key(seed: bytes) -> PrivateKey:
    """The wallet's identity key, which signs its requests to its operator.

    It is derived under its own tag, so it is never one of the receive keys.

    Args:
        seed: The wallet's 32-byte seed.

    Returns:
        The identity key.

    Raises:
        ValueError: `seed` is not 32 bytes.

    """
    _check_seed(seed)
    return _first_valid_key(_IDENTITY_TAG, bytes(seed))
