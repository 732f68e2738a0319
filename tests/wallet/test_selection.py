"""Coin selection: exact matches first, then the fewest inputs, with change; merge plans."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tally.model.coin import Coin
from tally.model.lock import EscrowLock, KeyLock, MultiLock
from tally.model.types import Amount, AssetCode, CoinId, Height, PublicKey
from tally.wallet.errors import InsufficientFundsError
from tally.wallet.selection import (
    BadAmountError,
    Selection,
    TooManyInputsError,
    plan_merge,
    select_coins,
    spendable_coins,
)

KEY = PublicKey(bytes(31) + b"\x01")
OTHER = PublicKey(bytes(31) + b"\x02")


def cid(n: int) -> CoinId:
    return CoinId(hashlib.sha256(n.to_bytes(8, "big")).digest())


def wallet(*amounts: int, asset: str = "CNY") -> list[tuple[CoinId, Coin]]:
    return [
        (cid(i), Coin(asset=AssetCode(asset), amount=Amount(a), lock=KeyLock(key=KEY)))
        for i, a in enumerate(amounts)
    ]


def amounts_of(selection: Selection) -> list[int]:
    return [coin.amount for _, coin in selection.inputs]


def greedy_count(coins, asset, amount) -> int:
    running = 0
    for count, (_, coin) in enumerate(spendable_coins(coins, asset), start=1):
        running += coin.amount
        if running >= amount:
            return count
    raise AssertionError("short")


def test_a_single_exact_coin_is_chosen_over_fewer_change():
    selection = select_coins(wallet(5000, 3000, 2000, 700), "CNY", 3000)
    assert amounts_of(selection) == [3000]
    assert selection.change == 0


def test_among_equal_exact_coins_the_lowest_coin_id_wins():
    coins = wallet(300, 300, 300)
    selection = select_coins(coins, "CNY", 300)
    assert selection.inputs[0][0] == min(c for c, _ in coins)
    assert select_coins(list(reversed(coins)), "CNY", 300) == selection


def test_an_exact_subset_is_preferred_when_it_needs_no_more_inputs():
    # Largest first takes two coins (900 + 700, change 400); 700 + 500 is exact, also two.
    selection = select_coins(wallet(900, 700, 500, 100), "CNY", 1200)
    assert sorted(amounts_of(selection)) == [500, 700]
    assert selection.change == 0


def test_an_exact_subset_with_more_inputs_than_greedy_is_not_taken():
    # One coin (1000) covers 600; the exact 400 + 200 would take two inputs.
    selection = select_coins(wallet(1000, 400, 200), "CNY", 600)
    assert amounts_of(selection) == [1000]
    assert selection.change == 400


def test_one_covering_coin_is_the_smallest_that_covers():
    selection = select_coins(wallet(10_000, 5000, 800, 100), "CNY", 700)
    assert amounts_of(selection) == [800]
    assert selection.change == 100


def test_the_fewest_inputs_with_the_last_swapped_for_the_smallest_covering():
    selection = select_coins(wallet(600, 500, 450, 10), "CNY", 1000)
    assert amounts_of(selection) == [600, 450]
    assert selection.change == 50


def test_only_keylock_coins_of_the_asset_are_selected():
    escrow = EscrowLock(payer=KEY, payee=OTHER, expiry=Height(10))
    coins = [
        *wallet(100),
        (cid(50), Coin(asset=AssetCode("CNY"), amount=Amount(5000), lock=escrow)),
        (
            cid(51),
            Coin(
                asset=AssetCode("CNY"),
                amount=Amount(5000),
                lock=MultiLock(threshold=1, keys=(KEY,)),
            ),
        ),
        (cid(52), Coin(asset=AssetCode("USD"), amount=Amount(5000), lock=KeyLock(key=KEY))),
    ]
    with pytest.raises(InsufficientFundsError) as info:
        select_coins(coins, "CNY", 200)
    assert info.value.code == "funds.insufficient"
    assert info.value.detail == {"asset": "CNY", "needed": 200, "available": 100}


@pytest.mark.parametrize("amount", [0, -5, True, 1.5])
def test_an_amount_below_one_is_refused_with_wallet_amount(amount):
    with pytest.raises(BadAmountError) as info:
        select_coins(wallet(100), "CNY", amount)
    assert info.value.code == "wallet.amount"
    assert info.value.http_status == 400


def test_too_many_inputs_are_refused_when_limited():
    coins = wallet(*[10] * 10)
    with pytest.raises(TooManyInputsError) as info:
        select_coins(coins, "CNY", 95, max_inputs=5)
    assert info.value.code == "wallet.too_many_inputs"
    assert info.value.detail == {"needed_inputs": 10, "max_inputs": 5}
    assert len(select_coins(coins, "CNY", 95, max_inputs=10).inputs) == 10


def test_duplicate_entries_count_once():
    coins = wallet(100)
    with pytest.raises(InsufficientFundsError):
        select_coins(coins + coins, "CNY", 150)


def test_the_exact_subset_search_gives_up_within_its_budget():
    # Even coins can never sum to an odd amount, which no pruning rule notices: the search
    # must stop at its step budget and fall back to the fewest inputs.
    coins = wallet(*[2 * i for i in range(1, 201)])
    selection = select_coins(coins, "CNY", 3001)
    assert selection.total >= 3001
    assert selection.change > 0
    assert len(selection.inputs) == greedy_count(coins, "CNY", 3001)


coin_lists = st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(amounts=coin_lists, data=st.data())
@example(amounts=[3, 3, 3], data=None)
def test_selection_properties(amounts, data):
    coins = wallet(*amounts)
    total = sum(amounts)
    amount = data.draw(st.integers(min_value=1, max_value=total)) if data is not None else 6
    selection = select_coins(coins, "CNY", amount)
    ids = [c for c, _ in selection.inputs]
    assert len(set(ids)) == len(ids), "no coin twice"
    assert set(ids) <= {c for c, _ in coins}
    assert selection.total >= amount
    assert selection.change == selection.total - amount >= 0
    assert len(ids) <= greedy_count(coins, "CNY", amount)
    if amount in amounts:
        assert amounts_of(selection) == [amount]
        assert selection.change == 0
    assert select_coins(list(reversed(coins)), "CNY", amount) == selection, "deterministic"


@settings(max_examples=100, deadline=None)
@given(amounts=coin_lists, extra=st.integers(min_value=1, max_value=1000))
def test_selection_refuses_more_than_the_total(amounts, extra):
    with pytest.raises(InsufficientFundsError) as info:
        select_coins(wallet(*amounts), "CNY", sum(amounts) + extra)
    assert info.value.detail["available"] == sum(amounts)


def test_plan_merge_takes_the_smallest_coins_above_the_threshold():
    coins = wallet(*range(1, 41))
    assert plan_merge(coins, "CNY", 10, threshold=40) is None
    plan = plan_merge(coins, "CNY", 10, threshold=39)
    assert plan is not None
    assert [coin.amount for _, coin in plan] == list(range(1, 11))
    assert plan_merge(wallet(5, 6), "CNY", 10, threshold=1) is not None
    assert plan_merge(wallet(5), "CNY", 10, threshold=0) is None
    assert plan_merge(wallet(5, 6), "USD", 10, threshold=1) is None
    with pytest.raises(ValueError, match="at least 2"):
        plan_merge(coins, "CNY", 1)
