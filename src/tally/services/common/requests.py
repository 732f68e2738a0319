"""Parsing of the services' request bodies and path parameters, refusing with our own codes.

Bodies are decoded here, strictly (unknown fields, wrong types and malformed JSON are 400
`request.invalid`), rather than by FastAPI's validation, so that every refusal names the
field and carries a stable code. Amounts are read by `tally.services.common.amounts`.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from tally.crypto.schnorr import is_valid_public_key
from tally.model.types import PublicKey
from tally.services.common.errors import BadRequestError

__all__ = [
    "MAX_IDEMPOTENCY_KEY",
    "RequestBody",
    "parse_body",
    "parse_idempotency_key",
    "parse_hex32",
    "parse_public_key",
    "parse_id",
]

MAX_IDEMPOTENCY_KEY = 128
"""The longest idempotency key, in characters."""

_IDEMPOTENCY_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY}}}")
_HEX32 = re.compile(r"[0-9a-f]{64}")


class RequestBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A JSON request body: the fields an endpoint takes and no others."""


_Body = TypeVar("_Body", bound=RequestBody)


def parse_body(body: bytes, kind: type[_Body]) -> _Body:
    """Decode a JSON request body into `kind`.

    Raises:
        BadRequestError: not JSON, not an object, a field missing, unknown or of a wrong type.
    """
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequestError(f"the request body is not what this endpoint takes: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequestError(f"the request body is not JSON: {exc}") from None


def parse_idempotency_key(value: object) -> str:
    """An idempotency key: 1 to 128 printable ASCII characters, no spaces.

    Raises:
        BadRequestError: anything else.
    """
    if not isinstance(value, str) or not _IDEMPOTENCY_KEY.fullmatch(value):
        raise BadRequestError(
            f"idempotency_key is 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters "
            "without spaces",
            field="idempotency_key",
        )
    return value


def parse_hex32(value: object, field: str) -> str:
    """A 32-byte id, hash or key as 64 hex digits; lowercase.

    Raises:
        BadRequestError: not a string of 64 hex digits.
    """
    text = value.lower() if isinstance(value, str) else ""
    if not _HEX32.fullmatch(text):
        raise BadRequestError(
            f"{field} is 32 bytes as 64 hex digits, got {value!r:.80}", field=field
        )
    return text


def parse_public_key(value: object, field: str) -> PublicKey:
    """An x-only public key as 64 hex digits.

    Raises:
        BadRequestError: not 64 hex digits, or not a point on secp256k1.
    """
    key = bytes.fromhex(parse_hex32(value, field))
    if not is_valid_public_key(key):
        raise BadRequestError(
            f"{field} {key.hex()} is not an x-only public key (a point on secp256k1)",
            field=field,
        )
    return PublicKey(key)


def parse_id(text: str, what: str) -> int:
    """A record's number in a path, such as `/v1/issuances/7`.

    Raises:
        BadRequestError: not a non-negative integer below 10^18.
    """
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise BadRequestError(f"{what} is a number, got {text[:40]!r}")
    return int(text)
