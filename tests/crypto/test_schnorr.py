import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.crypto.hashing import tagged_hash
from tally.crypto.schnorr import InvalidKeyError, PrivateKey, is_valid_public_key, verify

CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
FIELD_SIZE = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F

# BIP-340 test vectors, bitcoin/bips bip-0340/test-vectors.csv (even-y version).
# (index, secret key, public key, aux_rand, message, signature)
SIGNING_VECTORS = [
    (
        0,
        "0000000000000000000000000000000000000000000000000000000000000003",
        "F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA8215"
        "25F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0",
    ),
    (
        1,
        "B7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFEF",
        "DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
        "0000000000000000000000000000000000000000000000000000000000000001",
        "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
        "6896BD60EEAE296DB48A229FF71DFE071BDE413E6D43F917DC8DCF8C78DE3341"
        "8906D11AC976ABCCB20B091292BFF4EA897EFCB639EA871CFA95F6DE339E4B0A",
    ),
    (
        2,
        "C90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B14E5C9",
        "DD308AFEC5777E13121FA72B9CC1B7CC0139715309B086C960E18FD969774EB8",
        "C87AA53824B4D7AE2EB035A2B5BBBCCC080E76CDC6D1692C4B0B62D798E6D906",
        "7E2D58D8B3BCDF1ABADEC7829054F90DDA9805AAB56C77333024B9D0A508B75C",
        "5831AAEED7B44BB74E5EAB94BA9D4294C49BCF2A60728D8B4C200F50DD313C1B"
        "AB745879A5AD954A72C45A91C3A51D3C7ADEA98D82F8481E0E1E03674A6F3FB7",
    ),
    (
        3,
        "0B432B2677937381AEF05BB02A66ECD012773062CF3FA2549E44F58ED2401710",
        "25D1DFF95105F5253C4022F628A996AD3A0D95FBF21D468A1B33F8C160D8F517",
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        "7EB0509757E246F19449885651611CB965ECC1A187DD51B64FDA1EDC9637D5EC"
        "97582B9CB13DB3933705B32BA982AF5AF25FD78881EBB32771FC5922EFC66EA3",
    ),
]

_KEY_1 = "DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659"
_MSG_1 = "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89"

# (index, public key, message, signature, expected result, comment)
VERIFY_VECTORS = [
    (
        4,
        "D69C3509BB99E412E68B0FE8544E72837DFA30746D8BE2AA65975F29D22DC7B9",
        "4DF3C3F68FCC83B27E9D42C90431A72499F17875C81A599B566C9889B9696703",
        "00000000000000000000003B78CE563F89A0ED9414F5AA28AD0D96D6795F9C63"
        "76AFB1548AF603B3EB45C9F8207DEE1060CB71C04E80F593060B07D28308D7F4",
        True,
        "valid",
    ),
    (
        5,
        "EEFDEA4CDB677750A420FEE807EACF21EB9898AE79B9768766E4FAA04A2D4A34",
        _MSG_1,
        "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E177769"
        "69E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B",
        False,
        "public key not on the curve",
    ),
    (
        6,
        _KEY_1,
        _MSG_1,
        "FFF97BD5755EEEA420453A14355235D382F6472F8568A18B2F057A1460297556"
        "3CC27944640AC607CD107AE10923D9EF7A73C643E166BE5EBEAFA34B1AC553E2",
        False,
        "has_even_y(R) is false",
    ),
    (
        7,
        _KEY_1,
        _MSG_1,
        "1FA62E331EDBC21C394792D2AB1100A7B432B013DF3F6FF4F99FCB33E0E1515F"
        "28890B3EDB6E7189B630448B515CE4F8622A954CFE545735AAEA5134FCCDB2BD",
        False,
        "negated message",
    ),
    (
        8,
        _KEY_1,
        _MSG_1,
        "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E177769"
        "961764B3AA9B2FFCB6EF947B6887A226E8D7C93E00C5ED0C1834FF0D0C2E6DA6",
        False,
        "negated s value",
    ),
    (
        9,
        _KEY_1,
        _MSG_1,
        "0000000000000000000000000000000000000000000000000000000000000000"
        "123DDA8328AF9C23A94C1FEECFD123BA4FB73476F0D594DCB65C6425BD186051",
        False,
        "sG - eP is infinite (x(inf) as 0)",
    ),
    (
        10,
        _KEY_1,
        _MSG_1,
        "0000000000000000000000000000000000000000000000000000000000000001"
        "7615FBAF5AE28864013C099742DEADB4DBA87F11AC6754F93780D5A1837CF197",
        False,
        "sG - eP is infinite (x(inf) as 1)",
    ),
    (
        11,
        _KEY_1,
        _MSG_1,
        "4A298DACAE57395A15D0795DDBFD1DCB564DA82B0F269BC70A74F8220429BA1D"
        "69E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B",
        False,
        "sig[0:32] is not an X coordinate on the curve",
    ),
    (
        12,
        _KEY_1,
        _MSG_1,
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F"
        "69E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B",
        False,
        "sig[0:32] is equal to field size",
    ),
    (
        13,
        _KEY_1,
        _MSG_1,
        "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E177769"
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
        False,
        "sig[32:64] is equal to curve order",
    ),
    (
        14,
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC30",
        _MSG_1,
        "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E177769"
        "69E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B",
        False,
        "public key exceeds the field size",
    ),
]


