"""The canonical encoding of protocol objects, strict decoding, and the ids derived from it.

Every protocol object is a frozen `msgspec.Struct` encoded as a MessagePack array. msgspec
encodes integers in their shortest form and never reorders anything, so one object has one
encoding. Decoding is strict: it rejects malformed, truncated and trailing bytes, wrong types,
and bytes that decode but do not re-encode to exactly the input (msgspec itself accepts an
integer encoded wider than needed; we do not, since two encodings would give two ids).
Every failure is a `Rejection`; nothing else escapes a decoder.

A field added to an object after its first release comes last, with a default, and the
object says `omit_defaults=True`: its trailing fields left at their defaults are not written,
so every object that does not use the new field keeps the bytes and ids it always had. msgspec
writes every field of an `array_like` struct whatever that option says, so `encode` leaves
them out itself (`Genesis` is the one such object, and is only ever encoded on its own).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from tally.crypto.hashing import tagged_hash
from tally.model.block import Block, CommitCertificate, Header, Receipt
from tally.model.coin import Coin
from tally.model.genesis import Genesis
from tally.model.params import Params
from tally.model.rejection import (
    MalformedError,
    NonCanonicalError,
    Rejection,
    TooLargeError,
    TrailingBytesError,
    TruncatedError,
    WrongTypeError,
)
from tally.model.tx import SignedTx, TxBody
from tally.model.types import BlockHash, Hash32, TxId

__all__ = [
    "encode",
    "decode",
    "decode_tx",
    "prepare_decoders",
    "decode_block",
    "tx_id",
    "block_hash",
    "genesis_hash",
]

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder()
_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}
_OMITS_TRAILING_DEFAULTS = frozenset({Genesis})
"""Untagged `array_like` structs with `omit_defaults=True`, whose trailing defaults `encode`
leaves out (msgspec does not for array-like structs)."""


def _without_trailing_defaults(obj: msgspec.Struct) -> tuple[Any, ...]:
    """The values of `obj`'s fields, less the trailing ones equal to their defaults.

    A tuple of the values encodes exactly as the struct would, element for element; a
    nested struct inside it is still encoded by msgspec.
    """
    fields = msgspec.structs.fields(obj)
    values = [getattr(obj, field.name) for field in fields]
    end = len(values)
    while end and fields[end - 1].default is not msgspec.NODEFAULT:
        if values[end - 1] != fields[end - 1].default:
            break
        end -= 1
    return tuple(values[:end])


def encode(obj: object) -> bytes:
    """The canonical bytes of a protocol object."""
    if type(obj) in _OMITS_TRAILING_DEFAULTS and isinstance(obj, msgspec.Struct):
        return _encoder.encode(_without_trailing_defaults(obj))
    return _encoder.encode(obj)


def _decoder_for(kind: type[T]) -> msgspec.msgpack.Decoder[T]:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.msgpack.Decoder(kind)
    return decoder


def prepare_decoders(*kinds: Any) -> None:
    """Build the decoders of `kinds` now, while the importing thread runs alone.

    msgspec builds a struct type's decoding information when the first decoder of it is
    made, and two threads doing that at once crash the process (seen with msgspec 0.22 on
    CPython 3.11: a segmentation fault when the first transactions arrived on two threads
    together). So every module that decodes a kind of its own prepares it at import.
    """
    for kind in kinds:
        _decoder_for(kind)


def decode(data: bytes, kind: type[T], *, max_bytes: int | None = None) -> T:
    """Decode canonical bytes of a `kind` object strictly.

    Raises:
        TooLargeError: `data` is longer than `max_bytes`.
        TruncatedError: the input ends inside the object.
        TrailingBytesError: bytes follow the object.
        MalformedError: not MessagePack, or a string is not UTF-8.
        WrongTypeError: a field has the wrong type or length.
        NonCanonicalError: the bytes do not re-encode to themselves.
        Rejection: a value the object refuses to hold (an amount out of range, …).
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise TooLargeError(
            f"object is {len(data)} bytes, the limit is {max_bytes}",
            size=len(data),
            limit=max_bytes,
        )
    try:
        obj = _decoder_for(kind).decode(data)
    except msgspec.ValidationError as exc:
        raise WrongTypeError(f"wrong type or shape: {exc}") from None
    except msgspec.DecodeError as exc:
        text = str(exc)
        if "truncated" in text:
            raise TruncatedError("input ends before the object does") from None
        if "trailing" in text:
            raise TrailingBytesError(f"bytes follow the object: {text}") from None
        raise MalformedError(f"not a valid encoding: {text}") from None
    except UnicodeDecodeError as exc:
        raise MalformedError(f"a string is not valid UTF-8: {exc.reason}") from None
    except Rejection:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise MalformedError(f"not a valid encoding: {exc}") from None
    if encode(obj) != data:
        raise NonCanonicalError("bytes decode but are not the canonical encoding of the object")
    return obj


def decode_tx(data: bytes, params: Params) -> SignedTx:
    """Decode a signed transaction, refusing anything over `params.max_tx_bytes` first."""
    return decode(data, SignedTx, max_bytes=params.max_tx_bytes)


def decode_block(data: bytes, params: Params) -> Block:
    """Decode a block, refusing anything over `params.max_block_bytes` first."""
    return decode(data, Block, max_bytes=params.max_block_bytes)


def tx_id(body: TxBody) -> TxId:
    """A transaction's id: the tagged hash of its body's canonical encoding."""
    return TxId(tagged_hash("tally/tx", _encoder.encode(body)))


def block_hash(header: Header) -> BlockHash:
    """A block's hash: the tagged hash of its header's canonical encoding."""
    return BlockHash(tagged_hash("tally/block", _encoder.encode(header)))


def genesis_hash(genesis: Genesis) -> Hash32:
    """The hash the first block's `prev_hash` points to."""
    return Hash32(tagged_hash("tally/genesis", encode(genesis)))


prepare_decoders(SignedTx, Block, Header, Coin, Receipt, CommitCertificate, Genesis, list[bytes])
