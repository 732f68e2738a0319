"""Purse denominations, hops and limits: the pure parts of paying offline."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.model import Height
from tally.model.lock import OfflineLock
from tally.wallet.offline.errors import OfflineChainError, OfflineLimitError, OfflineLockError
from tally.wallet.offline.limits import OfflineLimits, check_amount_limits, check_hop_limit
from tally.wallet.offline.purse import build_hop, choose_denominations
from tally.wallet.selection import BadAmountError
from tests.rules.helpers import ALICE, BOB, CHAIN_ID, key, pub

from .chains import outputs_of, purse

SERIES = {d * 10**k for d in (1, 2, 5) for k in range(19)}


def test_a_round_amount_is_one_coin_and_others_follow_the_1_2_5_series():
    assert choose_denominations(5000) == [5000]
    assert choose_denominations(12345) == [10000, 2000, 200, 100, 20, 20, 5]
    assert choose_denominations(8) == [5, 2, 1]


@given(st.integers(min_value=1, max_value=10**15), st.integers(min_value=1, max_value=20))
def test_denominations_always_add_up_and_respect_the_coin_count(amount, max_coins):
    coins = choose_denominations(amount, max_coins=max_coins)
    assert sum(coins) == amount
    assert 1 <= len(coins) <= max_coins
    assert coins == sorted(coins, reverse=True)
    if len(coins) < max_coins:
        assert set(coins) <= SERIES


def test_bad_purse_amounts_are_refused():
    with pytest.raises(BadAmountError):
        choose_denominations(0)
    with pytest.raises(ValueError, match="max_coins"):
        choose_denominations(10, max_coins=0)


def test_a_hop_pays_output_0_and_returns_change_at_the_latest_unlock():
    early = purse(ALICE, [1000], unlock=300)
    late = purse(ALICE, [700], unlock=350)
    hop = build_hop(
        [(c, key(ALICE)) for c in early + late], pub(BOB), "CNY", 1500, pub(ALICE), CHAIN_ID
    )
    payment, change = outputs_of(hop)
    assert payment.amount == 1500
    assert payment.lock == OfflineLock(owner=pub(BOB), unlock_height=Height(350))
    assert change.amount == 200
    assert change.lock == OfflineLock(owner=pub(ALICE), unlock_height=Height(350))
    assert hop.body.valid_until == 300


def test_a_hop_is_refused_before_signing_when_it_cannot_be_valid():
    [coin] = purse(ALICE, [1000])
    with pytest.raises(OfflineLockError):
        build_hop([(coin, key(BOB))], pub(BOB), "CNY", 10, pub(ALICE), CHAIN_ID)
    with pytest.raises(OfflineChainError):
        build_hop([(coin, key(ALICE))], pub(BOB), "CNY", 1001, pub(ALICE), CHAIN_ID)
    with pytest.raises(OfflineChainError):
        build_hop([(coin, key(ALICE))], pub(BOB), "CNY", 10, None, CHAIN_ID)
    with pytest.raises(OfflineChainError):
        build_hop([(coin, key(ALICE))], pub(BOB), "USD", 10, pub(ALICE), CHAIN_ID)
    with pytest.raises(OfflineChainError):
        build_hop([], pub(BOB), "CNY", 10, pub(ALICE), CHAIN_ID)
    exact = build_hop([(coin, key(ALICE))], pub(BOB), "CNY", 1000, None, CHAIN_ID)
    assert len(outputs_of(exact)) == 1


def test_limits_check_each_bound():
    limits = OfflineLimits(max_payment=100, max_unsettled=250, max_hops=2, expiry_margin=0)
    check_amount_limits(100, 150, limits, 1000)
    for amount, unsettled, agreed, which in (
        (101, 0, 1000, "max_payment"),
        (100, 151, 1000, "max_unsettled"),
        (50, 0, 40, "agreed_max"),
    ):
        with pytest.raises(OfflineLimitError) as info:
            check_amount_limits(amount, unsettled, limits, agreed)
        assert info.value.detail["which"] == which
    check_hop_limit(2, 5, limits)
    with pytest.raises(OfflineLimitError):
        check_hop_limit(3, 1, limits)