@pytest.mark.parametrize(
    ("index", "secret", "public", "aux", "message", "signature"),
    SIGNING_VECTORS,
    ids=[f"bip340-{vector[0]}" for vector in SIGNING_VECTORS],
)
def test_sign_matches_bip340_vectors(index, secret, public, aux, message, signature):
    key = PrivateKey.from_bytes(bytes.fromhex(secret))
    assert key.public_key == bytes.fromhex(public)
    made = key.sign(bytes.fromhex(message), bytes.fromhex(aux))
    assert made == bytes.fromhex(signature)
    assert verify(bytes.fromhex(public), bytes.fromhex(message), made)


@pytest.mark.parametrize(
    ("index", "public", "message", "signature", "expected", "comment"),
    VERIFY_VECTORS,
    ids=[f"bip340-{vector[0]}" for vector in VERIFY_VECTORS],
)
def test_verify_matches_bip340_vectors(index, public, message, signature, expected, comment):
    public_key = bytes.fromhex(public)
    assert verify(public_key, bytes.fromhex(message), bytes.fromhex(signature)) is expected


def test_is_valid_public_key_matches_bip340_vectors():
    assert is_valid_public_key(bytes.fromhex(SIGNING_VECTORS[0][2]))
    assert is_valid_public_key(bytes.fromhex(_KEY_1))
    # Vector 5: not on the curve; vector 14: exceeds the field size.
    assert not is_valid_public_key(bytes.fromhex(VERIFY_VECTORS[1][1]))
    assert not is_valid_public_key(bytes.fromhex(VERIFY_VECTORS[-1][1]))


def test_is_valid_public_key_refuses_wrong_lengths_and_types():
    key = bytes.fromhex(_KEY_1)
    assert not is_valid_public_key(key[:31])
    assert not is_valid_public_key(key + b"\x00")
    assert not is_valid_public_key(b"")
    assert not is_valid_public_key(b"\x02" + key)  # compressed SEC form is not x-only
    assert not is_valid_public_key(None)  # type: ignore[arg-type]
    assert is_valid_public_key(bytearray(key))  # type: ignore[arg-type]


def _signed() -> tuple[bytes, bytes, bytes]:
    key = PrivateKey.from_bytes(bytes.fromhex(SIGNING_VECTORS[1][1]))
    message = tagged_hash("tally/test", b"message")
    return key.public_key, message, key.sign(message)


def test_verify_returns_false_for_wrong_lengths():
    public_key, message, signature = _signed()
    assert verify(public_key, message, signature)
    assert not verify(public_key[:31], message, signature)
    assert not verify(public_key + b"\x00", message, signature)
    assert not verify(public_key, message, signature[:63])
    assert not verify(public_key, message, signature + b"\x00")
    assert not verify(public_key, message[:31], signature)
    assert not verify(public_key, message + b"\x00", signature)
    assert not verify(b"", b"", b"")


def test_verify_returns_false_for_non_bytes_arguments():
    public_key, message, signature = _signed()
    assert not verify(None, message, signature)  # type: ignore[arg-type]
    assert not verify(public_key, 32, signature)  # type: ignore[arg-type]
    assert not verify(public_key, message, "x" * 64)  # type: ignore[arg-type]
    assert not verify("k" * 32, message, signature)  # type: ignore[arg-type]


def test_verify_accepts_bytes_like_arguments():
    public_key, message, signature = _signed()
    assert verify(bytearray(public_key), memoryview(message), bytearray(signature))  # type: ignore[arg-type]


def test_verify_returns_false_for_key_off_the_curve_and_above_field_size():
    _, message, signature = _signed()
    assert not verify(bytes.fromhex(VERIFY_VECTORS[1][1]), message, signature)
    assert not verify(FIELD_SIZE.to_bytes(32, "big"), message, signature)
    assert not verify(b"\xff" * 32, message, signature)


