"""A device's offline limits: per payment, total unsettled, hops per chain, expiry margin.

The operator's tier sets them and the wallet keeps them; they bind the payer's device (it
will not pay more) as well as the payee's (it will not accept more). The checks are pure:
the caller passes the total its store holds unsettled.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from tally.model.params import Params
from tally.wallet.offline.errors import OfflineLimitError

__all__ = [
    "OfflineLimits",
    "DEFAULT_LIMITS",
    "MAX_HOPS_CEILING",
    "check_amount_limits",
    "check_hop_limit",
]

MAX_HOPS_CEILING: Final = 64
"""No device accepts chains longer than this, whatever its settings say."""

_MAX_INPUTS: Final = Params().max_inputs
_Positive = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class OfflineLimits(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """What one device pays or accepts offline before it settles online again."""

    max_payment: _Positive = 100_000
    """The largest single offline payment, in minor units (1,000.00 by default)."""
    max_unsettled: _Positive = 500_000
    """The most a device holds in offline payments not yet settled, in minor units: what it
    received, and apart from that, what it paid (5,000.00 by default)."""
    max_hops: Annotated[int, msgspec.Meta(ge=1, le=MAX_HOPS_CEILING)] = 4
    """The most hops a chain may have, the payment's own hop included."""
    expiry_margin: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 20
    """Blocks that must remain, beyond the newest height the device knows, before any hop's
    window closes or any input's unlock height is reached: time to get online and settle."""


DEFAULT_LIMITS: Final = OfflineLimits()
"""The limits of a device whose wallet was given none."""


def check_amount_limits(
    amount: int, unsettled: int, limits: OfflineLimits, agreed_max: int
) -> None:
    """Check one payment's amount against the device's limits and the agreed maximum.

    Args:
        amount: The payment, in minor units.
        unsettled: What the device already holds unsettled in the same direction.
        limits: The device's limits.
        agreed_max: The largest payment both devices agreed on.

    Raises:
        OfflineLimitError: over the agreed maximum, the per-payment limit, or the
            total unsettled.
    """
    if amount > agreed_max:
        raise OfflineLimitError(
            f"a payment of {amount} is over the {agreed_max} both devices agreed on",
            amount=amount,
            limit=agreed_max,
            which="agreed_max",
        )
    if amount > limits.max_payment:
        raise OfflineLimitError(
            f"a payment of {amount} is over this device's limit of {limits.max_payment}",
            amount=amount,
            limit=limits.max_payment,
            which="max_payment",
        )
    if unsettled + amount > limits.max_unsettled:
        raise OfflineLimitError(
            f"{unsettled} is unsettled already; {amount} more is over this device's limit of "
            f"{limits.max_unsettled} until it settles online",
            amount=amount,
            unsettled=unsettled,
            limit=limits.max_unsettled,
            which="max_unsettled",
        )


def check_hop_limit(hops: int, roots: int, limits: OfflineLimits) -> None:
    """Check a chain's length against the device's limit.

    Args:
        hops: The number of hops, the payment's own included.
        roots: The number of roots; each must be spent by some hop, so a chain within the
            limits has at most as many roots as its hops spend inputs.
        limits: The device's limits.

    Raises:
        OfflineLimitError: more hops than `limits.max_hops`, or more roots than
            `limits.max_hops` times the network's most inputs per transaction.
    """
    if hops > limits.max_hops:
        raise OfflineLimitError(
            f"a chain of {hops} hops is over this device's limit of {limits.max_hops}",
            hops=hops,
            limit=limits.max_hops,
            which="max_hops",
        )
    if roots > limits.max_hops * _MAX_INPUTS:
        raise OfflineLimitError(
            f"a chain with {roots} roots is over what {limits.max_hops} hops can spend",
            roots=roots,
            which="max_roots",
        )
