import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.crypto import tagged_hash
from tally.model import (
    MAX_AMOUNT,
    MIN_AMOUNT,
    AmountOutOfRangeError,
    Coin,
    InvalidAssetCodeError,
    KeyLock,
    coin_id,
    is_valid_amount,
    is_valid_asset_code,
)

LOCK = KeyLock(key=bytes(32))


@pytest.mark.parametrize("amount", [MIN_AMOUNT, 2, 10**12, MAX_AMOUNT])
def test_coin_holds_any_amount_from_one_to_max(amount):
    assert Coin(asset="CNY", amount=amount, lock=LOCK).amount == amount


@pytest.mark.parametrize(
    "amount",
    [0, -1, MAX_AMOUNT + 1, 2**64, True, False, 5.0, "5", None],
    ids=["zero", "negative", "max+1", "2^64", "true", "false", "float", "str", "none"],
)
def test_coin_refuses_amount_outside_range_or_not_an_int(amount):
    with pytest.raises(AmountOutOfRangeError) as info:
        Coin(asset="CNY", amount=amount, lock=LOCK)
    assert type(info.value) is AmountOutOfRangeError
    assert info.value.code == "amount.out_of_range"
    assert info.value.detail == {"amount": str(amount)}


@pytest.mark.parametrize("asset", ["CN", "CNY", "USD", "E1", "ABCDEFGHIJKL", "X9Z"])
def test_coin_accepts_well_formed_asset_codes(asset):
    assert Coin(asset=asset, amount=1, lock=LOCK).asset == asset


@pytest.mark.parametrize(
    "asset",
    ["", "C", "cny", "Cny", "1CN", "ABCDEFGHIJKLM", "CN Y", "CNY\n", "ÇNY", "\uff23NY", 5, None],
)
def test_coin_refuses_malformed_asset_code(asset):
    with pytest.raises(InvalidAssetCodeError) as info:
        Coin(asset=asset, amount=1, lock=LOCK)
    assert type(info.value) is InvalidAssetCodeError
    assert info.value.code == "asset.invalid"
    assert info.value.detail == {"asset": str(asset)}


def test_coin_checks_amount_before_asset():
    with pytest.raises(AmountOutOfRangeError):
        Coin(asset="bad", amount=0, lock=LOCK)


@given(st.integers())
def test_is_valid_amount_is_exactly_the_range(value):
    assert is_valid_amount(value) == (MIN_AMOUNT <= value <= MAX_AMOUNT)


def test_is_valid_amount_refuses_bools_and_floats():
    assert not is_valid_amount(True)
    assert not is_valid_amount(1.0)


@given(st.text(max_size=14))
def test_is_valid_asset_code_matches_the_pattern(text):
    expected = (
        2 <= len(text) <= 12
        and "A" <= text[0] <= "Z"
        and all("A" <= c <= "Z" or "0" <= c <= "9" for c in text[1:])
    )
    assert is_valid_asset_code(text) == expected


def test_coin_id_is_tagged_hash_of_tx_id_and_two_byte_index():
    txid = bytes(range(32))
    assert coin_id(txid, 0) == tagged_hash("tally/coin", txid + b"\x00\x00")
    assert coin_id(txid, 258) == tagged_hash("tally/coin", txid + b"\x01\x02")


@given(st.binary(min_size=32, max_size=32), st.integers(0, 1023), st.integers(0, 1023))
def test_coin_ids_differ_by_index(txid, first, second):
    assert (coin_id(txid, first) == coin_id(txid, second)) == (first == second)


def test_coin_is_frozen():
    coin = Coin(asset="CNY", amount=1, lock=LOCK)
    with pytest.raises(AttributeError):
        coin.amount = 2  # type: ignore[misc, assignment]
