"""What can go wrong talking to a node, as exceptions a caller can tell apart.

A node that refuses a request answers `{"code", "message", "detail"}` with a 4xx status; the
client raises `NodeRejection` carrying those fields, so callers match on `.code` as they
would on a `tally.model.Rejection`. It is not a `Rejection` subclass: the codes come from the
node at run time (and from node layers, like `mempool.full`, that the model does not know),
so there is no class per code on this side.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NodeError", "NodeRejection", "NodeUnreachable", "NodeResponseError"]


class NodeError(Exception):
    """The root of every error the node client raises."""


class NodeRejection(NodeError):  # noqa: N818 - mirrors `Rejection`, the name the design uses
    """The node refused the request: a 4xx answer with a stable dotted code.

    Attributes:
        code: The node's stable code (`input.spent`, `not_found`, `mempool.full`, …).
        message: What the node says, for people.
        detail: The values behind the message.
        status: The HTTP status.
    """

    def __init__(self, code: str, message: str, detail: dict[str, Any], status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status

    def __repr__(self) -> str:
        return f"NodeRejection({self.status} {self.code}: {self.message})"


class NodeUnreachable(NodeError):  # noqa: N818 - reads as a state, like `TimeoutError`
    """No answer from the node: refused connection, timeout, or a dropped connection.

    A transaction sent before the connection failed may still be committed; ask for it by id.

    Attributes:
        url: The node's base URL.
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the node at {url}: {reason}")
        self.url = url
        self.reason = reason


class NodeResponseError(NodeError):
    """The node answered, but not as the API promises (a 5xx, or a body that is not JSON).

    Attributes:
        status: The HTTP status.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
