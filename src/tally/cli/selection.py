"""Choosing which coins pay an amount: the fewest inputs, an exact match first.

With one coin enough, the exact coin if there is one, else the smallest coin that covers the
amount (the least change). Otherwise the fewest coins that can pay: the largest ones, with
the last of them swapped for the smallest coin that still covers what remains, so that the
change is as small as that count allows and is zero where an exact last coin exists.
"""

from __future__ import annotations

from collections.abc import Sequence

from tally.model.coin import Coin
from tally.model.types import CoinId

__all__ = ["SelectionError", "select_coins"]


class SelectionError(ValueError):
    """The coins cannot pay the amount within the input limit."""


def select_coins(
    coins: Sequence[tuple[CoinId, Coin]], amount: int, max_inputs: int
) -> list[tuple[CoinId, Coin]]:
    """Coins of one asset whose sum is at least `amount`, as few as possible.

    Args:
        coins: The candidate coins, all of the asset to pay.
        amount: What to pay, in minor units.
        max_inputs: The most inputs one transaction may spend.

    Returns:
        The chosen coins; their sum minus `amount` is the change.

    Raises:
        SelectionError: the coins add up to less than `amount`, or paying it would take
            more than `max_inputs` coins.
    """
    # Ties broken by coin id, so that the same coins always give the same choice.
    ordered = sorted(coins, key=lambda item: (-item[1].amount, item[0]))
    total = sum(coin.amount for _, coin in ordered)
    if total < amount:
        raise SelectionError(f"the coins add up to {total}, less than {amount}")
    chosen: list[tuple[CoinId, Coin]] = []
    remaining = amount
    for index, item in enumerate(ordered):
        rest = ordered[index:]
        # The smallest coin (exact first, as it is the smallest that covers) that pays the rest.
        covering = [entry for entry in rest if entry[1].amount >= remaining]
        if covering:
            chosen.append(min(covering, key=lambda entry: (entry[1].amount, entry[0])))
            break
        chosen.append(item)
        remaining -= item[1].amount
    if len(chosen) > max_inputs:
        raise SelectionError(
            f"paying {amount} takes {len(chosen)} coins, more than the {max_inputs} inputs one "
            "transaction may spend; merge coins first with smaller transfers to yourself"
        )
    return chosen
