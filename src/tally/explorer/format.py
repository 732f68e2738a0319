"""How the explorer writes values for people: amounts, ids, times and counts.

Amounts are integer minor units in the ledger; pages show them in major units with two
decimal places (`1,234.50`), computed with integers only, as the command line does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

__all__ = ["MINOR_DIGITS", "format_amount", "short_id", "format_time", "format_age", "format_count"]

MINOR_DIGITS: Final = 2
"""Decimal places of a major unit (cents of a yuan or a dollar)."""


def format_amount(minor: int | str) -> str:
    """`123456` minor units as `1,234.56`."""
    value = int(minor)
    sign = "-" if value < 0 else ""
    major, cents = divmod(abs(value), 10**MINOR_DIGITS)
    return f"{sign}{major:,}.{cents:0{MINOR_DIGITS}d}"


def short_id(value: str, head: int = 8, tail: int = 6) -> str:
    """A long hex id or address shortened to its ends: `3f2a9c01…b7e4d2`."""
    if len(value) <= head + tail + 1:
        return value
    return f"{value[:head]}…{value[-tail:]}"


def format_time(time_ms: int) -> str:
    """Milliseconds since the epoch as `2024-05-01 12:00:00 UTC`."""
    try:
        moment = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"{time_ms} ms"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_age(time_ms: int, now_ms: int) -> str:
    """How long before `now_ms` the time `time_ms` was: `4 s ago`, `3 min ago`, `2 d ago`."""
    seconds = (now_ms - time_ms) // 1000
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def format_count(value: int | float) -> str:
    """A count with thousands separators; a rate with one decimal below 100."""
    if isinstance(value, float) and value < 100:
        return f"{value:,.1f}"
    return f"{round(value):,}"
