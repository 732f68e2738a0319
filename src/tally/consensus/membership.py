"""Consortium membership: X.509 certificates that bind a member's TLS key to its consensus key.

The consortium has one root certificate authority; its certificate's DER sits in genesis
(`Genesis.root_certificate`). Each member holds a TLS certificate issued directly under that
root, whose subject alternative name is the URI `urn:tally:member:<name>:<key hex>`: the
member's name and the Schnorr key it signs commit certificates with (its `Member.key` in
genesis). A peer is a member when its certificate chains to the root, is within its validity
period, and names a (name, key) pair among the members in force. A member removed by a
committed `RevokeMember` is no longer among them, which is how its certificate is revoked:
there is no revocation list to keep.

TLS 1.3 cannot sign with secp256k1, so certificates use ECDSA over P-256; the consensus key
stays a Schnorr key over secp256k1, named in the certificate rather than certified as its key.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote, unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tally.model.genesis import Member
from tally.model.rejection import Rejection

__all__ = [
    "MemberIdentity",
    "MembershipError",
    "UntrustedMemberError",
    "UnknownMemberError",
    "MemberMismatchError",
    "make_root",
    "issue_member_certificate",
    "load_certificate",
    "identity_of",
    "verify_member_certificate",
    "is_member",
    "check_member_certificate",
    "member_uri",
]

URI_PREFIX = "urn:tally:member:"
"""How a member certificate's subject alternative name URI begins."""

_KEY_BYTES = 32
_CLOCK_SKEW = datetime.timedelta(minutes=5)
"""How far before its issue a certificate is already valid, for peers whose clocks run behind."""


class MembershipError(Rejection):
    """A peer's certificate does not make it a consortium member (a grouping class)."""

    http_status: ClassVar[int] = 403


class UntrustedMemberError(MembershipError):
    """A certificate that is not the consortium's.

    Unreadable, not issued by the consortium root, badly signed, outside its validity
    period, a certificate authority, or without a member identity.
    """

    code = "member.untrusted"


class UnknownMemberError(MembershipError):
    """A certificate issued by the root for a name and key not among the members in force.

    The member was never admitted, or was revoked by a committed `RevokeMember`.
    """

    code = "member.unknown"


class MemberMismatchError(MembershipError):
    """A peer whose certificate names another member than the one it claims or was dialled as."""

    code = "member.mismatch"


@dataclass(frozen=True)
class MemberIdentity:
    """Who a member certificate says its holder is."""

    name: str
    """The member's name, as in genesis's member list."""
    consensus_key: bytes
    """The member's Schnorr consensus key (32 bytes), its `Member.key`."""


def member_uri(name: str, consensus_key: bytes) -> str:
    """The subject alternative name URI that binds `name` to `consensus_key`.

    The name is percent-encoded, so any member name fits in a URI and a `:` in it cannot be
    confused with the separator before the key.
    """
    return f"{URI_PREFIX}{quote(name, safe='')}:{consensus_key.hex()}"


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_tls_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _serial() -> int:
    # 159 random bits: positive, at most 20 octets, as RFC 5280 asks.
    return int.from_bytes(os.urandom(20), "big") >> 1 or 1


def make_root(name: str, valid_days: int = 3650) -> tuple[bytes, bytes]:
    """A new consortium root: a self-signed ECDSA P-256 certificate authority.

    Args:
        name: The consortium's name, the certificate's common name.
        valid_days: How long the root is valid from now.

    Returns:
        The root certificate's DER and its private key as unencrypted PKCS#8 PEM (keep that
        offline: whoever holds it can admit certificates for any member's name and key).

    Raises:
        ValueError: `name` is empty or `valid_days` is not positive.
    """
    if not name:
        raise ValueError("a root certificate needs a name")
    if valid_days < 1:
        raise ValueError(f"valid_days must be at least 1, not {valid_days}")
    key = _new_tls_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _utc_now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER), _key_pem(key)


