"""Refusals a wallet raises before anything is signed or sent, shared with the services."""

from __future__ import annotations

from tally.model.rejection import Rejection

__all__ = ["WalletError", "InsufficientFundsError", "LimitExceededError"]


class WalletError(Rejection):
    """A wallet refuses an operation (a grouping class)."""


class InsufficientFundsError(WalletError):
    """There are not enough unspent coins (or deposit) of the asset to cover the amount."""

    code = "funds.insufficient"
    http_status = 422


class LimitExceededError(WalletError):
    """A payment, load or balance would go over the customer's tier limit; nothing moved."""

    code = "limit.exceeded"
    http_status = 422
