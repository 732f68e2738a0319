"""Addresses: bech32m strings of a lock's hash with the network's human-readable prefix."""

from __future__ import annotations

from tally.crypto.bech32 import InvalidAddressError, decode_address, encode_address
from tally.crypto.hashing import tagged_hash
from tally.model.encoding import encode
from tally.model.lock import Lock
from tally.model.rejection import Rejection
from tally.model.types import Hash32

__all__ = ["lock_hash", "address_of", "parse_address", "BadAddressError"]


class BadAddressError(Rejection):
    """A string is not an address of this network."""

    code = "address.invalid"


def lock_hash(lock: Lock) -> Hash32:
    """The 32-byte hash an address encodes."""
    return Hash32(tagged_hash("tally/lock", encode(lock)))


def address_of(lock: Lock, hrp: str) -> str:
    """The address of `lock` on a network with prefix `hrp`."""
    return encode_address(hrp, lock_hash(lock))


def parse_address(address: str, hrp: str) -> Hash32:
    """The lock hash inside `address`.

    Raises:
        BadAddressError: wrong prefix, bad checksum or characters, or wrong length.
    """
    try:
        return Hash32(decode_address(hrp, address))
    except InvalidAddressError as exc:
        raise BadAddressError(f"not a valid {hrp} address: {exc}", address=address) from None
