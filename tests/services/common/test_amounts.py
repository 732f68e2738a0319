"""Amounts in the services' JSON: one rule for both services, in and out."""

from __future__ import annotations

import pytest

from tally.client.wire import WireError
from tally.model.coin import AmountOutOfRangeError
from tally.model.types import MAX_AMOUNT
from tally.services.common.amounts import amount_from_json, amount_to_json, parse_amount
from tally.services.common.errors import BadRequestError
from tests.services.harness import BAD_AMOUNTS


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1), ("1", 1), ("0042", 42), (MAX_AMOUNT, MAX_AMOUNT), (str(MAX_AMOUNT), MAX_AMOUNT)],
)
def test_a_request_amount_is_an_integer_or_a_decimal_string(value: object, expected: int) -> None:
    assert parse_amount(value) == expected


def _short(value: object) -> str:
    return repr(value)[:24] if not isinstance(value, int) or value < 10**30 else "a huge int"


@pytest.mark.parametrize(
    ("value", "code"), [*BAD_AMOUNTS, (10**5000, "amount.out_of_range")], ids=_short
)
def test_a_request_amount_is_refused_with_its_code_and_the_field(value: object, code: str) -> None:
    with pytest.raises((BadRequestError, AmountOutOfRangeError)) as refused:
        parse_amount(value, "payment_limit")
    assert refused.value.code == code
    assert refused.value.detail["field"] == "payment_limit"
    assert refused.value.message.startswith("payment_limit ")
    assert len(refused.value.message) < 200


def test_the_refusal_says_what_was_sent_instead() -> None:
    with pytest.raises(BadRequestError, match="got a number with a fraction or an exponent"):
        parse_amount(1.5)
    with pytest.raises(BadRequestError, match="got a boolean"):
        parse_amount(True)
    with pytest.raises(AmountOutOfRangeError, match=f"1 … {MAX_AMOUNT} minor units, got 0"):
        parse_amount(0)


@pytest.mark.parametrize("value", [0, 1, -250, MAX_AMOUNT, 2 * MAX_AMOUNT])
def test_an_answer_amount_is_a_decimal_string_that_reads_back(value: int) -> None:
    text = amount_to_json(value)
    assert isinstance(text, str)
    assert int(text) == value
    assert amount_from_json(text) == value
    assert amount_from_json(value) == value  # an older answer's JSON integer reads too


@pytest.mark.parametrize("value", ["1.5", "1e3", "", "-", "12a", 1.0, True, None, "9" * 41])
def test_an_answer_amount_that_is_no_whole_number_is_a_wire_error(value: object) -> None:
    with pytest.raises(WireError):
        amount_from_json(value)
