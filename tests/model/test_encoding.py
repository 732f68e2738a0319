import struct

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tally.model import (
    MAX_AMOUNT,
    AmountOutOfRangeError,
    Block,
    Coin,
    EscrowLock,
    GovernAction,
    Header,
    InvalidAssetCodeError,
    KeyLock,
    Lock,
    MalformedError,
    MultiLock,
    NonCanonicalError,
    OfflineLock,
    Params,
    Rejection,
    SignedTx,
    TooLargeError,
    TrailingBytesError,
    Transfer,
    TruncatedError,
    TxBody,
    WrongTypeError,
    decode,
    decode_block,
    decode_tx,
    encode,
)

from . import strategies as s

KEY = bytes(range(1, 33))
LOCK = KeyLock(key=KEY)
COIN = Coin(asset="CNY", amount=5, lock=LOCK)
COIN_BYTES = encode(COIN)
LOCK_BYTES = encode(LOCK)


def coin_bytes(
    asset: bytes = b"\xa3CNY", amount: bytes = b"\x05", lock: bytes = LOCK_BYTES
) -> bytes:
    """A Coin's encoding from its parts, each given as raw MessagePack."""
    return b"\x93" + asset + amount + lock


def expect(error_class, data, kind=Coin, **kwargs):
    with pytest.raises(error_class) as info:
        decode(data, kind, **kwargs)
    assert type(info.value) is error_class
    assert info.value.code == error_class.code
    return info.value


# Round trips


@pytest.mark.parametrize("name", sorted(s.PROTOCOL_OBJECTS))
@given(data=st.data())
def test_every_protocol_object_round_trips_through_its_canonical_bytes(name, data):
    obj = data.draw(s.PROTOCOL_OBJECTS[name])
    encoded = encode(obj)
    decoded = decode(encoded, type(obj))
    assert decoded == obj
    assert encode(decoded) == encoded


@pytest.mark.parametrize(
    ("union", "strategy"),
    [(Lock, s.locks), (TxBody, s.tx_bodies), (GovernAction, s.govern_actions)],
    ids=["Lock", "TxBody", "GovernAction"],
)
@given(data=st.data())
def test_tagged_unions_decode_to_the_encoded_kind(union, strategy, data):
    obj = data.draw(strategy)
    decoded = decode(encode(obj), union)
    assert type(decoded) is type(obj)
    assert decoded == obj


def test_coin_encodes_as_an_array_of_asset_amount_and_tagged_lock():
    assert COIN_BYTES == b"\x93\xa3CNY\x05\x92\x01\xc4\x20" + KEY


def test_locks_are_tagged_one_two_three_four():
    assert encode(LOCK)[:2] == b"\x92\x01"
    assert msgspec.msgpack.decode(encode(MultiLock(threshold=1, keys=(KEY,))))[0] == 2
    assert msgspec.msgpack.decode(encode(EscrowLock(payer=KEY, payee=KEY, expiry=3)))[0] == 3
    offline = OfflineLock(owner=KEY, unlock_height=300)
    assert encode(offline) == b"\x93\x04\xc4\x20" + KEY + b"\xcd\x01\x2c"


@given(s.signed_txs)
def test_decode_tx_accepts_what_encode_gives(tx):
    assert decode_tx(encode(tx), Params(max_tx_bytes=2**20)) == tx


@given(s.blocks)
def test_decode_block_accepts_what_encode_gives(block):
    assert decode_block(encode(block), Params()) == block


# Strict decoding: truncated and trailing input


@given(s.signed_txs, st.data())
def test_every_proper_prefix_is_truncated(tx, data):
    encoded = encode(tx)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    expect(TruncatedError, encoded[:cut], SignedTx)


def test_empty_input_is_truncated():
    expect(TruncatedError, b"")


def test_coin_missing_its_last_byte_is_truncated():
    expect(TruncatedError, COIN_BYTES[:-1])


@given(s.coins, st.binary(min_size=1, max_size=8))
@example(COIN, b"\x00")
def test_bytes_after_the_object_are_trailing(obj, extra):
    error = expect(TrailingBytesError, encode(obj) + extra)
    assert error.code == "decode.trailing"


def test_two_objects_back_to_back_are_trailing():
    expect(TrailingBytesError, COIN_BYTES + COIN_BYTES)


# Strict decoding: non-canonical encodings


