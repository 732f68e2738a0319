"""Member certificates: issued under the consortium root, checked against the members in force."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tally.consensus.membership import (
    MemberIdentity,
    MemberMismatchError,
    MembershipError,
    UnknownMemberError,
    UntrustedMemberError,
    check_member_certificate,
    identity_of,
    is_member,
    issue_member_certificate,
    load_certificate,
    make_root,
    member_uri,
    verify_member_certificate,
)
from tally.model import Member, Rejection
from tests.consensus.conftest import Consortium

NOW = datetime.datetime.now(datetime.UTC)


def der_of(consortium: Consortium, name: str) -> bytes:
    cert_file, _ = consortium.files[name]
    return load_certificate(cert_file.read_bytes()).public_bytes(serialization.Encoding.DER)


def test_a_member_certificate_passes_and_names_its_member(consortium: Consortium) -> None:
    identity = check_member_certificate(
        der_of(consortium, "node1"), consortium.root_der, consortium.members
    )
    assert identity == MemberIdentity(name="node1", consensus_key=consortium.members[1].key)
    assert is_member(identity, consortium.members)


def test_a_pem_certificate_is_read_as_well(consortium: Consortium) -> None:
    cert_file, _ = consortium.files["node2"]
    identity = check_member_certificate(
        cert_file.read_bytes(), consortium.root_der, consortium.members, expected_name="node2"
    )
    assert identity.name == "node2"


def test_certificates_have_the_shape_tls_needs(consortium: Consortium) -> None:
    root = load_certificate(consortium.root_der)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    root_key = root.public_key()
    assert isinstance(root_key, ec.EllipticCurvePublicKey)
    assert root_key.curve.name == "secp256r1"
    cert = load_certificate(der_of(consortium, "node0"))
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node0"
    assert cert.issuer == root.subject
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"urn:tally:member:node0:{consortium.members[0].key.hex()}"
    ]
    _, key_file = consortium.files["node0"]
    tls_key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert tls_key.public_key() == cert.public_key()


def test_a_certificate_from_another_root_is_untrusted(
    consortium: Consortium, foreign: Consortium
) -> None:
    with pytest.raises(UntrustedMemberError) as caught:
        check_member_certificate(der_of(foreign, "node1"), consortium.root_der, consortium.members)
    assert caught.value.code == "member.untrusted"
    assert "not issued by the consortium root" in caught.value.message


def test_a_tampered_certificate_is_untrusted(consortium: Consortium) -> None:
    der = der_of(consortium, "node1")
    key_hex = consortium.members[1].key.hex().encode()
    other_hex = consortium.members[2].key.hex().encode()
    assert der.count(key_hex) == 1
    tampered = der.replace(key_hex, other_hex)  # claims node2's consensus key
    with pytest.raises(UntrustedMemberError, match="not issued by the consortium root"):
        check_member_certificate(tampered, consortium.root_der, consortium.members)
    with pytest.raises(UntrustedMemberError, match=r"not an X\.509 certificate"):
        check_member_certificate(der[:-10], consortium.root_der, consortium.members)


def test_a_certificate_outside_its_validity_period_is_untrusted(consortium: Consortium) -> None:
    cert_file, _ = consortium.issue("node3", valid_days=1)
    pem = cert_file.read_bytes()
    assert check_member_certificate(pem, consortium.root_der, consortium.members, NOW).name == (
        "node3"
    )
    with pytest.raises(UntrustedMemberError, match="certificate expired") as caught:
        check_member_certificate(
            pem, consortium.root_der, consortium.members, NOW + datetime.timedelta(days=2)
        )
    assert "not_after" in caught.value.detail
    with pytest.raises(UntrustedMemberError, match="not valid before"):
        check_member_certificate(
            pem, consortium.root_der, consortium.members, NOW - datetime.timedelta(days=1)
        )


def test_a_member_certificate_never_outlives_its_root(tmp_path) -> None:
    root_der, root_key = make_root("short-lived", valid_days=2)
    cert, _ = issue_member_certificate(root_der, root_key, "node0", bytes(32), valid_days=3650)
    root = load_certificate(root_der)
    assert load_certificate(cert).not_valid_after_utc == root.not_valid_after_utc
    members = (Member(name="node0", key=bytes(32)),)
    with pytest.raises(UntrustedMemberError, match="root certificate expired"):
        check_member_certificate(cert, root_der, members, NOW + datetime.timedelta(days=3))


def test_a_revoked_member_is_unknown(consortium: Consortium) -> None:
    der = der_of(consortium, "node1")
    in_force = tuple(m for m in consortium.members if m.name != "node1")
    with pytest.raises(UnknownMemberError) as caught:
        check_member_certificate(der, consortium.root_der, in_force)
    assert caught.value.code == "member.unknown"
    assert caught.value.detail == {"name": "node1", "key": consortium.members[1].key.hex()}


def test_a_certificate_for_a_name_or_key_not_in_genesis_is_unknown(consortium: Consortium) -> None:
    stranger, _ = consortium.issue("node9", consortium.members[0].key)
    with pytest.raises(UnknownMemberError):
        check_member_certificate(stranger.read_bytes(), consortium.root_der, consortium.members)
    wrong_key, _ = consortium.issue("node0", consortium.members[1].key)
    with pytest.raises(UnknownMemberError, match="node0"):
        check_member_certificate(wrong_key.read_bytes(), consortium.root_der, consortium.members)


def test_a_peer_claiming_another_name_is_a_mismatch(consortium: Consortium) -> None:
    with pytest.raises(MemberMismatchError) as caught:
        check_member_certificate(
            der_of(consortium, "node2"),
            consortium.root_der,
            consortium.members,
            expected_name="node1",
        )
    assert caught.value.code == "member.mismatch"
    assert caught.value.detail == {"claimed": "node1", "certificate": "node2"}


def test_the_root_itself_is_not_a_member_certificate(consortium: Consortium) -> None:
    with pytest.raises(UntrustedMemberError, match="certificate authority"):
        check_member_certificate(consortium.root_der, consortium.root_der, consortium.members)


def _self_made(consortium: Consortium, uris: list[str] | None) -> bytes:
    """A certificate signed by the consortium root with the given SAN URIs (None: no SAN)."""
    root = load_certificate(consortium.root_der)
    root_key = serialization.load_pem_private_key(consortium.root_key, password=None)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    leaf = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .issuer_name(root.subject)
        .public_key(leaf.public_key())
        .serial_number(7)
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=1))
    )
    if uris is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    return builder.sign(root_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("uris", "message"),
    [
        (None, "no subject alternative name"),
        ([], "exactly one"),
        (["https://example.org"], "exactly one"),
        (["urn:tally:member:a:" + "00" * 32, "urn:tally:member:b:" + "00" * 32], "exactly one"),
        (["urn:tally:member:node0:" + "00" * 31], "malformed member URI"),
        (["urn:tally:member:node0:" + "0G" * 32], "malformed member URI"),
        (["urn:tally:member:node0:" + "AA" * 32], "malformed member URI"),
        (["urn:tally:member::" + "00" * 32], "malformed member URI"),
        (["urn:tally:member:a:b:" + "00" * 32], "malformed member URI"),
        (["urn:tally:member:" + "00" * 32], "malformed member URI"),
    ],
)
def test_a_certificate_without_a_well_formed_member_uri_is_untrusted(
    consortium: Consortium, uris: list[str] | None, message: str
) -> None:
    der = _self_made(consortium, uris)
    with pytest.raises(UntrustedMemberError, match=message):
        identity_of(der)
    with pytest.raises(UntrustedMemberError, match=message):
        verify_member_certificate(der, consortium.root_der)


@pytest.mark.parametrize("name", ["node0", "Bank of X", "a:b", "100%", "銀行"])
def test_any_member_name_survives_the_uri(consortium: Consortium, name: str) -> None:
    key = bytes(range(32))
    assert member_uri(name, key).count(":") == 4
    cert, _ = issue_member_certificate(consortium.root_der, consortium.root_key, name, key)
    assert identity_of(load_certificate(cert)) == MemberIdentity(name=name, consensus_key=key)
    assert verify_member_certificate(cert, consortium.root_der, expected_name=name).name == name


def test_issuing_refuses_bad_arguments(consortium: Consortium, foreign: Consortium) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        issue_member_certificate(consortium.root_der, consortium.root_key, "n", bytes(31))
    with pytest.raises(ValueError, match="needs a name"):
        issue_member_certificate(consortium.root_der, consortium.root_key, "", bytes(32))
    with pytest.raises(ValueError, match="does not belong"):
        issue_member_certificate(consortium.root_der, foreign.root_key, "n", bytes(32))
    with pytest.raises(ValueError, match="valid_days"):
        make_root("x", valid_days=0)


def test_membership_errors_are_rejections_with_their_codes() -> None:
    codes = {cls.code for cls in (UntrustedMemberError, UnknownMemberError, MemberMismatchError)}
    assert codes == {"member.untrusted", "member.unknown", "member.mismatch"}
    assert issubclass(MembershipError, Rejection)
    assert UnknownMemberError("x").http_status == 403
