"""Amounts in the services' JSON: decimal strings in answers, integers or decimal strings in.

JSON numbers lose precision past 2^53 in JavaScript, so both services answer every amount as
a decimal string of minor units (`"250000"` is 2,500.00), as the node's API does. A request
may send an amount as a JSON integer or as such a string; anything else (a fraction, an
exponent, a sign in a string, a boolean, null) is refused with 400 `request.invalid`, and a
whole number outside 1 … 2^63-1 with 400 `amount.out_of_range`.

Answers are read back with `amount_from_json`, which takes either form and any sign: an
account's balance may be zero, and an operator's frozen reserve negative.
"""

from __future__ import annotations

from tally.client.wire import WireError
from tally.model.coin import AmountOutOfRangeError
from tally.model.types import MAX_AMOUNT, MIN_AMOUNT
from tally.services.common.errors import BadRequestError

__all__ = ["amount_to_json", "amount_from_json", "parse_amount"]

_MAX_DIGITS = len(str(MAX_AMOUNT))
_MAX_ANSWER_DIGITS = 40  # sums of amounts stay far below; a longer string is not one
_JSON_KINDS: dict[type, str] = {
    bool: "a boolean",
    float: "a number with a fraction or an exponent",
    type(None): "null",
    list: "an array",
    dict: "an object",
}


def amount_to_json(value: int) -> str:
    """An amount as the services answer it: its decimal string of minor units."""
    return str(value)


def amount_from_json(value: object) -> int:
    """An amount of a service's answer: a JSON integer or a decimal string, of any sign.

    Raises:
        WireError: neither.
    """
    if type(value) is int:
        return value
    if isinstance(value, str):
        digits = value[1:] if value.startswith("-") else value
        if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_ANSWER_DIGITS:
            return int(value)
    raise WireError(f"an amount is a decimal string of minor units, got {value!r:.80}")


def parse_amount(value: object, field: str = "amount") -> int:
    """An amount of a request: a JSON integer or a decimal string, in 1 … 2^63-1.

    Raises:
        BadRequestError: neither an integer nor a string of decimal digits.
        AmountOutOfRangeError: a whole number below 1 or above 2^63-1.
    """
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise BadRequestError(
                f"{field} is a whole number of minor units (an integer or a string of decimal "
                f"digits), got {value[:40]!r}",
                field=field,
            )
        if len(value.lstrip("0")) > _MAX_DIGITS:  # out of range: no need to read it all
            raise AmountOutOfRangeError(
                f"{field} must be in {MIN_AMOUNT} … {MAX_AMOUNT} minor units, got {value[:40]}…",
                field=field,
                amount=f"{value[:40]}…",
            )
        value = int(value)
    if type(value) is not int:
        kind = _JSON_KINDS.get(type(value), type(value).__name__)
        raise BadRequestError(
            f"{field} is a whole number of minor units (an integer or a string of decimal "
            f"digits), got {kind}",
            field=field,
        )
    if not MIN_AMOUNT <= value <= MAX_AMOUNT:
        # A JSON integer may have thousands of digits; name such a one by its size.
        shown = amount_to_json(value) if value.bit_length() <= 128 else "a larger number"
        raise AmountOutOfRangeError(
            f"{field} must be in {MIN_AMOUNT} … {MAX_AMOUNT} minor units, got {shown}",
            field=field,
            amount=shown,
        )
    return value
