"""Parsing of API request bodies and path parameters into bytes the node decodes.

Pure functions that raise `Rejection`s, so they are fuzzed like the protocol decoders.
"""

from __future__ import annotations

import msgspec

from tally.model.encoding import decode
from tally.node.errors import BadRequestError

__all__ = ["parse_tx_json", "parse_batch", "parse_hex_id", "parse_height", "MAX_BATCH_BODY"]

MAX_BATCH_BODY = 64 * 1024 * 1024
"""Largest body of `POST /v1/txs/batch`."""


def parse_tx_json(body: bytes) -> bytes:
    """The canonical transaction bytes inside a JSON body `{"tx": "<hex>"}`.

    Raises:
        BadRequestError: not JSON, not of that shape, or not hex.
    """
    try:
        document = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("tx"), str):
        raise BadRequestError('JSON body must be {"tx": "<hex of canonical bytes>"}')
    try:
        return bytes.fromhex(document["tx"])
    except ValueError:
        raise BadRequestError("tx must be hex of the canonical bytes") from None


def parse_batch(body: bytes) -> list[bytes]:
    """The canonical transactions in a batch body: a MessagePack array of byte strings.

    Raises:
        BadRequestError: the body is over `MAX_BATCH_BODY`.
        DecodeError: the body is not a canonical array of byte strings.
    """
    if len(body) > MAX_BATCH_BODY:
        raise BadRequestError(f"batch body over {MAX_BATCH_BODY} bytes", size=len(body))
    return decode(body, list[bytes])


def parse_hex_id(text: str, what: str) -> bytes:
    """A 32-byte id written as 64 hex digits.

    Raises:
        BadRequestError: not hex, or not 32 bytes.
    """
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise BadRequestError(f"{what} must be 64 hex digits, got {text[:80]!r}") from None
    if len(value) != 32:
        raise BadRequestError(f"{what} must be 32 bytes (64 hex digits), got {len(value)} bytes")
    return value


def parse_height(text: str) -> int:
    """A block height written in decimal digits.

    Raises:
        BadRequestError: not a non-negative integer below 2^63.
    """
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise BadRequestError(f"height must be a non-negative integer, got {text[:40]!r}")
    return int(text)
