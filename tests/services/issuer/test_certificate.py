"""Freeze certificates: the hash an `Issue` cites, the issuer's signature, strict decoding."""

from __future__ import annotations

import msgspec
import pytest

from tally.crypto.hashing import tagged_hash
from tally.model.rejection import (
    DecodeError,
    NonCanonicalError,
    TrailingBytesError,
    WrongTypeError,
)
from tally.services.issuer.certificate import (
    FreezeCertificate,
    FreezeCertificateError,
    certificate_hash,
    check_certificate,
    decode_certificate,
    encode_certificate,
    sign_certificate,
    verify_certificate,
)
from tests.rules.helpers import CNY_ISSUER, USD_ISSUER, key, pub

CERTIFICATE = FreezeCertificate(
    chain_id="tally-test",
    asset="CNY",
    operator=pub(40),
    amount=250_000,
    sequence=7,
    time_ms=1_700_000_000_000,
)
# A vector another implementation can replay: tagged_hash of the msgpack array
# [chain_id, asset, operator, amount, sequence, time_ms].
CERTIFICATE_HASH = "dd37987032c1087a34a0d8ecaa1c6c8a7fe3cb81a1a24f222b4a80e1280a2cb4"


def test_hash_is_the_tagged_hash_of_the_field_array() -> None:
    fields = ["tally-test", "CNY", bytes(pub(40)), 250_000, 7, 1_700_000_000_000]
    expected = tagged_hash("tally/freeze-certificate", msgspec.msgpack.encode(fields))
    assert certificate_hash(CERTIFICATE) == expected
    assert certificate_hash(CERTIFICATE).hex() == CERTIFICATE_HASH


@pytest.mark.parametrize(
    "change",
    [
        {"chain_id": "tally-main"},
        {"asset": "USD"},
        {"operator": pub(41)},
        {"amount": 250_001},
        {"sequence": 8},
        {"time_ms": 1_700_000_000_001},
    ],
)
def test_every_field_changes_the_hash(change: dict[str, object]) -> None:
    changed = msgspec.structs.replace(CERTIFICATE, **change)
    assert certificate_hash(changed) != certificate_hash(CERTIFICATE)


def test_signed_by_the_issuer_verifies_and_round_trips() -> None:
    signed = sign_certificate(CERTIFICATE, key(CNY_ISSUER))
    assert signed.issuer == pub(CNY_ISSUER)
    assert verify_certificate(signed, pub(CNY_ISSUER))
    check_certificate(signed, pub(CNY_ISSUER))
    data = encode_certificate(signed)
    assert decode_certificate(data) == signed
    assert encode_certificate(decode_certificate(data)) == data


def test_another_issuer_or_a_changed_certificate_does_not_verify() -> None:
    signed = sign_certificate(CERTIFICATE, key(CNY_ISSUER))
    assert not verify_certificate(signed, pub(USD_ISSUER))
    with pytest.raises(FreezeCertificateError) as other:
        check_certificate(signed, pub(USD_ISSUER))
    assert other.value.code == "issuer.certificate_invalid"
    assert other.value.detail["expected"] == pub(USD_ISSUER).hex()

    inflated = msgspec.structs.replace(
        signed, certificate=msgspec.structs.replace(CERTIFICATE, amount=2_500_000)
    )
    assert not verify_certificate(inflated, pub(CNY_ISSUER))
    with pytest.raises(FreezeCertificateError):
        check_certificate(inflated, pub(CNY_ISSUER))

    # A signature by another key, claiming to be the issuer's.
    forged = msgspec.structs.replace(sign_certificate(CERTIFICATE, key(66)), issuer=pub(CNY_ISSUER))
    assert not verify_certificate(forged, pub(CNY_ISSUER))


def test_decoding_is_strict() -> None:
    data = encode_certificate(sign_certificate(CERTIFICATE, key(CNY_ISSUER)))
    with pytest.raises(TrailingBytesError):
        decode_certificate(data + b"\x00")
    with pytest.raises(DecodeError):
        decode_certificate(data[:-1])
    # The same array with an amount of 0, and with a non-minimal integer encoding.
    document = msgspec.msgpack.decode(data)
    document[0][3] = 0
    with pytest.raises(WrongTypeError):
        decode_certificate(msgspec.msgpack.encode(document))
    document[0][3] = 250_000
    assert msgspec.msgpack.encode(document) == data
    # The sequence 7 (one byte, followed by the time as uint64) padded to a uint16.
    padded = data.replace(b"\x07\xcf", b"\xcd\x00\x07\xcf", 1)
    assert padded != data
    with pytest.raises(NonCanonicalError):
        decode_certificate(padded)
