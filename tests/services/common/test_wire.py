"""Wire models: the field types decide the JSON, and the JSON reads back to the same model."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tally.client.wire import WireError
from tally.services.common.wire import WireAmount, WireModel


@dataclass(frozen=True)
class _Line(WireModel):
    amount: WireAmount
    note: str | None


@dataclass(frozen=True)
class _Account(WireModel):
    id: int
    name: str
    open: bool
    balance: WireAmount
    limit: WireAmount | None
    last: _Line | None
    lines: tuple[_Line, ...]


ACCOUNT = _Account(
    id=7,
    name="Alice",
    open=True,
    balance=2**62,
    limit=None,
    last=_Line(amount=-5, note=None),
    lines=(_Line(amount=1, note="a"), _Line(amount=2, note=None)),
)


def test_a_model_writes_amounts_as_decimal_strings_and_reads_itself_back() -> None:
    document = ACCOUNT.to_json()
    assert document == {
        "id": 7,
        "name": "Alice",
        "open": True,
        "balance": str(2**62),
        "limit": None,
        "last": {"amount": "-5", "note": None},
        "lines": [{"amount": "1", "note": "a"}, {"amount": "2", "note": None}],
    }
    assert _Account.from_json(document) == ACCOUNT


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("id", "7", "_Account.id: expected int"),
        ("id", True, "_Account.id: expected int"),
        ("open", 1, "_Account.open: expected bool"),
        ("balance", 1.5, "_Account.balance"),
        ("lines", {}, "_Account.lines: expected an array"),
        ("last", [], "_Line is a JSON object"),
    ],
)
def test_a_field_of_another_type_is_a_wire_error_naming_it(
    field: str, value: object, message: str
) -> None:
    document = {**ACCOUNT.to_json(), field: value}
    with pytest.raises(WireError, match=message):
        _Account.from_json(document)


def test_a_missing_field_is_a_wire_error() -> None:
    document = ACCOUNT.to_json()
    del document["limit"]
    with pytest.raises(WireError, match="_Account has no field 'limit'"):
        _Account.from_json(document)
