"""Bech32m strings (BIP-350), the text form of Tally addresses.

An address is the network's human-readable part (HRP), the separator ``1``, the 32-byte
payload (a lock hash) in base-32, and a six-character checksum:
``tally1...`` on one network, ``ttally1...`` on another. The checksum is a BCH code over
GF(32) that detects any four substituted characters and makes other errors unlikely to
pass (less than one in a billion); bech32m's final constant 0x2bc830a3 fixes the
weakness of the original bech32 to inserting or deleting a ``q`` before a final ``p``.

This module follows the encoding rules of BIP-173 with the checksum constant of
BIP-350: characters of the HRP in ASCII 33 ... 126, no mixed case (an all-uppercase
string is accepted and read as lowercase), at most 90 characters in all, a data part of
the 32 characters ``qpzry9x8gf2tvdw0s3jn54khce6mua7l``, and at most four bits of zero
padding when the 5-bit groups are turned back into bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["encode_address", "decode_address", "InvalidAddressError"]

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_VALUES = {char: value for value, char in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_BECH32M_CONSTANT = 0x2BC830A3

_SEPARATOR = "1"
_CHECKSUM_LENGTH = 6
_MAX_LENGTH = 90
_MAX_HRP_LENGTH = 83  # 90 characters less the separator and the checksum
_PAYLOAD_SIZE = 32
_PAYLOAD_GROUPS = -(-_PAYLOAD_SIZE * 8 // 5)  # 52 characters of 5 bits hold 32 bytes


class InvalidAddressError(ValueError):
    """A string is not a valid bech32m address of the expected network and size."""


def _polymod(values: Iterable[int]) -> int:
    """Compute the BCH checksum remainder of a sequence of 5-bit values (BIP-173)."""
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = ((checksum & 0x1FFFFFF) << 5) ^ value
        for bit, generator in enumerate(_GENERATOR):
            if (top >> bit) & 1:
                checksum ^= generator
    return checksum


def _expand_hrp(hrp: str) -> list[int]:
    """Spread the HRP for the checksum: high bits of each char, a zero, low bits."""
    return [ord(char) >> 5 for char in hrp] + [0] + [ord(char) & 31 for char in hrp]


def _create_checksum(hrp: str, data: Sequence[int]) -> list[int]:
    """Compute the six 5-bit checksum values for `data` under `hrp`."""
    remainder = _polymod([*_expand_hrp(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ _BECH32M_CONSTANT
    return [(remainder >> 5 * (5 - i)) & 31 for i in range(_CHECKSUM_LENGTH)]


def _encode(hrp: str, data: Sequence[int]) -> str:
    """Write 5-bit values `data` under a lowercase `hrp` as bech32m (no checks)."""
    combined = [*data, *_create_checksum(hrp, data)]
    return hrp + _SEPARATOR + "".join(_CHARSET[value] for value in combined)


def _decode(text: str) -> tuple[str, list[int]]:
    """Split a bech32m string into its lowercase HRP and 5-bit data values.

    Checks everything BIP-350 asks of a bech32m string, whatever the data means.

    Raises:
        InvalidAddressError: a character outside ASCII 33 ... 126, mixed case, more than
            90 characters, no separator, an empty HRP, a checksum shorter than six
            characters, a character outside the data alphabet, or a wrong checksum.

    """
    for char in text:
        if not 33 <= ord(char) <= 126:
            raise InvalidAddressError(
                f"character {char!r} is not allowed in an address (ASCII 33 ... 126 only)"
            )
    lowered = text.lower()
    if lowered != text and text.upper() != text:
        raise InvalidAddressError("an address must be all lowercase or all uppercase")
    if len(text) > _MAX_LENGTH:
        raise InvalidAddressError(
            f"an address has at most {_MAX_LENGTH} characters, got {len(text)}"
        )
    position = lowered.rfind(_SEPARATOR)
    if position == -1:
        raise InvalidAddressError("an address needs the separator '1' after its prefix")
    if position == 0:
        raise InvalidAddressError("an address needs a prefix before the separator '1'")
    if len(lowered) - position - 1 < _CHECKSUM_LENGTH:
        raise InvalidAddressError(
            f"an address ends in a {_CHECKSUM_LENGTH}-character checksum;"
            f" only {len(lowered) - position - 1} characters follow the separator"
        )
    hrp = lowered[:position]
    data: list[int] = []
    for char in lowered[position + 1 :]:
        value = _CHARSET_VALUES.get(char)
        if value is None:
            raise InvalidAddressError(
                f"character {char!r} is not in the bech32 alphabet {_CHARSET!r}"
            )
        data.append(value)
    if _polymod([*_expand_hrp(hrp), *data]) != _BECH32M_CONSTANT:
        raise InvalidAddressError("the address checksum does not match (mistyped?)")
    return hrp, data[:-_CHECKSUM_LENGTH]


def _bytes_to_groups(payload: bytes) -> list[int]:
    """Regroup bytes into 5-bit values, big-endian, zero-padding the last group."""
    bits = len(payload) * 8
    padded_bits = -(-bits // 5) * 5
    number = int.from_bytes(payload, "big") << (padded_bits - bits)
    return [(number >> shift) & 31 for shift in range(padded_bits - 5, -1, -5)]


def _groups_to_bytes(groups: Sequence[int]) -> bytes:
    """Regroup 5-bit values into bytes, refusing more than 4 or nonzero padding bits.

    Raises:
        InvalidAddressError: the padding is 5 bits or more, or not all zero; either would
            let two strings stand for the same bytes.

    """
    bits = len(groups) * 5
    padding = bits % 8
    number = 0
    for group in groups:
        number = (number << 5) | group
    if padding >= 5:
        raise InvalidAddressError("the address data has a whole unused character at its end")
    if number & ((1 << padding) - 1):
        raise InvalidAddressError("the address data ends in nonzero padding bits")
    return (number >> padding).to_bytes(bits // 8, "big")


def _check_hrp(hrp: str) -> None:
    """Refuse a prefix that no valid address could carry."""
    if not 1 <= len(hrp) <= _MAX_HRP_LENGTH:
        raise ValueError(
            f"an address prefix has 1 ... {_MAX_HRP_LENGTH} characters, got {len(hrp)}"
        )
    if any(not 33 <= ord(char) <= 126 for char in hrp):
        raise ValueError(f"an address prefix uses ASCII 33 ... 126 only, got {hrp!r}")


def encode_address(hrp: str, payload: bytes) -> str:
    """Encode a 32-byte payload as a bech32m address.

    Args:
        hrp: The network's human-readable prefix, such as ``"tally"``; written in
            lowercase.
        payload: The 32 bytes to encode (a lock hash).

    Returns:
        The lowercase address, ``hrp + "1" + data + checksum``.

    Raises:
        ValueError: `hrp` is empty, too long, or has characters outside ASCII 33 ... 126;
            `payload` is not 32 bytes; or the address would exceed 90 characters.

    """
    _check_hrp(hrp)
    if len(payload) != _PAYLOAD_SIZE:
        raise ValueError(f"an address payload is {_PAYLOAD_SIZE} bytes, got {len(payload)}")
    address = _encode(hrp.lower(), _bytes_to_groups(bytes(payload)))
    if len(address) > _MAX_LENGTH:
        raise ValueError(
            f"prefix {hrp!r} is too long: the address would have {len(address)} characters,"
            f" more than {_MAX_LENGTH}"
        )
    return address


def decode_address(hrp: str, address: str) -> bytes:
    """Decode a bech32m address of the network with prefix `hrp`.

    Args:
        hrp: The expected human-readable prefix (compared without regard to case).
        address: The address text, all lowercase or all uppercase.

    Returns:
        The 32-byte payload.

    Raises:
        InvalidAddressError: `address` is not valid bech32m (bad characters, mixed case,
            too long, no separator or prefix, bad checksum), its prefix is not `hrp`, or its
            data is not exactly 32 bytes with canonical padding.

    """
    found_hrp, groups = _decode(address)
    if found_hrp != hrp.lower():
        raise InvalidAddressError(
            f"address prefix is {found_hrp!r}, expected {hrp.lower()!r} (another network?)"
        )
    if len(groups) != _PAYLOAD_GROUPS:
        raise InvalidAddressError(
            f"an address holds {_PAYLOAD_SIZE} bytes in {_PAYLOAD_GROUPS} data characters,"
            f" this one has {len(groups)} data characters"
        )
    return _groups_to_bytes(groups)
