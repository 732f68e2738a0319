import pytest

from tally.cli.amounts import AmountError, format_amount, parse_amount


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("1250", 1250),
        ("12.50", 1250),
        ("12.5", 1250),
        ("12.", 1200),
        (".05", 5),
        ("1_000", 1000),
        ("0.01", 1),
        (str(2**63 - 1), 2**63 - 1),
        ("92233720368547758.07", 2**63 - 1),
    ],
)
def test_amounts_are_minor_units_or_decimals_with_two_places(text: str, minor: int) -> None:
    assert parse_amount(text) == minor


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.001", "more than 2 decimal places"),
        ("0", "out of range"),
        ("0.00", "out of range"),
        (str(2**63), "out of range"),
        ("-5", "not an amount"),
        ("1e3", "not an amount"),
        ("nan", "not an amount"),
        ("", "not an amount"),
        ("1,5", "not an amount"),
    ],
)
def test_amounts_refuse_extra_decimals_signs_and_out_of_range(text: str, message: str) -> None:
    with pytest.raises(AmountError, match=message):
        parse_amount(text)


def test_format_amount_prints_major_units() -> None:
    assert [format_amount(v) for v in (1, 100, 1250, "99")] == ["0.01", "1.00", "12.50", "0.99"]
