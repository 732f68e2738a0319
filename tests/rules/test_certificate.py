import msgspec
import pytest

from tally.crypto import tagged_hash, verify
from tally.model import (
    CommitCertificate,
    Header,
    Member,
    Signature,
    block_hash,
    encode,
)
from tally.rules import (
    CertificateError,
    check_certificate,
    commit_message,
    quorum_size,
    sign_certificate,
)

from .helpers import CHAIN_ID, MALLORY, key, pub

MEMBER_KEYS = [40, 41, 42, 43]
MEMBERS = tuple(Member(name=f"member-{i}", key=pub(k)) for i, k in enumerate(MEMBER_KEYS))
HEADER = Header(
    chain_id=CHAIN_ID,
    height=7,
    prev_hash=bytes([1]) * 32,
    time_ms=1_700_000_007_000,
    tx_count=0,
    tx_root=bytes([2]) * 32,
    state_root=bytes([3]) * 32,
)


def certify(signers, *, header=HEADER, view=0, keys=None) -> CommitCertificate:
    digest = block_hash(header)
    msg = commit_message(header.chain_id, header.height, digest, view)
    keys = keys or {}
    return CommitCertificate(
        height=header.height,
        block_hash=digest,
        view=view,
        signatures=tuple(
            Signature(signer=s, sig=key(keys[s] if s in keys else MEMBER_KEYS[s]).sign(msg))
            for s in signers
        ),
    )


def expect_invalid(certificate, members=MEMBERS, header=HEADER) -> CertificateError:
    with pytest.raises(CertificateError) as info:
        check_certificate(certificate, header, members, verify)
    assert type(info.value) is CertificateError
    assert info.value.code == "certificate.invalid"
    return info.value


@pytest.mark.parametrize(
    ("members", "quorum"), [(1, 1), (2, 1), (3, 1), (4, 3), (5, 3), (7, 5), (10, 7)]
)
def test_quorum_is_two_f_plus_one_of_three_f_plus_one(members, quorum):
    assert quorum_size(members) == quorum


def test_commit_message_binds_chain_height_hash_and_view():
    digest = block_hash(HEADER)
    msg = commit_message(CHAIN_ID, 7, digest, 0)
    assert msg == tagged_hash("tally/commit", encode((CHAIN_ID, 7, digest, 0)))
    assert msg != commit_message("tally-other", 7, digest, 0)
    assert msg != commit_message(CHAIN_ID, 8, digest, 0)
    assert msg != commit_message(CHAIN_ID, 7, bytes(32), 0)
    assert msg != commit_message(CHAIN_ID, 7, digest, 1)


@pytest.mark.parametrize("signers", [(0, 1, 2), (1, 2, 3), (0, 1, 2, 3)])
def test_certificate_with_a_quorum_of_member_signatures_is_valid(signers):
    check_certificate(certify(signers), HEADER, MEMBERS, verify)


def test_certificate_of_a_later_view_is_valid():
    check_certificate(certify((0, 1, 3), view=4), HEADER, MEMBERS, verify)


def test_solo_certificate_needs_the_one_member():
    solo = MEMBERS[:1]
    check_certificate(certify((0,)), HEADER, solo, verify)
    error = expect_invalid(certify(()), solo)
    assert error.detail == {"found": 0, "quorum": 1}


def test_certificate_rejects_fewer_signatures_than_the_quorum():
    error = expect_invalid(certify((0, 3)))
    assert error.detail == {"found": 2, "quorum": 3}


def test_certificate_rejects_another_height():
    certificate = msgspec.structs.replace(certify((0, 1, 2)), height=8)
    error = expect_invalid(certificate)
    assert error.detail == {"height": 8}


def test_certificate_rejects_another_block():
    other = msgspec.structs.replace(HEADER, state_root=bytes(32))
    error = expect_invalid(certify((0, 1, 2), header=other))
    assert error.detail == {"height": 7}


def test_certificate_rejects_repeated_signer():
    certificate = certify((0, 1, 1))
    error = expect_invalid(certificate)
    assert error.detail == {"signer": 1}


def test_certificate_rejects_signers_out_of_order():
    good = certify((0, 1, 2))
    shuffled = msgspec.structs.replace(good, signatures=good.signatures[::-1])
    error = expect_invalid(shuffled)
    assert error.detail == {"signer": 1}


def test_certificate_rejects_unknown_signer():
    error = expect_invalid(certify((0, 1, 4), keys={4: MALLORY}))
    assert error.detail == {"signer": 4}


def test_certificate_rejects_signature_by_a_non_member():
    error = expect_invalid(certify((0, 1, 2), keys={1: MALLORY}))
    assert error.detail == {"signer": 1}


def test_certificate_rejects_signature_over_another_view():
    good = certify((0, 1, 2), view=0)
    error = expect_invalid(msgspec.structs.replace(good, view=1))
    assert error.detail == {"signer": 0}


def test_certificate_rejects_signature_over_another_chain():
    other = msgspec.structs.replace(HEADER, chain_id="tally-other")
    stolen = certify((0, 1, 2), header=other)
    forged = msgspec.structs.replace(stolen, block_hash=block_hash(HEADER))
    error = expect_invalid(forged)
    assert error.detail == {"signer": 0}


def test_sign_certificate_makes_a_certificate_that_checks_in_signer_order():
    digest = block_hash(HEADER)
    signers = [(2, key(MEMBER_KEYS[2])), (0, key(MEMBER_KEYS[0])), (1, key(MEMBER_KEYS[1]))]
    certificate = sign_certificate(CHAIN_ID, HEADER.height, digest, 0, signers)
    assert certificate == certify([0, 1, 2])
    check_certificate(certificate, HEADER, MEMBERS, verify)
