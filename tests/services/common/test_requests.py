"""Request bodies and path parameters: parsed strictly, refused with `request.invalid`."""

from __future__ import annotations

import pytest

from tally.services.common.errors import BadRequestError
from tally.services.common.requests import (
    RequestBody,
    parse_body,
    parse_hex32,
    parse_id,
    parse_idempotency_key,
    parse_public_key,
)
from tests.rules.helpers import key


class _Body(RequestBody, frozen=True):
    name: str
    count: int = 1


def test_a_body_is_decoded_into_its_fields() -> None:
    assert parse_body(b'{"name": "x"}', _Body) == _Body(name="x")
    assert parse_body(b'{"name": "x", "count": 3}', _Body) == _Body(name="x", count=3)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"[]", "not what this endpoint takes"),
        (b'{"count": 1}', "missing required field `name`"),
        (b'{"name": "x", "extra": 1}', "unknown field `extra`"),
        (b'{"name": "x", "count": "1"}', "Expected `int`, got `str`"),
        (b'{"name": "x", "count": true}', "Expected `int`, got `bool`"),
    ],
)
def test_a_body_that_is_not_what_the_endpoint_takes_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(BadRequestError, match=message) as refused:
        parse_body(body, _Body)
    assert refused.value.code == "request.invalid"


def test_idempotency_keys_are_printable_ascii_without_spaces() -> None:
    assert parse_idempotency_key("load-1/2024:x") == "load-1/2024:x"
    assert parse_idempotency_key("k" * 128) == "k" * 128
    for bad in ("", "has space", "k" * 129, "tab\t", "ü", 7, None):
        with pytest.raises(BadRequestError, match="idempotency_key"):
            parse_idempotency_key(bad)


def test_hex_ids_and_public_keys() -> None:
    public = key(1).public_key
    assert parse_public_key(public.hex().upper(), "key") == public
    assert parse_hex32("AB" * 32, "txid") == "ab" * 32
    for bad in ("zz" * 32, "ab" * 31, "ab" * 33, 5, None):
        with pytest.raises(BadRequestError, match="txid is 32 bytes"):
            parse_hex32(bad, "txid")
    with pytest.raises(BadRequestError, match="not an x-only public key"):
        parse_public_key("ff" * 32, "key")


def test_path_ids_are_decimal_numbers() -> None:
    assert parse_id("42", "issuance id") == 42
    for bad in ("abc", "-1", "4.2", "1" * 19, "٣"):
        with pytest.raises(BadRequestError, match="issuance id is a number"):
            parse_id(bad, "issuance id")
