"""Payment requests: a merchant's signed, expiring ask for an amount, and its `tally:` URI.

A payment request is an off-ledger object. The merchant fills in who is to be paid (`payee`,
an x-only key; the coin goes to `KeyLock(payee)`), how much of which asset, a memo and an
expiry in wall-clock milliseconds, and signs it with its identity key (`merchant`). The payer's
wallet reads the request from a QR code or a link, checks it with `verify_request` (signature,
network, expiry) and only then pays.

A request's id is `tagged_hash("tally/payment-request", encode(request))`, the tagged hash of
its canonical MessagePack encoding; the merchant signs that id with BIP-340 Schnorr. The tag is
used for nothing else, so the signature cannot be replayed as a transaction signature. A fresh
16-byte `nonce` in every request keeps two requests from ever sharing an id.

The URI form is what a QR code carries::

    tally:<address>?amount=<minor units>&asset=<code>&memo=<text>&exp=<ms>&chain=<chain id>
        &payee=<hex>&merchant=<hex>&seq=<n>&nonce=<hex>&sig=<hex>

where `<address>` is the address of `KeyLock(payee)` on the network, so that a wallet that
only understands addresses still pays the right lock. Every value has exactly one spelling
(decimal integers without leading zeros, lower-case hex, text percent-encoded in UTF-8 with
upper-case escapes and nothing left unescaped but ``A-Z a-z 0-9 - . _ ~``), and `parse_uri`
refuses any other: one request has one URI, and a changed character is always refused,
either as malformed or by the signature check.

A merchant counter shows a new code for every sale: `CounterSession` numbers its requests
(`sequence`) and gives each sale a fresh payee key, so no two sales share a code and a paid
code cannot be mistaken for the next one.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from collections.abc import Callable
from typing import Annotated, Final
from urllib.parse import quote, unquote

import msgspec

from tally.crypto.hashing import tagged_hash
from tally.crypto.schnorr import PrivateKey, is_valid_public_key, verify
from tally.model.address import BadAddressError, address_of, parse_address
from tally.model.coin import AmountOutOfRangeError, InvalidAssetCodeError
from tally.model.encoding import encode
from tally.model.lock import KeyLock
from tally.model.types import (
    MAX_AMOUNT,
    MIN_AMOUNT,
    Amount,
    AssetCode,
    Hash32,
    PublicKey,
    SignatureBytes,
    is_valid_amount,
    is_valid_asset_code,
)
from tally.wallet.errors import WalletError

__all__ = [
    "PaymentRequest",
    "SignedRequest",
    "request_id",
    "payee_lock",
    "new_request",
    "sign_request",
    "verify_request",
    "to_uri",
    "parse_uri",
    "CounterSession",
    "URI_SCHEME",
    "MAX_MEMO_CHARS",
    "MAX_CHAIN_ID_CHARS",
    "NONCE_SIZE",
    "MAX_URI_LENGTH",
    "MAX_INTEGER",
    "PaymentRequestError",
    "RequestMalformedError",
    "RequestSignatureError",
    "RequestExpiredError",
    "RequestNetworkError",
]

URI_SCHEME: Final = "tally"
"""The URI scheme of payment requests, written in lower case."""
MAX_MEMO_CHARS: Final = 140
"""The longest memo, in characters (code points)."""
MAX_CHAIN_ID_CHARS: Final = 64
"""The longest chain id a request may name, in characters."""
NONCE_SIZE: Final = 16
"""Bytes of the random nonce that makes every request's id unique."""
MAX_URI_LENGTH: Final = 4096
"""The longest URI `parse_uri` reads; a QR code holds at most 2953 bytes anyway."""
MAX_INTEGER: Final = 2**63 - 1
"""The largest `expires_ms` and `sequence`: a signed 64-bit integer."""

_REQUEST_TAG: Final = "tally/payment-request"
_KEY_SIZE: Final = 32
_SIGNATURE_SIZE: Final = 64
_SEPARATOR: Final = "1"  # bech32's separator between an address's prefix and its data
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]{0,18}")  # at most 19 digits: 2^63-1 has 19
_LOWER_HEX: Final = re.compile(r"(?:[0-9a-f]{2})*")
_PARAMETERS: Final = (
    "amount",
    "asset",
    "memo",
    "exp",
    "chain",
    "payee",
    "merchant",
    "seq",
    "nonce",
    "sig",
)
"""The URI's query parameters, in the order `to_uri` writes them; each appears exactly once."""

