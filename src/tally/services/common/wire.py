"""The services' JSON documents as frozen dataclasses that write and read themselves.

A wire model is a frozen dataclass deriving from `WireModel`. Its fields' types say how each
travels, so that the service writing a document (`to_json`) and the client reading it
(`from_json`) cannot disagree:

    WireAmount          an `int` of minor units, as a decimal string (`amounts`)
    int, str, bool      as themselves
    a WireModel         as an object
    tuple[Model, ...]   as an array
    X | None            as X, or null

Keys, ids and hashes are lowercase hex strings; the models hold them as `str`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Self

from tally.client.wire import WireError
from tally.services.common.amounts import amount_from_json, amount_to_json

__all__ = ["JsonDict", "WireAmount", "WireModel"]

JsonDict = dict[str, Any]  # Any: a JSON document


class _AsDecimalString:
    """Marks an `int` field that travels as a decimal string."""


WireAmount = Annotated[int, _AsDecimalString()]
"""An amount of minor units: an `int` here, a decimal string in JSON."""

_Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]  # Any: JSON values and fields


def _plain(kind: type) -> _Codec:
    def read(value: Any) -> Any:  # Any: a JSON value
        # A bool is an int to Python, but never one of our numbers.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise WireError(f"expected {kind.__name__}, got {value!r:.80}")
        return value

    return (lambda value: value), read


def _codec(hint: Any) -> _Codec:  # Any: a type hint
    """How one field's value is written and read."""
    if typing.get_origin(hint) is Annotated:
        base, *marks = typing.get_args(hint)
        if any(isinstance(mark, _AsDecimalString) for mark in marks):
            return amount_to_json, amount_from_json
        return _codec(base)
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union) and type(None) in args:
        (inner,) = (arg for arg in args if arg is not type(None))
        write, read = _codec(inner)
        return (
            lambda value: None if value is None else write(value),
            lambda value: None if value is None else read(value),
        )
    if typing.get_origin(hint) is tuple:
        item_write, item_read = _codec(args[0])

        def read_items(value: Any) -> tuple[Any, ...]:  # Any: JSON
            if not isinstance(value, list):
                raise WireError(f"expected an array, got {value!r:.80}")
            return tuple(item_read(item) for item in value)

        return (lambda value: [item_write(item) for item in value]), read_items
    if isinstance(hint, type) and issubclass(hint, WireModel):
        model = hint
        return (lambda value: value.to_json()), model.from_json
    if hint in (int, str, bool):
        return _plain(hint)
    raise TypeError(f"a wire model field cannot be of type {hint!r}")


_CODECS: dict[type, tuple[tuple[str, _Codec], ...]] = {}


def _codecs(model: type[WireModel]) -> tuple[tuple[str, _Codec], ...]:
    """Each field's name and codec, worked out once per model."""
    codecs = _CODECS.get(model)
    if codecs is None:
        hints = typing.get_type_hints(model, include_extras=True)
        fields = dataclasses.fields(model)  # type: ignore[arg-type]
        codecs = _CODECS[model] = tuple((field.name, _codec(hints[field.name])) for field in fields)
    return codecs


class WireModel:
    """A JSON document of a service's API; subclasses are frozen dataclasses."""

    def to_json(self) -> JsonDict:
        """The JSON document."""
        return {name: write(getattr(self, name)) for name, (write, _) in _codecs(type(self))}

    @classmethod
    def of(cls, source: object, **values: Any) -> Self:  # Any: the fields' values
        """The model of `values`, and for every other field `source`'s attribute of its name.

        So a service shows a database row as its wire model: `Redemption.of(row)`, with the
        fields that differ given, `Issuance.of(row, certificate=row.certificate.hex())`.
        """
        for name, _ in _codecs(cls):
            if name not in values:
                values[name] = getattr(source, name)
        return cls(**values)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Self:  # Any: a JSON document
        """Read the JSON document.

        Raises:
            WireError: a field is missing or not of its type.
        """
        if not isinstance(document, Mapping):
            raise WireError(f"{cls.__name__} is a JSON object, got {document!r:.80}")
        values: dict[str, Any] = {}  # Any: the fields' values
        for name, (_, read) in _codecs(cls):
            if name not in document:
                raise WireError(f"{cls.__name__} has no field {name!r}")
            try:
                values[name] = read(document[name])
            except WireError as exc:
                raise WireError(f"{cls.__name__}.{name}: {exc}") from None
        return cls(**values)
