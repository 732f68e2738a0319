"""Coin selection: which of the wallet's coins pay an amount, and which small coins to merge.

Pure functions over `(coin id, coin)` pairs: no I/O, and the same coins always give the
same choice (ties are broken by coin id). Only coins under a plain `KeyLock` are spendable
by a wallet alone; escrow and multisig coins are never selected.

`select_coins` tries, in order:

1. a single coin of exactly the amount (no change, one input);
2. an exact subset, searched among the largest coins below the amount, with no more inputs
   than step 3 would need (a bounded depth-first search, smallest subsets first);
3. the fewest inputs: the largest coins, the last of them swapped for the smallest coin that
   still covers what remains, so that the change is as small as that count allows.

Taking the largest coins first needs the fewest inputs of any choice, so no step ever uses
more inputs than that greedy choice; steps 1 and 2 only prefer a choice without change.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from tally.model.coin import Coin
from tally.model.lock import KeyLock
from tally.model.types import CoinId
from tally.wallet.errors import InsufficientFundsError, WalletError

__all__ = [
    "Selection",
    "BadAmountError",
    "TooManyInputsError",
    "DEFAULT_MERGE_THRESHOLD",
    "spendable_coins",
    "select_coins",
    "plan_merge",
]

DEFAULT_MERGE_THRESHOLD: Final = 32
"""How many spendable coins of one asset a wallet keeps before it merges the smallest."""
_SEARCH_WIDTH: Final = 20
"""How many of the largest coins below the amount the exact-subset search looks at."""
_SEARCH_BUDGET: Final = 50_000
"""Most search steps spent looking for an exact subset; the bound keeps selection fast."""

CoinEntry = tuple[CoinId, Coin]


class BadAmountError(WalletError):
    """An amount to pay or hold is not a whole number of minor units of at least 1."""

    code = "wallet.amount"


class TooManyInputsError(WalletError):
    """Paying the amount takes more coins than one transaction may spend; merge coins first."""

    code = "wallet.too_many_inputs"
    http_status = 422


@dataclass(frozen=True)
class Selection:
    """The coins chosen to pay an amount, and the change they leave."""

    inputs: tuple[CoinEntry, ...]
    """The coins to spend, largest first."""
    change: int
    """Their sum minus the amount: what goes back to the wallet (0 for an exact choice)."""

    @property
    def total(self) -> int:
        """The sum of the inputs."""
        return sum(coin.amount for _, coin in self.inputs)


def _check_amount(amount: int) -> None:
    if type(amount) is not int or amount < 1:
        raise BadAmountError(
            f"an amount is a whole number of minor units, at least 1; got {amount!r}",
            amount=str(amount),
        )


def spendable_coins(coins: Sequence[CoinEntry], asset: str) -> list[CoinEntry]:
    """The `KeyLock` coins of `asset` in `coins`, each once, largest first, ties by id.

    Args:
        coins: Candidate coins.
        asset: The asset wanted.

    Returns:
        The spendable coins, ordered by amount (descending), then by coin id.

    """
    unique: dict[bytes, CoinEntry] = {}
    for cid, coin in coins:
        if coin.asset == asset and isinstance(coin.lock, KeyLock):
            unique.setdefault(bytes(cid), (cid, coin))
    return sorted(unique.values(), key=lambda entry: (-entry[1].amount, entry[0]))


def _greedy_count(ordered: Sequence[CoinEntry], amount: int) -> int:
    """How many of the largest coins it takes to reach `amount` (they must suffice)."""
    running = 0
    for count, (_, coin) in enumerate(ordered, start=1):
        running += coin.amount
        if running >= amount:
            return count
    raise ValueError("the coins do not reach the amount")  # callers check the total first


def _exact_subset(candidates: Sequence[CoinEntry], amount: int, most: int) -> list[int] | None:
    """Indices of the smallest subset of `candidates` (2 … `most` coins) that sums to `amount`.

    `candidates` are ordered largest first. Subsets are tried by size, and within a size in
    index order, so the answer is deterministic. The search gives up after a fixed number of
    steps.
    """
    values = [coin.amount for _, coin in candidates]
    budget = _SEARCH_BUDGET

    def search(start: int, remaining: int, slots: int, chosen: list[int]) -> list[int] | None:
        nonlocal budget
        if remaining == 0:
            return list(chosen)
        if slots == 0 or start >= len(values) or budget <= 0:
            return None
        # The most the open slots can still add: the next `slots` coins, as they are largest.
        if sum(values[start : start + slots]) < remaining or values[-1] > remaining:
            return None
        for index in range(start, len(values)):
            budget -= 1
            if budget <= 0:
                return None
            value = values[index]
            if value > remaining:
                continue
            chosen.append(index)
            found = search(index + 1, remaining - value, slots - 1, chosen)
            chosen.pop()
            if found is not None:
                return found
        return None

    for size in range(2, min(most, len(values)) + 1):
        found = search(0, amount, size, [])
        if found is not None or budget <= 0:
            return found
    return None


def select_coins(
    coins: Sequence[CoinEntry], asset: str, amount: int, *, max_inputs: int | None = None
) -> Selection:
    """Choose coins of `asset` that pay `amount`: an exact match first, else the fewest inputs.

    Args:
        coins: The wallet's spendable coins (others are ignored: other assets, other locks).
        asset: The asset to pay in.
        amount: What to pay, in minor units, at least 1.
        max_inputs: The most coins one transaction may spend, if limited.

    Returns:
        The chosen coins and the change.

    Raises:
        BadAmountError: `amount` is not an integer of at least 1.
        InsufficientFundsError: the coins of `asset` add up to less than `amount`.
        TooManyInputsError: paying takes more than `max_inputs` coins.

    """
    _check_amount(amount)
    ordered = spendable_coins(coins, asset)
    available = sum(coin.amount for _, coin in ordered)
    if available < amount:
        raise InsufficientFundsError(
            f"paying {amount} {asset} needs {amount - available} more than the "
            f"{available} the wallet holds",
            asset=asset,
            needed=amount,
            available=available,
        )
    for entry in ordered:
        if entry[1].amount == amount:
            # `ordered` puts equal amounts in coin id order, so this is the lowest id.
            return _selection([entry], amount, max_inputs)
    count = _greedy_count(ordered, amount)
    if count > 1:
        below = [entry for entry in ordered if entry[1].amount < amount][:_SEARCH_WIDTH]
        indices = _exact_subset(below, amount, count)
        if indices is not None:
            return _selection([below[i] for i in indices], amount, max_inputs)
    return _selection(_fewest_inputs(ordered, amount), amount, max_inputs)


def _fewest_inputs(ordered: Sequence[CoinEntry], amount: int) -> list[CoinEntry]:
    """The largest coins, the last swapped for the smallest coin that covers the rest.

    `ordered` is largest first (ties by id), so the coins that cover what remains are a
    run at the front of what is left, and the smallest of them (lowest id among equals) is
    found by bisection.
    """
    negated = [-coin.amount for _, coin in ordered]
    chosen: list[CoinEntry] = []
    remaining = amount
    for index, entry in enumerate(ordered):
        end = bisect.bisect_right(negated, -remaining, lo=index)
        if end > index:
            smallest = bisect.bisect_left(negated, negated[end - 1], lo=index)
            chosen.append(ordered[smallest])
            return chosen
        chosen.append(entry)
        remaining -= entry[1].amount
    return chosen  # not reached: callers check that the coins cover the amount


def _selection(chosen: list[CoinEntry], amount: int, max_inputs: int | None) -> Selection:
    if max_inputs is not None and len(chosen) > max_inputs:
        raise TooManyInputsError(
            f"paying {amount} takes {len(chosen)} coins, more than the {max_inputs} one "
            "transaction may spend; merge the wallet's coins first",
            needed_inputs=len(chosen),
            max_inputs=max_inputs,
        )
    inputs = tuple(sorted(chosen, key=lambda entry: (-entry[1].amount, entry[0])))
    return Selection(inputs=inputs, change=sum(coin.amount for _, coin in inputs) - amount)


def plan_merge(
    coins: Sequence[CoinEntry],
    asset: str,
    max_inputs: int,
    *,
    threshold: int = DEFAULT_MERGE_THRESHOLD,
) -> tuple[CoinEntry, ...] | None:
    """The smallest coins of `asset` to merge into one, when the wallet holds too many.

    Args:
        coins: The wallet's spendable coins.
        asset: The asset to look at.
        max_inputs: The most coins to merge in one transaction, at least 2.
        threshold: Merge only when there are more than this many spendable coins.

    Returns:
        Up to `max_inputs` of the smallest coins (ties by id), or None when there are no
        more than `threshold` coins or fewer than two.

    Raises:
        ValueError: `max_inputs` is below 2.

    """
    if max_inputs < 2:
        raise ValueError(f"a merge spends at least 2 coins, max_inputs is {max_inputs}")
    spendable = spendable_coins(coins, asset)
    if len(spendable) <= max(threshold, 1):
        return None
    smallest = sorted(spendable, key=lambda entry: (entry[1].amount, entry[0]))
    return tuple(smallest[:max_inputs])