def wider_encodings(value: int) -> list[bytes]:
    """Every MessagePack encoding of `value` except the shortest one."""
    forms = []
    for prefix, fmt, low, high in [
        (b"\xcc", ">B", 0, 2**8 - 1),
        (b"\xcd", ">H", 0, 2**16 - 1),
        (b"\xce", ">I", 0, 2**32 - 1),
        (b"\xcf", ">Q", 0, 2**64 - 1),
        (b"\xd0", ">b", -(2**7), 2**7 - 1),
        (b"\xd1", ">h", -(2**15), 2**15 - 1),
        (b"\xd2", ">i", -(2**31), 2**31 - 1),
        (b"\xd3", ">q", -(2**63), 2**63 - 1),
    ]:
        if low <= value <= high:
            forms.append(prefix + struct.pack(fmt, value))
    if 0 <= value <= 127:
        forms.append(bytes([value]))
    shortest = msgspec.msgpack.encode(value)
    return [form for form in forms if form != shortest]


def test_amount_encoded_wider_than_needed_is_noncanonical():
    error = expect(NonCanonicalError, coin_bytes(amount=b"\xcd\x00\x05"))
    assert error.code == "decode.noncanonical"


@given(st.integers(min_value=1, max_value=MAX_AMOUNT), st.data())
@example(5, None)
@example(127, None)
@example(128, None)
@example(MAX_AMOUNT, None)
def test_every_wider_integer_encoding_is_noncanonical(amount, data):
    forms = wider_encodings(amount)
    assert msgspec.msgpack.encode(amount) not in forms
    canonical = coin_bytes(amount=msgspec.msgpack.encode(amount))
    assert decode(canonical, Coin).amount == amount
    chosen = forms if data is None else [data.draw(st.sampled_from(forms))]
    for form in chosen:
        expect(NonCanonicalError, coin_bytes(amount=form))


@pytest.mark.parametrize(
    "data",
    [
        coin_bytes(asset=b"\xd9\x03CNY"),
        coin_bytes(asset=b"\xda\x00\x03CNY"),
        coin_bytes(lock=b"\x92\x01\xc5\x00\x20" + KEY),
        coin_bytes(lock=b"\x92\xcc\x01\xc4\x20" + KEY),
        coin_bytes(lock=b"\xdc\x00\x02\x01\xc4\x20" + KEY),
        b"\xdc\x00\x03" + COIN_BYTES[1:],
        b"\xdd\x00\x00\x00\x03" + COIN_BYTES[1:],
    ],
    ids=["str8", "str16", "bin16", "wide-tag", "array16-lock", "array16", "array32"],
)
def test_wider_string_bytes_and_array_headers_are_noncanonical(data):
    expect(NonCanonicalError, data)


def test_array_with_an_extra_element_is_noncanonical():
    expect(NonCanonicalError, b"\x94" + COIN_BYTES[1:] + b"\x00")


# Strict decoding: wrong types and shapes


@pytest.mark.parametrize(
    "data",
    [
        coin_bytes(amount=b"\xa15"),
        coin_bytes(amount=b"\xc3"),
        coin_bytes(amount=b"\xcb" + struct.pack(">d", 5.0)),
        coin_bytes(amount=b"\xc0"),
        coin_bytes(asset=b"\xc4\x03CNY"),
        coin_bytes(lock=b"\x01"),
        coin_bytes(lock=b"\x92\x09\xc4\x20" + KEY),
        coin_bytes(lock=b"\x92\x01\xc4\x1f" + KEY[:31]),
        coin_bytes(lock=b"\x92\x01\xc4\x21" + KEY + b"\x00"),
        coin_bytes(lock=b"\x92\x01\xa1k"),
        coin_bytes(lock=b"\x92\x01\xd4\x01\x00"),
        b"\x92\xa3CNY\x05",
        b"\x83\xa5asset\xa3CNY\xa6amount\x05\xa4lock" + LOCK_BYTES,
        b"\x05",
    ],
    ids=[
        "amount-str",
        "amount-bool",
        "amount-float",
        "amount-nil",
        "asset-bin",
        "lock-int",
        "lock-unknown-tag",
        "key-31-bytes",
        "key-33-bytes",
        "key-str",
        "key-ext",
        "missing-field",
        "map-not-array",
        "int-not-array",
    ],
)
def test_wrong_types_and_shapes_are_refused(data):
    error = expect(WrongTypeError, data)
    assert error.code == "decode.type"


