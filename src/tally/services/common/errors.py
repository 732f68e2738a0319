"""Refusals of the services, and the one place they become HTTP answers.

Every refusal is a `Rejection` answered as `{"code", "message", "detail"}` with its status:
401 when the caller did not prove who it is, 403 when it may not do what it asked, 4xx for bad
input. A refusal changes nothing, and the service goes on serving.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tally.client.errors import NodeError, NodeRejection
from tally.model.rejection import Rejection
from tally.node.errors import BadRequestError
from tally.wallet.errors import InsufficientFundsError, LimitExceededError

__all__ = [
    "ServiceRejection",
    "AuthMissingError",
    "AuthInvalidError",
    "ForbiddenError",
    "NotFoundError",
    "BadRequestError",
    "IdempotencyConflictError",
    "UpstreamError",
    "upstream_errors",
    "LimitExceededError",
    "InsufficientFundsError",
    "install_error_handlers",
]

log = logging.getLogger(__name__)


class ServiceRejection(Rejection):
    """A service refuses a request (a grouping class)."""


class AuthMissingError(ServiceRejection):
    """The request carries no credential: no signature headers and no bearer token."""

    code = "auth.missing"
    http_status = 401


class AuthInvalidError(ServiceRejection):
    """The credential does not hold: a bad signature, an unknown token or key, a stale time."""

    code = "auth.invalid"
    http_status = 401


class ForbiddenError(ServiceRejection):
    """The caller is known but may not do this: another customer's or operator's account."""

    code = "auth.forbidden"
    http_status = 403


class NotFoundError(ServiceRejection):
    """No such customer, operator, request or record."""

    code = "service.not_found"
    http_status = 404


class IdempotencyConflictError(ServiceRejection):
    """The idempotency key was used before for a different request."""

    code = "idempotency.conflict"
    http_status = 409


class UpstreamError(ServiceRejection):
    """A service this one depends on (the node, the issuer) did not answer or refused."""

    code = "service.upstream"
    http_status = 502


@contextlib.contextmanager
def upstream_errors(what: str) -> Iterator[None]:
    """Turn a failed call to the ledger node into `UpstreamError`, saying what failed.

    Raises:
        UpstreamError: the node did not answer, or refused (its code in `detail`).
    """
    try:
        yield
    except NodeError as exc:
        if isinstance(exc, NodeRejection):
            detail = {"node_code": exc.code, "node_message": exc.message}
        else:
            detail = {"node_error": str(exc)}
        raise UpstreamError(f"could not {what} on the ledger node: {exc}", **detail) from None


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is malformed"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every refusal with its code and status, and hide internal errors behind a 500."""

    @app.exception_handler(Rejection)
    async def on_rejection(_: Request, exc: Rejection) -> JSONResponse:
        return JSONResponse(status_code=exc.http_status, content=exc.to_dict())

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        rejection = BadRequestError(_validation_message(exc))
        return JSONResponse(status_code=400, content=rejection.to_dict())

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown routes and wrong methods answer in our shape too, with a stable code.
        if exc.status_code == 404:
            code, message = NotFoundError.code, f"no such endpoint: {request.url.path}"
        elif exc.status_code == 405:
            code, message = "request.method", f"{request.method} is not allowed here"
        else:
            code, message = "request.http", str(exc.detail)
        return JSONResponse(
            status_code=exc.status_code,
            content={"code": code, "message": message, "detail": {}},
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error serving %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            status_code=500,
            content={"code": "service.internal", "message": "internal error", "detail": {}},
        )