def test_verify_returns_false_for_another_key_or_message():
    public_key, message, signature = _signed()
    other = PrivateKey.from_bytes((7).to_bytes(32, "big")).public_key
    assert not verify(other, message, signature)
    assert not verify(public_key, tagged_hash("tally/test", b"other"), signature)


def test_from_bytes_refuses_out_of_range_scalars():
    for bad in (0, CURVE_ORDER, CURVE_ORDER + 1, 2**256 - 1):
        with pytest.raises(InvalidKeyError):
            PrivateKey.from_bytes(bad.to_bytes(32, "big"))
    assert PrivateKey.from_bytes((CURVE_ORDER - 1).to_bytes(32, "big")).public_key
    assert PrivateKey.from_bytes((1).to_bytes(32, "big")).public_key


def test_from_bytes_refuses_wrong_lengths():
    for size in (0, 31, 33, 64):
        with pytest.raises(InvalidKeyError, match="32 bytes"):
            PrivateKey.from_bytes(b"\x01" * size)


def test_invalid_key_error_is_a_value_error():
    assert issubclass(InvalidKeyError, ValueError)


def test_to_bytes_round_trips():
    secret = bytes.fromhex(SIGNING_VECTORS[2][1])
    key = PrivateKey.from_bytes(secret)
    assert key.to_bytes() == secret
    assert PrivateKey.from_bytes(key.to_bytes()) == key


def test_generate_is_deterministic_in_its_entropy():
    entropy = bytes(range(32))
    first = PrivateKey.generate(entropy)
    assert PrivateKey.generate(entropy) == first
    assert PrivateKey.generate(bytes(range(1, 33))) != first
    # The documented derivation: the first valid tagged_hash("tally/keygen", entropy || ctr).
    expected = tagged_hash("tally/keygen", entropy + (0).to_bytes(4, "big"))
    assert first.to_bytes() == expected


def test_generate_accepts_longer_entropy_and_refuses_short_entropy():
    assert PrivateKey.generate(bytes(64)).public_key
    with pytest.raises(ValueError, match="at least 32 bytes"):
        PrivateKey.generate(bytes(31))


def test_sign_is_deterministic_with_default_aux():
    key = PrivateKey.from_bytes(bytes.fromhex(SIGNING_VECTORS[1][1]))
    message = bytes(range(32))
    assert key.sign(message) == key.sign(message) == key.sign(message, bytes(32))
    assert key.sign(message, b"\x01" * 32) != key.sign(message)


def test_sign_refuses_wrong_message_or_aux_lengths():
    key = PrivateKey.from_bytes(bytes.fromhex(SIGNING_VECTORS[1][1]))
    with pytest.raises(ValueError, match="message"):
        key.sign(bytes(31))
    with pytest.raises(ValueError, match="aux"):
        key.sign(bytes(32), b"")  # coincurve would draw os.urandom for an empty aux
    with pytest.raises(ValueError, match="aux"):
        key.sign(bytes(32), bytes(33))


def test_repr_does_not_reveal_the_secret():
    secret = bytes.fromhex(SIGNING_VECTORS[1][1])
    key = PrivateKey.from_bytes(secret)
    assert secret.hex() not in repr(key).lower()
    assert key.public_key.hex() in repr(key)


def test_keys_compare_by_secret_and_hash_by_public_key():
    one = PrivateKey.from_bytes((5).to_bytes(32, "big"))
    assert one == PrivateKey.from_bytes((5).to_bytes(32, "big"))
    assert one != PrivateKey.from_bytes((6).to_bytes(32, "big"))
    assert one != "not a key"
    assert len({one, PrivateKey.from_bytes((5).to_bytes(32, "big"))}) == 1


@given(
    secret=st.integers(min_value=1, max_value=CURVE_ORDER - 1),
    message=st.binary(min_size=32, max_size=32),
    aux=st.binary(min_size=32, max_size=32),
    flip=st.integers(min_value=0, max_value=64 * 8 - 1),
)
def test_signatures_verify_and_any_bit_flip_breaks_them(secret, message, aux, flip):
    key = PrivateKey.from_bytes(secret.to_bytes(32, "big"))
    signature = key.sign(message, aux)
    assert verify(key.public_key, message, signature)
    tampered = bytearray(signature)
    tampered[flip // 8] ^= 1 << (flip % 8)
    assert not verify(key.public_key, message, bytes(tampered))


@given(
    public_key=st.binary(max_size=40),
    message=st.binary(max_size=40),
    signature=st.binary(max_size=70),
)
def test_verify_never_raises_on_arbitrary_bytes(public_key, message, signature):
    assert verify(public_key, message, signature) in (True, False)
    assert is_valid_public_key(public_key) in (True, False)
