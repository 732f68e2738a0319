"""The root of every refusal in Tally, and the registry of stable rejection codes.

A `Rejection` says that some input was refused for a reason its sender can act on. Each
subclass declares one dotted `code` that never changes once released; clients and tests
match on the code, never on the message text. The HTTP layer maps every rejection to a 4xx
response in one place. Codes are registered when their class is defined, so a duplicate
code is an error at import time rather than a confusing answer at run time.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "Rejection",
    "all_rejection_classes",
    "DecodeError",
    "MalformedError",
    "TruncatedError",
    "TrailingBytesError",
    "WrongTypeError",
    "NonCanonicalError",
    "TooLargeError",
]

_REGISTRY: dict[str, type[Rejection]] = {}


class Rejection(Exception):  # noqa: N818 - the design names the root of all refusals `Rejection`
    """A refusal with a stable dotted code, a message a person can act on, and details."""

    code: ClassVar[str] = "rejected"
    """Stable dotted code, declared once per subclass."""
    http_status: ClassVar[int] = 400
    """The HTTP status the API answers with."""

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = detail

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if code is None:
            return  # an abstract grouping class that inherits its parent's code
        if code in _REGISTRY and _REGISTRY[code] is not cls:
            raise TypeError(f"rejection code {code!r} declared twice: {_REGISTRY[code]} and {cls}")
        _REGISTRY[code] = cls

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the API returns: code, message and detail."""
        return {"code": self.code, "message": self.message, "detail": self.detail}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message})"


def all_rejection_classes() -> dict[str, type[Rejection]]:
    """Every registered rejection class by its code."""
    return dict(_REGISTRY)


class DecodeError(Rejection):
    """Bytes that are not a valid encoding of the expected object (a grouping class)."""


class MalformedError(DecodeError):
    """The bytes are not well-formed MessagePack or JSON (including invalid UTF-8)."""

    code = "decode.malformed"


class TruncatedError(DecodeError):
    """The input ends before the object does."""

    code = "decode.truncated"


class TrailingBytesError(DecodeError):
    """Bytes follow the end of the object."""

    code = "decode.trailing"


class WrongTypeError(DecodeError):
    """A field has the wrong type, length or shape."""

    code = "decode.type"


class NonCanonicalError(DecodeError):
    """The bytes decode, but do not re-encode to the same bytes."""

    code = "decode.noncanonical"


class TooLargeError(DecodeError):
    """The encoded object is over the network's size limit."""

    code = "decode.too_large"
    http_status = 413
