"""Who is calling: requests signed with a key, bearer tokens stored hashed, admin credentials.

A signed request carries three headers: `X-Tally-Key` (the caller's x-only public key, hex),
`X-Tally-Time` (milliseconds since the epoch) and `X-Tally-Signature`, a BIP-340 signature over

    tagged_hash("tally/api-request", METHOD, PATH?QUERY, TIME, sha256(body)), newline-joined

so that neither the body, the target nor the time can be changed without the signature
failing, and a captured request goes stale after `MAX_SKEW_MS`. State-changing calls also take
an idempotency key, so a replay within that window repeats the first answer and moves nothing.

Tokens (hosted wallets, admins) are random strings shown once; services keep only their
SHA-256, so a copy of the database does not let anyone in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from fastapi import Request

from tally.crypto.hashing import tagged_hash
from tally.crypto.schnorr import PrivateKey, verify
from tally.model.types import PublicKey
from tally.services.common import clock
from tally.services.common.errors import AuthInvalidError, AuthMissingError

__all__ = [
    "MAX_SKEW_MS",
    "KEY_HEADER",
    "TIME_HEADER",
    "SIGNATURE_HEADER",
    "request_digest",
    "sign_headers",
    "verify_signed",
    "new_token",
    "hash_token",
    "bearer_token",
    "request_target",
    "signed_key",
    "token_matches",
]

MAX_SKEW_MS = 300_000
"""How far a signed request's time may be from the service's clock (5 minutes)."""

KEY_HEADER = "X-Tally-Key"
TIME_HEADER = "X-Tally-Time"
SIGNATURE_HEADER = "X-Tally-Signature"


def request_digest(method: str, target: str, time_ms: int, body: bytes) -> bytes:
    """The 32 bytes a request's signature signs."""
    message = f"{method.upper()}\n{target}\n{time_ms}\n".encode() + hashlib.sha256(body).digest()
    return tagged_hash("tally/api-request", message)


def sign_headers(
    key: PrivateKey, method: str, target: str, body: bytes, now_ms: int | None = None
) -> dict[str, str]:
    """The headers that sign a request to `target` (the path with its query string)."""
    time_ms = clock.now_ms() if now_ms is None else now_ms
    signature = key.sign(request_digest(method, target, time_ms, body))
    return {
        KEY_HEADER: key.public_key.hex(),
        TIME_HEADER: str(time_ms),
        SIGNATURE_HEADER: signature.hex(),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value


def verify_signed(
    headers: Mapping[str, str],
    method: str,
    target: str,
    body: bytes,
    now_ms: int | None = None,
) -> PublicKey:
    """The key that signed this request.

    Raises:
        AuthMissingError: no signature headers.
        AuthInvalidError: malformed headers, a stale or future time, or a bad signature.
    """
    key_hex, time_text, sig_hex = (
        _header(headers, name) for name in (KEY_HEADER, TIME_HEADER, SIGNATURE_HEADER)
    )
    if key_hex is None and sig_hex is None:
        raise AuthMissingError(
            f"this endpoint needs a signed request ({KEY_HEADER}, {TIME_HEADER}, "
            f"{SIGNATURE_HEADER})"
        )
    if key_hex is None or time_text is None or sig_hex is None:
        raise AuthInvalidError(
            f"a signed request needs all of {KEY_HEADER}, {TIME_HEADER} and {SIGNATURE_HEADER}"
        )
    try:
        key = bytes.fromhex(key_hex)
        signature = bytes.fromhex(sig_hex)
        time_ms = int(time_text)
    except ValueError:
        raise AuthInvalidError("signature headers are not hex and an integer time") from None
    now = clock.now_ms() if now_ms is None else now_ms
    if abs(now - time_ms) > MAX_SKEW_MS:
        raise AuthInvalidError(
            f"the request was signed at {time_ms}, more than {MAX_SKEW_MS // 1000} s from now",
            signed_at=time_ms,
            now=now,
        )
    if not verify(key, request_digest(method, target, time_ms, body), signature):
        raise AuthInvalidError("the request's signature does not verify", key=key_hex)
    return PublicKey(key)


def new_token() -> str:
    """A fresh random bearer token (shown once to its holder)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What a service stores of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Whether `token` hashes to `stored_hash`, compared in constant time."""
    return hmac.compare_digest(hash_token(token), stored_hash)


def bearer_token(request: Request) -> str | None:
    """The bearer token of a request, or None when it has none."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthInvalidError("the Authorization header is not 'Bearer <token>'")
    return token.strip()


def request_target(request: Request) -> str:
    """What a request's signature covers of its URL: the path and the query string."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def signed_key(request: Request) -> PublicKey:
    """FastAPI dependency: the public key that signed `request`.

    Raises:
        AuthMissingError: the request is not signed.
        AuthInvalidError: the signature does not hold.
    """
    body = await request.body()
    return verify_signed(request.headers, request.method, request_target(request), body)
