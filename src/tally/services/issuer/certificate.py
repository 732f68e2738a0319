"""Freeze certificates: the issuer's signed statement that reserve backs an issuance.

Before it issues, the issuer moves the amount from an operator's available reserve to its
frozen reserve and signs a `FreezeCertificate` saying so. The certificate's hash,

    certificate_hash(c) = tagged_hash("tally/freeze-certificate", encode(c))

is the `reserve_ref` of the `Issue` transaction, so every coin on the ledger points at the
statement of the reserve behind it; the issuer signs that same hash (BIP-340), and anyone
holding the certificate, the signature and the issuer's registered key can check both links.
The signature sits outside the hashed body, as a transaction's witnesses do, so the
reference cannot be changed by re-signing.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from tally.crypto.hashing import tagged_hash
from tally.crypto.schnorr import PrivateKey, verify
from tally.model.encoding import decode, encode, prepare_decoders
from tally.model.rejection import Rejection
from tally.model.types import (
    MAX_AMOUNT,
    MIN_AMOUNT,
    Amount,
    AssetCode,
    Hash32,
    PublicKey,
    SignatureBytes,
)

__all__ = [
    "CERTIFICATE_TAG",
    "FreezeCertificate",
    "SignedFreezeCertificate",
    "FreezeCertificateError",
    "certificate_hash",
    "sign_certificate",
    "verify_certificate",
    "check_certificate",
    "encode_certificate",
    "decode_certificate",
]

CERTIFICATE_TAG = "tally/freeze-certificate"
"""The tagged-hash domain of freeze certificates."""

_MAX_CERTIFICATE_BYTES = 1024

_Key = Annotated[PublicKey, msgspec.Meta(min_length=32, max_length=32)]
_Sig = Annotated[SignatureBytes, msgspec.Meta(min_length=64, max_length=64)]
_Amount = Annotated[Amount, msgspec.Meta(ge=MIN_AMOUNT, le=MAX_AMOUNT)]
_Asset = Annotated[AssetCode, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9]{1,11}$")]
_Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class FreezeCertificate(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """The issuer froze `amount` of an operator's reserve to back one issuance."""

    chain_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """The network the backed issuance belongs to; a certificate is valid on no other."""
    asset: _Asset
    """The asset issued against the frozen reserve."""
    operator: _Key
    """The operator's key (its identity at the issuer), whose reserve is frozen."""
    amount: _Amount
    """Minor units frozen, equal to the sum of the issuance's outputs."""
    sequence: _Count
    """The issuer's number for this issuance, unique per issuer; also the `Issue` nonce."""
    time_ms: _Count
    """When the reserve was frozen, milliseconds since the Unix epoch (issuer's clock)."""


class SignedFreezeCertificate(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A freeze certificate with the issuer's signature over its hash."""

    certificate: FreezeCertificate
    """The statement; its hash is the issuance's `reserve_ref`."""
    issuer: _Key
    """The issuer's key, the one registered for `certificate.asset` on the ledger."""
    signature: _Sig
    """BIP-340 signature by `issuer` over `certificate_hash(certificate)`."""


class FreezeCertificateError(Rejection):
    """A freeze certificate's signature does not verify under the expected issuer key."""

    code = "issuer.certificate_invalid"
    http_status = 422


def certificate_hash(certificate: FreezeCertificate) -> Hash32:
    """The certificate's hash: the `reserve_ref` of the issuance it backs."""
    return Hash32(tagged_hash(CERTIFICATE_TAG, encode(certificate)))


def sign_certificate(certificate: FreezeCertificate, key: PrivateKey) -> SignedFreezeCertificate:
    """Sign `certificate` with the issuer's `key`."""
    return SignedFreezeCertificate(
        certificate=certificate,
        issuer=PublicKey(key.public_key),
        signature=SignatureBytes(key.sign(certificate_hash(certificate))),
    )


def verify_certificate(signed: SignedFreezeCertificate, issuer: bytes) -> bool:
    """Whether `signed` is signed by `issuer` (and names it); never raises."""
    return signed.issuer == issuer and verify(
        issuer, certificate_hash(signed.certificate), signed.signature
    )


def check_certificate(signed: SignedFreezeCertificate, issuer: bytes) -> None:
    """Check that `signed` is signed by `issuer`.

    Raises:
        FreezeCertificateError: another signer, or a signature that does not verify.
    """
    if signed.issuer != issuer:
        raise FreezeCertificateError(
            f"the certificate names issuer {signed.issuer.hex()}, expected {issuer.hex()}",
            issuer=signed.issuer.hex(),
            expected=issuer.hex(),
        )
    if not verify_certificate(signed, issuer):
        raise FreezeCertificateError(
            "the certificate's signature does not verify under the issuer's key",
            hash=certificate_hash(signed.certificate).hex(),
        )


def encode_certificate(signed: SignedFreezeCertificate) -> bytes:
    """The canonical bytes of a signed certificate, as the issuer stores and serves them."""
    return encode(signed)


def decode_certificate(data: bytes) -> SignedFreezeCertificate:
    """Decode a signed certificate strictly (canonical bytes only).

    Raises:
        DecodeError: malformed, non-canonical, too large, or a field out of range.
    """
    return decode(data, SignedFreezeCertificate, max_bytes=_MAX_CERTIFICATE_BYTES)


prepare_decoders(SignedFreezeCertificate)
