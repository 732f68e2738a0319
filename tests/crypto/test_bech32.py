import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.crypto.bech32 import (
    InvalidAddressError,
    _decode,
    _encode,
    decode_address,
    encode_address,
)

# BIP-350, "Test vectors for Bech32m": valid strings.
VALID_BECH32M = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]

# BIP-350: invalid strings, with the reason the BIP gives.
INVALID_BECH32M = [
    ("\x20" + "1xj0phk", "HRP character out of range"),
    ("\x7f" + "1g6xzxy", "HRP character out of range"),
    ("\x80" + "1vctc34", "HRP character out of range"),
    (
        "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
        "overall max length exceeded",
    ),
    ("qyrz8wqd2c9m", "No separator character"),
    ("1qyrz8wqd2c9m", "Empty HRP"),
    ("y1b0jsk6g", "Invalid data character"),
    ("lt1igcx5c0", "Invalid data character"),
    ("in1muywd", "Too short checksum"),
    ("mm1crxm3i", "Invalid character in checksum"),
    ("au1s5cgom", "Invalid character in checksum"),
    ("M1VUXWEZ", "checksum calculated with uppercase form of HRP"),
    ("16plkw9", "empty HRP"),
    ("1p2gdwpf", "empty HRP"),
]

# BIP-350 segwit vectors whose checksum is bech32 (BIP-173), not bech32m.
BECH32_NOT_BECH32M = [
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
    "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",
    "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
    "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
]

PAYLOAD = bytes(range(32))
HRP = "tally"

hrps = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=31)


@pytest.mark.parametrize("text", VALID_BECH32M)
def test_bip350_valid_strings_decode_and_reencode(text):
    hrp, data = _decode(text)
    assert hrp == text.lower()[: text.rfind("1")]
    assert _encode(hrp, data) == text.lower()


@pytest.mark.parametrize(("text", "reason"), INVALID_BECH32M)
def test_bip350_invalid_strings_are_refused(text, reason):
    with pytest.raises(InvalidAddressError):
        _decode(text)


@pytest.mark.parametrize("text", BECH32_NOT_BECH32M)
def test_bech32_checksum_is_not_accepted_as_bech32m(text):
    with pytest.raises(InvalidAddressError, match="checksum"):
        _decode(text)


def test_round_trip_of_a_known_payload():
    address = encode_address(HRP, PAYLOAD)
    assert address.startswith("tally1")
    assert address == address.lower()
    assert len(address) == len(HRP) + 1 + 52 + 6
    assert decode_address(HRP, address) == PAYLOAD


@given(hrp=hrps, payload=st.binary(min_size=32, max_size=32))
def test_encode_then_decode_round_trips(hrp, payload):
    address = encode_address(hrp, payload)
    assert len(address) <= 90
    assert decode_address(hrp, address) == payload
    assert decode_address(hrp, address.upper()) == payload


@given(payload=st.binary(min_size=32, max_size=32), data=st.data())
def test_any_single_substitution_is_detected(payload, data):
    address = encode_address(HRP, payload)
    position = data.draw(st.integers(min_value=len(HRP) + 1, max_value=len(address) - 1))
    replacement = data.draw(
        st.sampled_from("qpzry9x8gf2tvdw0s3jn54khce6mua7l").filter(
            lambda char: char != address[position]
        )
    )
    mistyped = address[:position] + replacement + address[position + 1 :]
    with pytest.raises(InvalidAddressError, match="checksum"):
        decode_address(HRP, mistyped)


def test_uppercase_address_is_accepted():
    assert decode_address(HRP, encode_address(HRP, PAYLOAD).upper()) == PAYLOAD
    assert decode_address("TALLY", encode_address(HRP, PAYLOAD)) == PAYLOAD


def test_wrong_hrp_is_refused_with_both_prefixes_named():
    address = encode_address("ttally", PAYLOAD)
    with pytest.raises(InvalidAddressError, match="'ttally', expected 'tally'"):
        decode_address(HRP, address)


def test_mixed_case_is_refused():
    address = encode_address(HRP, PAYLOAD)
    mixed = address[:-1] + address[-1].upper()
    with pytest.raises(InvalidAddressError, match="lowercase or all uppercase"):
        decode_address(HRP, mixed)


def test_bad_character_is_refused():
    address = encode_address(HRP, PAYLOAD)
    # 'b', 'i', 'o' and '1' are not in the data alphabet.
    with pytest.raises(InvalidAddressError, match="alphabet"):
        decode_address(HRP, address[:-1] + "b")
    with pytest.raises(InvalidAddressError, match="not allowed"):
        decode_address(HRP, address[:-1] + " ")
    with pytest.raises(InvalidAddressError, match="not allowed"):
        decode_address(HRP, address[:-1] + "\u00e9")


def test_bad_checksum_is_refused():
    address = encode_address(HRP, PAYLOAD)
    last = "q" if address[-1] != "q" else "p"
    with pytest.raises(InvalidAddressError, match="checksum"):
        decode_address(HRP, address[:-1] + last)


def test_too_long_address_is_refused():
    hrp = "x" * 40  # 40 + 1 + 52 + 6 = 99 characters
    text = _encode(hrp, [0] * 52)
    with pytest.raises(InvalidAddressError, match="at most 90"):
        decode_address(hrp, text)


def test_wrong_payload_length_is_refused():
    for groups in ([0] * 32, [0] * 51, [0] * 53, [0] * 64, []):
        with pytest.raises(InvalidAddressError, match="32 bytes"):
            decode_address(HRP, _encode(HRP, groups))


def test_noncanonical_padding_is_refused():
    # 52 groups carry 260 bits: 256 of payload and 4 of zero padding.
    groups = [0] * 51 + [1]
    with pytest.raises(InvalidAddressError, match="padding"):
        decode_address(HRP, _encode(HRP, groups))


def test_missing_separator_or_prefix_is_refused():
    with pytest.raises(InvalidAddressError, match="separator"):
        decode_address(HRP, "qqqqqqqqqqqq")
    with pytest.raises(InvalidAddressError, match="prefix"):
        decode_address(HRP, "1qqqqqqqqqqq")
    with pytest.raises(InvalidAddressError, match="checksum"):
        decode_address(HRP, "tally1qqqq")


def test_encode_refuses_bad_payload_or_prefix():
    with pytest.raises(ValueError, match="32 bytes"):
        encode_address(HRP, bytes(20))
    with pytest.raises(ValueError, match="prefix"):
        encode_address("", PAYLOAD)
    with pytest.raises(ValueError, match="prefix"):
        encode_address("tal ly", PAYLOAD)
    with pytest.raises(ValueError, match="too long"):
        encode_address("x" * 40, PAYLOAD)


def test_invalid_address_error_is_a_value_error():
    assert issubclass(InvalidAddressError, ValueError)
