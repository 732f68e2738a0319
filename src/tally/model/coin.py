"""Coins: unspent outputs of an asset, an amount and a lock, and how their ids are made."""

from __future__ import annotations

import msgspec

from tally.crypto.hashing import tagged_hash
from tally.model.lock import Lock
from tally.model.rejection import Rejection
from tally.model.types import (
    MAX_AMOUNT,
    MIN_AMOUNT,
    Amount,
    AssetCode,
    CoinId,
    TxId,
    is_valid_amount,
    is_valid_asset_code,
)

__all__ = ["Coin", "coin_id", "AmountOutOfRangeError", "InvalidAssetCodeError"]


class AmountOutOfRangeError(Rejection):
    """An amount is not an integer in 1 … 2^63-1."""

    code = "amount.out_of_range"


class InvalidAssetCodeError(Rejection):
    """An asset code does not match `[A-Z][A-Z0-9]{1,11}`."""

    code = "asset.invalid"


class Coin(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """An amount of one asset under one lock; created once, spent once.

    A coin with an amount outside 1 … 2^63-1 or a malformed asset code cannot be built,
    neither in code nor by decoding.
    """

    asset: AssetCode
    """The asset's code, such as `CNY`."""
    amount: Amount
    """Integer count of minor units, 1 … 2^63-1."""
    lock: Lock
    """Who may spend the coin."""

    def __post_init__(self) -> None:
        if not is_valid_amount(self.amount):
            raise AmountOutOfRangeError(
                f"amount must be an integer in {MIN_AMOUNT} … {MAX_AMOUNT}, got {self.amount!r}",
                amount=str(self.amount),
            )
        if not is_valid_asset_code(self.asset):
            raise InvalidAssetCodeError(
                f"asset code must match [A-Z][A-Z0-9]{{1,11}}, got {self.asset!r}",
                asset=str(self.asset),
            )


def coin_id(txid: TxId, index: int) -> CoinId:
    """The id of output `index` of transaction `txid`."""
    return CoinId(tagged_hash("tally/coin", txid + index.to_bytes(2, "big")))
