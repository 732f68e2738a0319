"""Refusals that belong to the node rather than to the ledger rules."""

from __future__ import annotations

from tally.model.rejection import Rejection

__all__ = [
    "MempoolConflictError",
    "MempoolFullError",
    "NotFoundError",
    "BadRequestError",
    "UnsupportedMediaError",
    "ShuttingDownError",
]


class MempoolConflictError(Rejection):
    """A pending transaction already spends one of this transaction's inputs."""

    code = "mempool.conflict"
    http_status = 409


class MempoolFullError(Rejection):
    """The mempool holds as many transactions as it may; try again shortly."""

    code = "mempool.full"
    http_status = 429


class NotFoundError(Rejection):
    """The object asked for does not exist."""

    code = "not_found"
    http_status = 404


class BadRequestError(Rejection):
    """A request that is not what the endpoint takes (malformed JSON, bad hex, bad id)."""

    code = "request.invalid"


class UnsupportedMediaError(Rejection):
    """A body in a content type the endpoint does not take."""

    code = "request.media_type"
    http_status = 415


class ShuttingDownError(Rejection):
    """The node is stopping and takes no more transactions."""

    code = "node.stopping"
    http_status = 503
