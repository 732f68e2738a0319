"""Amounts as people type them: minor units, or a decimal number of major units.

`1250` is 1250 minor units; `12.50` is 12.50 major units, that is 1250 minor units. A
number with a decimal point has at most `MINOR_DIGITS` places, parsed exactly with
`decimal.Decimal`, never with floats. Amounts are printed in major units (`12.50`).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

from tally.model.types import MAX_AMOUNT, MIN_AMOUNT

__all__ = ["MINOR_DIGITS", "AmountError", "parse_amount", "format_amount"]

MINOR_DIGITS: Final = 2
"""Decimal places of a major unit (cents of a yuan or a dollar)."""
_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_SCALE = 10**MINOR_DIGITS


class AmountError(ValueError):
    """Text that is not an amount, or an amount out of 1 … 2^63-1 minor units."""


def parse_amount(text: str) -> int:
    """The amount in minor units that `text` names.

    Args:
        text: `1250` (minor units) or `12.50` (major units, at most two decimal places).

    Returns:
        The amount in minor units, 1 … 2^63-1.

    Raises:
        AmountError: not a plain non-negative number, more than two decimal places, or out
            of range.
    """
    cleaned = text.strip().replace("_", "")
    if not _AMOUNT.fullmatch(cleaned):
        raise AmountError(
            f"{text!r} is not an amount: write minor units (1250) or major units with at most "
            f"{MINOR_DIGITS} decimals (12.50)"
        )
    if "." in cleaned:
        try:
            value = Decimal(cleaned)
        except InvalidOperation:  # unreachable after the pattern, kept for safety
            raise AmountError(f"{text!r} is not an amount") from None
        scaled = value * _SCALE
        if scaled != scaled.to_integral_value():
            raise AmountError(
                f"{text!r} has more than {MINOR_DIGITS} decimal places; the smallest unit is "
                f"0.{'0' * (MINOR_DIGITS - 1)}1"
            )
        minor = int(scaled)
    else:
        minor = int(cleaned)
    if not MIN_AMOUNT <= minor <= MAX_AMOUNT:
        raise AmountError(f"{text!r} is out of range: an amount is 1 … {MAX_AMOUNT} minor units")
    return minor


def format_amount(minor: int | str) -> str:
    """Minor units as major units with two decimals: `1250` → `12.50`."""
    value = int(minor)
    sign = "-" if value < 0 else ""
    whole, cents = divmod(abs(value), _SCALE)
    return f"{sign}{whole}.{cents:0{MINOR_DIGITS}d}"