_Key = Annotated[PublicKey, msgspec.Meta(min_length=_KEY_SIZE, max_length=_KEY_SIZE)]
_Nonce = Annotated[bytes, msgspec.Meta(min_length=NONCE_SIZE, max_length=NONCE_SIZE)]
_Signature = Annotated[
    SignatureBytes, msgspec.Meta(min_length=_SIGNATURE_SIZE, max_length=_SIGNATURE_SIZE)
]


class PaymentRequestError(WalletError):
    """A payment request is refused before anything is paid (a grouping class)."""


class RequestMalformedError(PaymentRequestError):
    """A payment request or its URI is not well formed: a field, parameter or value is wrong."""

    code = "payment_request.malformed"
    http_status = 400


class RequestSignatureError(PaymentRequestError):
    """A payment request's signature is not the merchant's signature of the request."""

    code = "payment_request.signature"
    http_status = 400


class RequestExpiredError(PaymentRequestError):
    """A payment request's expiry has passed; the merchant must make a new one."""

    code = "payment_request.expired"
    http_status = 400


class RequestNetworkError(PaymentRequestError):
    """A payment request is for another network (chain id or address prefix)."""

    code = "payment_request.network"
    http_status = 400


class PaymentRequest(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A merchant's ask to be paid an amount of an asset, before an expiry.

    A request whose fields break the rules below cannot be built, neither in code nor by
    decoding: the amount must be in 1 … 2^63-1, the asset code well formed, the keys valid
    x-only keys, the memo and chain id short and free of control characters, the nonce 16
    bytes, and `expires_ms` and `sequence` in 0 … 2^63-1.
    """

    chain_id: str
    """The network the payment is to be made on; a wallet of another network refuses it."""
    payee: _Key
    """The x-only key to be paid: the payer's coin goes to `KeyLock(payee)`."""
    asset: AssetCode
    """The asset's code, such as `CNY`."""
    amount: Amount
    """How much to pay, in minor units, 1 … 2^63-1."""
    memo: str
    """Text shown to the payer (an order number, what is bought); at most 140 characters."""
    expires_ms: int
    """Wall-clock time, in milliseconds since the Unix epoch, from which the request is void."""
    merchant: _Key
    """The merchant's identity key, which signs the request."""
    sequence: int
    """The number of the request in a counter session (see `CounterSession`); 0 if static."""
    nonce: _Nonce
    """16 random bytes, so that no two requests share an id."""

    def __post_init__(self) -> None:
        _check_fields(self)


class SignedRequest(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A payment request and the merchant's signature of its id."""

    request: PaymentRequest
    """The request as the merchant made it."""
    signature: _Signature
    """BIP-340 signature of `request_id(request)` by `request.merchant`."""


def _check_text(name: str, value: object, limit: int) -> str:
    """Refuse a text field that is not a str of at most `limit` characters, none a control.

    Raises:
        RequestMalformedError: not a str, too long or too short, a control character, or a
            lone surrogate that UTF-8 cannot carry.
    """
    if not isinstance(value, str):
        raise RequestMalformedError(f"{name} must be text, got {type(value).__name__}", field=name)
    if len(value) > limit:
        raise RequestMalformedError(
            f"{name} has {len(value)} characters, at most {limit} are allowed",
            field=name,
            length=len(value),
            limit=limit,
        )
    # A memo is printed to the payer: a control character could rewrite the terminal.
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc":
            raise RequestMalformedError(
                f"{name} contains the control character U+{ord(char):04X}", field=name
            )
        if category == "Cs":
            raise RequestMalformedError(
                f"{name} contains a lone surrogate U+{ord(char):04X}, which is not text",
                field=name,
            )
    return value


def _check_key(name: str, value: object) -> None:
    """Refuse a field that is not a valid 32-byte x-only public key.

    Raises:
        RequestMalformedError: not 32 bytes, or not the x coordinate of a curve point (a coin
            locked to it could never be spent).
    """
    if not isinstance(value, bytes) or len(value) != _KEY_SIZE:
        raise RequestMalformedError(f"{name} must be a {_KEY_SIZE}-byte public key", field=name)
    if not is_valid_public_key(value):
        raise RequestMalformedError(
            f"{name} {value.hex()} is not a valid public key (no point on the curve)",
            field=name,
        )


def _check_integer(name: str, value: object) -> None:
    """Refuse a field that is not an int in 0 … 2^63-1.

    Raises:
        RequestMalformedError: not an int (a bool is not one), or out of range.
    """
    if type(value) is not int or not 0 <= value <= MAX_INTEGER:
        raise RequestMalformedError(
            f"{name} must be an integer in 0 … {MAX_INTEGER}, got {value!r}",
            field=name,
            value=str(value),
        )


def _check_fields(req: PaymentRequest) -> None:
    """Check every field of `req` against the rules of `PaymentRequest`, in field order.

    Raises:
        RequestMalformedError: a chain id, key, memo, expiry, sequence or nonce is wrong.
        InvalidAssetCodeError: the asset code does not match `[A-Z][A-Z0-9]{1,11}`.
        AmountOutOfRangeError: the amount is not an integer in 1 … 2^63-1.
    """
    _check_text("chain_id", req.chain_id, MAX_CHAIN_ID_CHARS)
    if not req.chain_id:
        raise RequestMalformedError("chain_id must not be empty", field="chain_id")
    _check_key("payee", req.payee)
    if not is_valid_asset_code(req.asset):
        raise InvalidAssetCodeError(
            f"asset code must match [A-Z][A-Z0-9]{{1,11}}, got {req.asset!r}",
            asset=str(req.asset),
        )
    if not is_valid_amount(req.amount):
        raise AmountOutOfRangeError(
            f"amount must be an integer in {MIN_AMOUNT} … {MAX_AMOUNT}, got {req.amount!r}",
            amount=str(req.amount),
        )
    _check_text("memo", req.memo, MAX_MEMO_CHARS)
    _check_integer("expires_ms", req.expires_ms)
    _check_key("merchant", req.merchant)
    _check_integer("sequence", req.sequence)
    if not isinstance(req.nonce, bytes) or len(req.nonce) != NONCE_SIZE:
        raise RequestMalformedError(f"nonce must be {NONCE_SIZE} bytes", field="nonce")


def request_id(req: PaymentRequest) -> Hash32:
    """The request's id, which the merchant signs.

    Args:
        req: The request.

    Returns:
        `tagged_hash("tally/payment-request", encode(req))`, 32 bytes.
    """
    return Hash32(tagged_hash(_REQUEST_TAG, encode(req)))


def payee_lock(req: PaymentRequest) -> KeyLock:
    """The lock the payer's coin must go to: `KeyLock(req.payee)`."""
    return KeyLock(key=req.payee)


def new_request(
    *,
    chain_id: str,
    payee: PublicKey,
    asset: str,
    amount: int,
    memo: str,
    expires_ms: int,
    merchant: PublicKey,
    sequence: int = 0,
    nonce: bytes | None = None,
) -> PaymentRequest:
    """Make a payment request with a fresh random nonce.

    Args:
        chain_id: The network to be paid on.
        payee: The x-only key to be paid.
        asset: The asset's code.
        amount: Minor units, 1 … 2^63-1.
        memo: Text for the payer, at most 140 characters.
        expires_ms: Wall-clock milliseconds from which the request is void.
        merchant: The merchant's identity key, which will sign the request.
        sequence: The request's number in a counter session; 0 for a static request.
        nonce: 16 bytes; drawn from `os.urandom` when not given (tests pass their own).

    Returns:
        The request, not yet signed.

    Raises:
        RequestMalformedError: a field is out of its rules (see `PaymentRequest`).
        InvalidAssetCodeError: the asset code is malformed.
        AmountOutOfRangeError: the amount is not in 1 … 2^63-1.
    """
    return PaymentRequest(
        chain_id=chain_id,
        payee=payee,
        asset=AssetCode(asset),
        amount=Amount(amount),
        memo=memo,
        expires_ms=expires_ms,
        merchant=merchant,
        sequence=sequence,
        nonce=os.urandom(NONCE_SIZE) if nonce is None else nonce,
    )


def sign_request(req: PaymentRequest, merchant_key: PrivateKey) -> SignedRequest:
    """Sign `req` with the merchant's key.

    Args:
        req: The request; its `merchant` field must be `merchant_key`'s public key.
        merchant_key: The merchant's identity key.

    Returns:
        The signed request.

    Raises:
        ValueError: `merchant_key` is not the key `req.merchant` names (the signature
            would never verify).
    """
    if merchant_key.public_key != req.merchant:
        raise ValueError(
            f"the request names merchant {req.merchant.hex()}, but the signing key is "
            f"{merchant_key.public_key.hex()}"
        )
    signature = SignatureBytes(merchant_key.sign(request_id(req)))
    return SignedRequest(request=req, signature=signature)


def verify_request(signed: SignedRequest, *, chain_id: str, now_ms: int) -> PaymentRequest:
    """Check a signed request before paying it, and return the request.

    The checks run in this order: the fields (again, although a request cannot be built
    without them, because this is the last gate before money moves), the signature, the
    network, the expiry.

    Args:
        signed: The signed request, as `parse_uri` returns it.
        chain_id: The chain id of the payer's network.
        now_ms: The payer's wall-clock time, milliseconds since the Unix epoch.

    Returns:
        The request, which may be paid until `expires_ms`.

    Raises:
        RequestMalformedError: a field breaks the rules of `PaymentRequest`.
        InvalidAssetCodeError: the asset code is malformed.
        AmountOutOfRangeError: the amount is not in 1 … 2^63-1.
        RequestSignatureError: the signature is not `merchant`'s signature of the request.
        RequestNetworkError: the request is for another chain.
        RequestExpiredError: `now_ms` is at or after `expires_ms`.
    """
    req = signed.request
    _check_fields(req)
    if not verify(req.merchant, request_id(req), signed.signature):
        raise RequestSignatureError(
            f"the signature is not merchant {req.merchant.hex()}'s signature of this request; "
            "it was altered or forged",
            merchant=req.merchant.hex(),
        )
    if req.chain_id != chain_id:
        raise RequestNetworkError(
            f"the request is for chain {req.chain_id!r}, this wallet is on {chain_id!r}",
            expected=chain_id,
            found=req.chain_id,
        )
    if now_ms >= req.expires_ms:
        raise RequestExpiredError(
            f"the request expired at {req.expires_ms} ms, it is now {now_ms} ms; "
            "ask the merchant for a new one",
            expires_ms=req.expires_ms,
            now_ms=now_ms,
        )
    return req


def _quote(text: str) -> str:
    """Percent-encode `text` in its one canonical form (UTF-8, nothing but unreserved left)."""
    return quote(text, safe="", encoding="utf-8", errors="strict")


def to_uri(signed: SignedRequest, hrp: str) -> str:
    """Write a signed request as a `tally:` URI.

    Args:
        signed: The signed request.
        hrp: The network's address prefix (the genesis `hrp`).

    Returns:
        `tally:<address>?amount=…&asset=…&memo=…&exp=…&chain=…&payee=…&merchant=…&seq=…
        &nonce=…&sig=…`; `parse_uri` reads it back to an equal `SignedRequest`.
    """
    req = signed.request
    values = {
        "amount": str(req.amount),
        "asset": _quote(req.asset),
        "memo": _quote(req.memo),
        "exp": str(req.expires_ms),
        "chain": _quote(req.chain_id),
        "payee": req.payee.hex(),
        "merchant": req.merchant.hex(),
        "seq": str(req.sequence),
        "nonce": req.nonce.hex(),
        "sig": signed.signature.hex(),
    }
    query = "&".join(f"{name}={values[name]}" for name in _PARAMETERS)
    return f"{URI_SCHEME}:{address_of(payee_lock(req), hrp)}?{query}"


def _malformed(message: str, **detail: str) -> RequestMalformedError:
    return RequestMalformedError(f"not a valid payment request URI: {message}", **detail)


def _parse_integer(name: str, text: str) -> int:
    """A decimal integer in its one spelling: ASCII digits, no sign, no leading zero."""
    if not _DECIMAL.fullmatch(text):
        raise _malformed(
            f"{name} must be a decimal integer of at most 19 digits without leading zeros, "
            f"got {text!r}",
            parameter=name,
        )
    return int(text)


def _parse_hex(name: str, text: str, size: int) -> bytes:
    """`size` bytes written as lower-case hex."""
    if len(text) != 2 * size or not _LOWER_HEX.fullmatch(text):
        raise _malformed(
            f"{name} must be {size} bytes as {2 * size} lower-case hex digits, got {text!r}",
            parameter=name,
        )
    return bytes.fromhex(text)


def _parse_text(name: str, text: str) -> str:
    """Percent-encoded UTF-8 text in its one spelling (what `_quote` writes)."""
    try:
        value = unquote(text, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _malformed(f"{name} is not percent-encoded UTF-8", parameter=name) from None
    if _quote_or_none(value) != text:
        raise _malformed(
            f"{name} is not canonically percent-encoded (escape every character but "
            "A-Z a-z 0-9 - . _ ~, with upper-case hex digits)",
            parameter=name,
        )
    return value


def _quote_or_none(value: str) -> str | None:
    try:
        return _quote(value)
    except UnicodeEncodeError:  # a lone surrogate from an escape like %ED%A0%80
        return None


def _split_query(query: str) -> dict[str, str]:
    """The query's parameters by name; each known one exactly once, no others."""
    found: dict[str, str] = {}
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        if not equals:
            raise _malformed(f"parameter {part!r} has no '='", parameter=part)
        if name not in _PARAMETERS:
            raise _malformed(f"unknown parameter {name!r}", parameter=name)
        if name in found:
            raise _malformed(f"parameter {name!r} appears twice", parameter=name)
        found[name] = value
    missing = [name for name in _PARAMETERS if name not in found]
    if missing:
        raise _malformed(f"missing parameters: {', '.join(missing)}", parameter=missing[0])
    return found


def _check_address(address: str, payee: bytes, hrp: str) -> None:
    """Refuse an address of another network, or one that is not `KeyLock(payee)`'s.

    Raises:
        RequestNetworkError: a valid address, but with another network's prefix.
        RequestMalformedError: not an address, or not the address of `KeyLock(payee)`.
    """
    prefix = address.lower().rpartition(_SEPARATOR)[0]
    if prefix != hrp.lower():
        try:
            parse_address(address, prefix)
        except BadAddressError as exc:
            raise _malformed(exc.message, parameter="address") from None
        raise RequestNetworkError(
            f"the request pays an address of network {prefix!r}, this wallet is on {hrp!r}",
            expected=hrp,
            found=prefix,
        )
    expected = address_of(KeyLock(key=PublicKey(payee)), hrp)
    if address != expected:
        raise _malformed(
            f"the address {address!r} is not the address {expected!r} of the payee key",
            parameter="address",
        )


def parse_uri(uri: str, hrp: str) -> SignedRequest:
    """Read a `tally:` URI written by `to_uri`; the signature is not checked here.

    Call `verify_request` on the result before paying.

    Args:
        uri: The URI, exactly as `to_uri` wrote it (parameters may come in any order).
        hrp: The payer's network address prefix.

    Returns:
        The signed request the URI carries.

    Raises:
        RequestMalformedError: too long, not the `tally:` scheme, no query, a parameter
            missing, repeated, unknown or without '=', a value not in its one spelling
            (integer, lower-case hex of the right length, percent-encoded text), an address
            that is not the payee's, or a field out of its rules.
        RequestNetworkError: the address belongs to another network.
        InvalidAssetCodeError: the asset code is malformed.
        AmountOutOfRangeError: the amount is 0 or too large.
    """
    if len(uri) > MAX_URI_LENGTH:
        raise _malformed(f"{len(uri)} characters, at most {MAX_URI_LENGTH} are read")
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme != URI_SCHEME:
        raise _malformed(f"the scheme must be {URI_SCHEME!r}, got {scheme!r}")
    address, question, query = rest.partition("?")
    if not question:
        raise _malformed("no '?' and parameters after the address")
    values = _split_query(query)
    payee = _parse_hex("payee", values["payee"], _KEY_SIZE)
    _check_address(address, payee, hrp)
    request = PaymentRequest(
        chain_id=_parse_text("chain", values["chain"]),
        payee=PublicKey(payee),
        asset=AssetCode(_parse_text("asset", values["asset"])),
        amount=Amount(_parse_integer("amount", values["amount"])),
        memo=_parse_text("memo", values["memo"]),
        expires_ms=_parse_integer("exp", values["exp"]),
        merchant=PublicKey(_parse_hex("merchant", values["merchant"], _KEY_SIZE)),
        sequence=_parse_integer("seq", values["seq"]),
        nonce=_parse_hex("nonce", values["nonce"], NONCE_SIZE),
    )
    signature = SignatureBytes(_parse_hex("sig", values["sig"], _SIGNATURE_SIZE))
    return SignedRequest(request=request, signature=signature)


class CounterSession:
    """Dynamic codes for a merchant counter: a new signed request for every sale.

    Each sale gets the next `sequence` number and a fresh payee key from `next_payee`, so the
    code on the counter's screen changes with every sale and a payment for one sale cannot be
    taken for another. Safe to call from several threads.

    Args:
        merchant_key: The merchant's identity key; it signs every request.
        chain_id: The network the counter takes payments on.
        asset: The asset the counter sells in, such as `CNY`.
        expiry_s: How long each request stays valid, in seconds (more than 0).
        next_payee: Returns a fresh x-only key for each sale (for example the wallet's next
            receive key).
        sequence: The last sequence number used, to resume a session after a restart;
            the first sale gets `sequence + 1`.

    Raises:
        ValueError: an asset code, expiry or sequence that no request could carry.
    """

    def __init__(
        self,
        merchant_key: PrivateKey,
        chain_id: str,
        asset: str,
        expiry_s: int,
        next_payee: Callable[[], PublicKey],
        *,
        sequence: int = 0,
    ) -> None:
        if not is_valid_asset_code(asset):
            raise ValueError(f"asset code must match [A-Z][A-Z0-9]{{1,11}}, got {asset!r}")
        if type(expiry_s) is not int or expiry_s <= 0:
            raise ValueError(f"expiry_s must be a positive number of seconds, got {expiry_s!r}")
        if type(sequence) is not int or not 0 <= sequence < MAX_INTEGER:
            raise ValueError(f"sequence must be in 0 … {MAX_INTEGER - 1}, got {sequence!r}")
        self._merchant_key = merchant_key
        self._chain_id = chain_id
        self._asset = asset
        self._expiry_ms = expiry_s * 1000
        self._next_payee = next_payee
        self._sequence = sequence
        self._lock = threading.Lock()

    @property
    def sequence(self) -> int:
        """The sequence number of the last sale (the value to resume from)."""
        return self._sequence

    def new_sale(self, amount: int, memo: str, now_ms: int) -> SignedRequest:
        """Make and sign the request for the next sale.

        Args:
            amount: Minor units to ask for, 1 … 2^63-1.
            memo: Text for the payer, at most 140 characters.
            now_ms: The counter's wall-clock time; the request expires `expiry_s` later.

        Returns:
            The signed request, with the next sequence number and a fresh payee.

        Raises:
            AmountOutOfRangeError: the amount is not in 1 … 2^63-1.
            RequestMalformedError: the memo, expiry or payee key is wrong. A refused sale
                uses no sequence number.
        """
        with self._lock:
            request = new_request(
                chain_id=self._chain_id,
                payee=self._next_payee(),
                asset=self._asset,
                amount=amount,
                memo=memo,
                expires_ms=now_ms + self._expiry_ms,
                merchant=PublicKey(self._merchant_key.public_key),
                sequence=self._sequence + 1,
            )
            signed = sign_request(request, self._merchant_key)
            self._sequence += 1
            return signed