def test_redeem_account_longer_than_64_bytes_is_refused():
    body = msgspec.msgpack.encode([3, "CNY", [], b"x" * 65, 1])
    expect(WrongTypeError, body, TxBody)


def test_add_member_with_empty_name_is_refused():
    expect(WrongTypeError, msgspec.msgpack.encode([2, "", KEY]), GovernAction)


# Strict decoding: malformed bytes


@pytest.mark.parametrize(
    "data",
    [
        coin_bytes(asset=b"\xa3\xff\xfeA"),
        coin_bytes(asset=b"\xa2\xc3\x28"),
        coin_bytes(asset=b"\xa3\xed\xa0\x80"),
    ],
    ids=["invalid-start-byte", "bad-continuation", "surrogate"],
)
def test_string_that_is_not_utf8_is_malformed(data):
    error = expect(MalformedError, data)
    assert error.code == "decode.malformed"


def test_reserved_opcode_is_malformed():
    expect(MalformedError, b"\xc1")
    expect(MalformedError, coin_bytes(amount=b"\xc1"))


# Values a coin refuses to hold


@pytest.mark.parametrize("amount", [0, -1, MAX_AMOUNT + 1, 2**64 - 1])
def test_decoded_amount_outside_range_is_refused(amount):
    error = expect(AmountOutOfRangeError, coin_bytes(amount=msgspec.msgpack.encode(amount)))
    assert error.code == "amount.out_of_range"
    assert error.detail == {"amount": str(amount)}


@pytest.mark.parametrize("asset", ["cny", "C", "1CNY", "CNY-", "ABCDEFGHIJKLM", "", "CNY\n"])
def test_decoded_malformed_asset_code_is_refused(asset):
    data = coin_bytes(asset=msgspec.msgpack.encode(asset))
    error = expect(InvalidAssetCodeError, data)
    assert error.code == "asset.invalid"
    assert error.detail == {"asset": asset}


def test_bad_amount_inside_a_transaction_is_refused_by_decode_tx():
    tx = SignedTx(body=Transfer(inputs=(), outputs=(COIN,), valid_until=1), witnesses=())
    data = encode(tx).replace(COIN_BYTES, coin_bytes(amount=b"\x00"))
    with pytest.raises(AmountOutOfRangeError):
        decode_tx(data, Params())


# Size limits


def test_transaction_over_max_tx_bytes_is_too_large():
    tx = SignedTx(body=Transfer(inputs=(), outputs=(COIN,) * 30, valid_until=1), witnesses=())
    data = encode(tx)
    with pytest.raises(TooLargeError) as info:
        decode_tx(data, Params(max_tx_bytes=len(data) - 1))
    assert type(info.value) is TooLargeError
    assert info.value.code == "decode.too_large"
    assert info.value.detail == {"size": len(data), "limit": len(data) - 1}
    assert decode_tx(data, Params(max_tx_bytes=len(data))) == tx


def test_size_is_checked_before_anything_else():
    with pytest.raises(TooLargeError) as info:
        decode_tx(b"\xc1" * 2000, Params(max_tx_bytes=1024))
    assert info.value.detail == {"size": 2000, "limit": 1024}


def test_block_over_max_block_bytes_is_too_large():
    block = Block(
        header=Header(
            chain_id="c",
            height=1,
            prev_hash=bytes(32),
            time_ms=0,
            tx_count=0,
            tx_root=bytes(32),
            state_root=bytes(32),
        ),
        txs=(),
        receipts=(),
    )
    data = encode(block)
    with pytest.raises(TooLargeError) as info:
        decode_block(data, Params(max_block_bytes=len(data) - 1))
    assert info.value.detail == {"size": len(data), "limit": len(data) - 1}


# Nothing but a Rejection escapes a decoder


@pytest.mark.parametrize("kind", [SignedTx, Block, Coin, TxBody, Lock], ids=lambda k: str(k))
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_a_rejection(kind, data):
    try:
        obj = decode(data, kind)
    except Rejection:
        return
    assert encode(obj) == data


@given(s.signed_txs, st.data())
def test_corrupted_transaction_decodes_canonically_or_raises_a_rejection(tx, data):
    encoded = bytearray(encode(tx))
    index = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[index] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        obj = decode(bytes(encoded), SignedTx)
    except Rejection:
        return
    assert encode(obj) == bytes(encoded)
