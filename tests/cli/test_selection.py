import pytest

from tally.cli.selection import SelectionError, select_coins
from tally.model import Amount, AssetCode, Coin, CoinId, KeyLock
from tests.rules.helpers import ALICE, pub


def _coins(*amounts: int) -> list[tuple[CoinId, Coin]]:
    lock = KeyLock(key=pub(ALICE))
    return [
        (CoinId(bytes([i]) * 32), Coin(asset=AssetCode("CNY"), amount=Amount(a), lock=lock))
        for i, a in enumerate(amounts)
    ]


def _amounts(chosen: list[tuple[CoinId, Coin]]) -> list[int]:
    return [coin.amount for _, coin in chosen]


def test_an_exact_coin_is_chosen_first() -> None:
    assert _amounts(select_coins(_coins(500, 70, 30, 100), 70, 64)) == [70]


def test_one_coin_that_covers_is_the_smallest_such_coin() -> None:
    assert _amounts(select_coins(_coins(500, 200, 30, 100), 150, 64)) == [200]


def test_fewest_coins_with_the_least_change_for_that_count() -> None:
    assert _amounts(select_coins(_coins(50, 40, 30, 20, 10), 85, 64)) == [50, 40]
    assert _amounts(select_coins(_coins(50, 40, 30, 20, 10), 70, 64)) == [50, 20]
    assert _amounts(select_coins(_coins(10, 10, 10), 30, 64)) == [10, 10, 10]


def test_selection_refuses_too_little_money_or_too_many_inputs() -> None:
    with pytest.raises(SelectionError, match="add up to 60, less than 61"):
        select_coins(_coins(10, 20, 30), 61, 64)
    with pytest.raises(SelectionError, match="takes 3 coins, more than the 2 inputs"):
        select_coins(_coins(10, 20, 30), 60, 2)