def issue_member_certificate(
    root_cert_der: bytes,
    root_key_pem: bytes,
    name: str,
    consensus_key: bytes,
    valid_days: int = 3650,
) -> tuple[bytes, bytes]:
    """Issue a member's TLS certificate under the consortium root, with a fresh P-256 key.

    Args:
        root_cert_der: The root certificate (DER), as in genesis.
        root_key_pem: The root's private key (PEM), from `make_root`.
        name: The member's name, as in genesis; the certificate's common name.
        consensus_key: The member's 32-byte Schnorr consensus key (its `Member.key`).
        valid_days: How long the certificate is valid from now; it never outlives the root.

    Returns:
        The certificate and its new private key, both PEM (what `ssl` loads).

    Raises:
        ValueError: an empty name, a key that is not 32 bytes, a root key that is not an
            ECDSA key or does not match the root certificate, or `valid_days` < 1.
    """
    if not name:
        raise ValueError("a member certificate needs a name")
    if len(consensus_key) != _KEY_BYTES:
        raise ValueError(f"consensus key must be {_KEY_BYTES} bytes, not {len(consensus_key)}")
    if valid_days < 1:
        raise ValueError(f"valid_days must be at least 1, not {valid_days}")
    root = x509.load_der_x509_certificate(root_cert_der)
    root_key = serialization.load_pem_private_key(root_key_pem, password=None)
    if not isinstance(root_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the root key is not an ECDSA key")
    root_public = root.public_key()
    if (
        not isinstance(root_public, ec.EllipticCurvePublicKey)
        or root_public.public_numbers() != root_key.public_key().public_numbers()
    ):
        raise ValueError("the root key does not belong to the root certificate")
    key = _new_tls_key()
    now = _utc_now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(min(now + datetime.timedelta(days=valid_days), root.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(member_uri(name, consensus_key))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def load_certificate(data: bytes) -> x509.Certificate:
    """Read a certificate in DER or PEM.

    Raises:
        UntrustedMemberError: the bytes are not a certificate.
    """
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise UntrustedMemberError(f"not an X.509 certificate: {exc}") from None


def identity_of(certificate: x509.Certificate | bytes) -> MemberIdentity:
    """The member a certificate names in its `urn:tally:member:` URI (nothing is verified).

    Raises:
        UntrustedMemberError: no such URI, more than one, or one that is malformed.
    """
    cert = (
        certificate if isinstance(certificate, x509.Certificate) else load_certificate(certificate)
    )
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise UntrustedMemberError(
            "certificate has no subject alternative name, so it names no member"
        ) from None
    except ValueError as exc:  # cryptography parses extensions when first asked
        raise UntrustedMemberError(f"certificate has malformed extensions: {exc}") from None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    ours = [uri for uri in uris if uri.startswith(URI_PREFIX)]
    if len(ours) != 1:
        raise UntrustedMemberError(
            f"certificate must carry exactly one {URI_PREFIX}NAME:KEY URI, found {len(ours)}",
            uris=uris,
        )
    (uri,) = ours
    quoted, _, key_hex = uri[len(URI_PREFIX) :].rpartition(":")
    name = unquote(quoted)
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        key = b""
    if not name or len(key) != _KEY_BYTES or member_uri(name, key) != uri:
        raise UntrustedMemberError(
            f"malformed member URI {uri!r}: expected {URI_PREFIX}NAME:KEY with a "
            f"percent-encoded name and a {_KEY_BYTES}-byte key in lower-case hex",
            uri=uri,
        )
    return MemberIdentity(name=name, consensus_key=key)


def _check_validity(cert: x509.Certificate, now: datetime.datetime, what: str) -> None:
    if now < cert.not_valid_before_utc:
        raise UntrustedMemberError(
            f"{what} is not valid before {cert.not_valid_before_utc.isoformat()} "
            f"(now {now.isoformat()})",
            not_before=cert.not_valid_before_utc.isoformat(),
        )
    if now > cert.not_valid_after_utc:
        raise UntrustedMemberError(
            f"{what} expired at {cert.not_valid_after_utc.isoformat()} (now {now.isoformat()})",
            not_after=cert.not_valid_after_utc.isoformat(),
        )


def verify_member_certificate(
    cert_der: bytes,
    root_der: bytes,
    now: datetime.datetime | None = None,
    *,
    expected_name: str | None = None,
) -> MemberIdentity:
    """Check that a certificate is a member certificate of the consortium, and read it.

    This is everything `check_member_certificate` checks except membership, for callers
    that ask whether the member is in force in their own way (the transport's `authorize`).

    Args:
        cert_der: The certificate (DER, as `ssl` gives it; PEM is read too).
        root_der: The consortium root certificate (DER), as in genesis.
        now: The time to check validity at, timezone-aware (default: the clock).
        expected_name: The member the peer claims to be, or was dialled as.

    Returns:
        The member the certificate names.

    Raises:
        UntrustedMemberError: the certificate (or the root) is unreadable or outside its
            validity period, is a certificate authority, is not directly issued and signed by
            the root, or names no member.
        MemberMismatchError: it names another member than `expected_name`.
    """
    cert = load_certificate(cert_der)
    root = load_certificate(root_der)
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise UntrustedMemberError(
            f"certificate of {cert.subject.rfc4514_string()!r} is not issued by the consortium "
            f"root {root.subject.rfc4514_string()!r}: {exc or 'bad signature'}",
        ) from None
    moment = now if now is not None else _utc_now()
    _check_validity(root, moment, "the consortium root certificate")
    _check_validity(cert, moment, "certificate")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    except ValueError as exc:
        raise UntrustedMemberError(f"certificate has malformed extensions: {exc}") from None
    if constraints is not None and constraints.ca:
        raise UntrustedMemberError("a certificate authority is not a member certificate")
    identity = identity_of(cert)
    if expected_name is not None and identity.name != expected_name:
        raise MemberMismatchError(
            f"peer claims to be {expected_name!r} but its certificate is {identity.name!r}'s",
            claimed=expected_name,
            certificate=identity.name,
        )
    return identity


def is_member(identity: MemberIdentity, members: Sequence[Member]) -> bool:
    """Whether `identity`'s name and consensus key are those of one of `members`."""
    return any(
        member.name == identity.name and member.key == identity.consensus_key for member in members
    )


def check_member_certificate(
    cert_der: bytes,
    root_der: bytes,
    members: Sequence[Member],
    now: datetime.datetime | None = None,
    *,
    expected_name: str | None = None,
) -> MemberIdentity:
    """Check that a peer's certificate makes it one of `members`, and return who it is.

    Args:
        cert_der: The peer's certificate (DER, as `ssl` gives it; PEM is read too).
        root_der: The consortium root certificate (DER), as in genesis.
        members: The members in force; a revoked member is not among them.
        now: The time to check validity at, timezone-aware (default: the clock).
        expected_name: The member the peer claims to be, or was dialled as.

    Returns:
        The member the certificate names.

    Raises:
        UntrustedMemberError: the certificate (or the root) is unreadable or outside its
            validity period, is a certificate authority, is not directly issued and signed by
            the root, or names no member.
        MemberMismatchError: it names another member than `expected_name`.
        UnknownMemberError: its (name, key) pair is not among `members`.
    """
    identity = verify_member_certificate(cert_der, root_der, now, expected_name=expected_name)
    if not is_member(identity, members):
        raise UnknownMemberError(
            f"{identity.name!r} with consensus key {identity.consensus_key.hex()} is not a "
            "member in force (never admitted, or revoked)",
            name=identity.name,
            key=identity.consensus_key.hex(),
        )
    return identity
