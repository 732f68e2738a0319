"""The operator's HTTP API and its process: thin routes over `OperatorService`.

Three kinds of caller:

- the public: `GET /v1/health`, `GET /v1/info`;
- customers under `/v1/me`: a self-custody wallet signs each request with its identity key
  (`X-Tally-Key`, `X-Tally-Time`, `X-Tally-Signature`), a hosted wallet sends
  `Authorization: Bearer <token>`; each sees and moves only its own money;
- the admin under `/v1/admin`: `Authorization: Bearer <admin token>`.

A request without a credential is refused with 401 `auth.missing`, a credential that does not
hold with 401 `auth.invalid`, a known caller on the wrong side (a customer at the admin
endpoints, the admin token at a customer's) with 403 `auth.forbidden`; credentials are checked
before the body is read, and a refusal changes nothing. Bodies are parsed here
(`tally.services.common.requests`), strictly: unknown fields, wrong types and malformed JSON
are 400 `request.invalid`, an amount outside 1 … 2^63-1 400 `amount.out_of_range`. Amounts
are taken as JSON integers or decimal strings and answered as decimal strings
(`tally.services.common.amounts`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from tally.services.common.amounts import parse_amount
from tally.services.common.auth import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIME_HEADER,
    bearer_token,
    hash_token,
    request_target,
    token_matches,
    verify_signed,
)
from tally.services.common.errors import (
    AuthInvalidError,
    AuthMissingError,
    ForbiddenError,
    UpstreamError,
    install_error_handlers,
)
from tally.services.common.process import configure_logging, serve
from tally.services.common.requests import (
    RequestBody,
    parse_body,
    parse_id,
    parse_idempotency_key,
)
from tally.services.operator.config import OperatorConfigError, load_config
from tally.services.operator.float import Answer
from tally.services.operator.service import OperatorService, limits_json, open_service
from tally.services.operator.store import CustomerRow

__all__ = ["create_app", "run_operator", "CustomerCall"]

log = logging.getLogger(__name__)


class _NewCustomer(RequestBody, frozen=True):
    name: str
    tier: int
    wallet_key: str | None = None


class _Deposit(RequestBody, frozen=True):
    amount: object  # an integer or a decimal string: `parse_amount` reads it
    idempotency_key: str


class _Keys(RequestBody, frozen=True):
    keys: list[str]


class _Load(RequestBody, frozen=True):
    amount: object
    idempotency_key: str
    to: str | None = None


class _Unload(RequestBody, frozen=True):
    idempotency_key: str
    tx: str | None = None
    amount: object = None


class _Pay(RequestBody, frozen=True):
    to: str
    amount: object
    idempotency_key: str


def _customer_id(text: str) -> int:
    return parse_id(text, "customer id")


def _respond(answer: Answer) -> JSONResponse:
    return JSONResponse(status_code=answer.status, content=answer.body)


@dataclass(frozen=True)
class CustomerCall:
    """An authenticated customer's request: who, and the body it sent."""

    customer: CustomerRow
    body: bytes


def create_app(service: OperatorService, *, start: bool = True) -> FastAPI:
    """The FastAPI application serving `service`.

    Args:
        service: The operator.
        start: Start the service (chain, recovery, worker) with the application and stop it
            when the application stops.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start:
            await run_in_threadpool(service.start)
        try:
            yield
        finally:
            if start:
                await run_in_threadpool(service.stop)

    app = FastAPI(
        title=f"Tally operator {service.config.name}",
        version="1",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    store = service.store
    admin_hash = service.config.admin_token_hash

    async def admin(request: Request) -> bytes:
        token = bearer_token(request)
        body = await request.body()
        if token is not None:
            if token_matches(token, admin_hash):
                return body
            if await run_in_threadpool(store.customer_by_token_hash, hash_token(token)):
                raise ForbiddenError("a customer's token cannot use the admin endpoints")
            raise AuthInvalidError("the bearer token is not the admin token")
        if request.headers.get(KEY_HEADER) or request.headers.get(SIGNATURE_HEADER):
            key = verify_signed(request.headers, request.method, request_target(request), body)
            if await run_in_threadpool(store.customer_by_wallet_key, key.hex()):
                raise ForbiddenError("a customer's wallet cannot use the admin endpoints")
            raise AuthInvalidError("the admin endpoints take the admin token, not a signature")
        raise AuthMissingError("the admin endpoints need Authorization: Bearer <admin token>")

    async def customer(request: Request) -> CustomerCall:
        token = bearer_token(request)
        body = await request.body()
        if token is not None:
            row = await run_in_threadpool(store.customer_by_token_hash, hash_token(token))
            if row is not None:
                return CustomerCall(row, body)
            if token_matches(token, admin_hash):
                raise ForbiddenError("the admin token does not act for a customer")
            raise AuthInvalidError("the bearer token is not a customer's")
        try:
            key = verify_signed(request.headers, request.method, request_target(request), body)
        except AuthMissingError:
            raise AuthMissingError(
                "this endpoint needs a request signed by the wallet's key "
                f"({KEY_HEADER}, {TIME_HEADER}, {SIGNATURE_HEADER}) or, for a hosted wallet, "
                "Authorization: Bearer <token>"
            ) from None
        row = await run_in_threadpool(store.customer_by_wallet_key, key.hex())
        if row is None:
            raise AuthInvalidError(
                f"key {key.hex()} is not the wallet key of a customer of this operator"
            )
        return CustomerCall(row, body)

    # -- public ------------------------------------------------------------------------------

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/v1/info")
    def info() -> dict[str, Any]:
        float_key = service.float.public_key
        return {
            "name": service.config.name,
            "asset": service.config.asset,
            "chain_id": service.ledger.chain_id,
            "hrp": service.ledger.hrp,
            "identity_key": service.identity_key.public_key.hex(),
            "float_key": float_key.hex(),
            "float_address": service.ledger.address(float_key),
            "tiers": {
                str(tier): limits_json(limits) for tier, limits in service.config.tiers.items()
            },
        }

    # -- admin -------------------------------------------------------------------------------

    @app.post("/v1/admin/customers")
    def create_customer(body: bytes = Depends(admin)) -> dict[str, Any]:
        request = parse_body(body, _NewCustomer)
        return service.create_customer(request.name, request.tier, request.wallet_key)

    @app.get("/v1/admin/customers")
    def list_customers(_: bytes = Depends(admin)) -> dict[str, Any]:
        return {"customers": service.customers()}

    @app.get("/v1/admin/customers/{customer_id}")
    def get_customer(customer_id: str, _: bytes = Depends(admin)) -> dict[str, Any]:
        return service.customer_view(service.customer(_customer_id(customer_id)))

    @app.post("/v1/admin/customers/{customer_id}/deposit")
    def deposit(customer_id: str, body: bytes = Depends(admin)) -> JSONResponse:
        who = _customer_id(customer_id)
        request = parse_body(body, _Deposit)
        amount = parse_amount(request.amount)
        key = parse_idempotency_key(request.idempotency_key)
        return _respond(service.deposit(who, amount, key))

    @app.get("/v1/admin/float")
    def float_view(_: bytes = Depends(admin)) -> dict[str, Any]:
        return service.float_view()

    @app.post("/v1/admin/float/rebalance")
    def rebalance(_: bytes = Depends(admin)) -> dict[str, Any]:
        return service.rebalance()

    @app.get("/v1/admin/journal")
    def journal(customer_id: str | None = None, _: bytes = Depends(admin)) -> dict[str, Any]:
        who = None if customer_id is None else _customer_id(customer_id)
        return service.journal(who)

    # -- customers ---------------------------------------------------------------------------

    @app.get("/v1/me")
    def me(call: CustomerCall = Depends(customer)) -> dict[str, Any]:
        return service.me(call.customer)

    @app.get("/v1/me/history")
    def history(call: CustomerCall = Depends(customer)) -> dict[str, Any]:
        return service.history(call.customer)

    @app.post("/v1/me/keys")
    def register_keys(call: CustomerCall = Depends(customer)) -> dict[str, Any]:
        request = parse_body(call.body, _Keys)
        return service.register_keys(call.customer, request.keys)

    @app.post("/v1/me/load")
    def load(call: CustomerCall = Depends(customer)) -> JSONResponse:
        request = parse_body(call.body, _Load)
        amount = parse_amount(request.amount)
        key = parse_idempotency_key(request.idempotency_key)
        return _respond(service.load(call.customer, amount, key, request.to))

    @app.post("/v1/me/unload")
    def unload(call: CustomerCall = Depends(customer)) -> JSONResponse:
        request = parse_body(call.body, _Unload)
        amount = None if request.amount is None else parse_amount(request.amount)
        key = parse_idempotency_key(request.idempotency_key)
        return _respond(service.unload(call.customer, key, request.tx, amount))

    @app.post("/v1/me/pay")
    def pay(call: CustomerCall = Depends(customer)) -> JSONResponse:
        request = parse_body(call.body, _Pay)
        amount = parse_amount(request.amount)
        key = parse_idempotency_key(request.idempotency_key)
        return _respond(service.pay(call.customer, request.to, amount, key))

    return app


# -- the process -------------------------------------------------------------------------------


def run_operator(path: Path, log_level: str = "info") -> int:
    """Run the operator of a directory (or `operator.toml`) until SIGINT or SIGTERM.

    Returns:
        The process exit code: 0 after a clean stop, 2 for a configuration error, 1 if the
        node never answered.
    """
    configure_logging(log_level)
    try:
        config = load_config(path)
        service = open_service(config)
    except OperatorConfigError as exc:
        log.error("cannot start the operator: %s", exc)
        return 2
    try:
        service.start()
    except UpstreamError as exc:
        log.error("cannot start the operator: %s", exc.message)
        service.stop()
        return 1
    try:
        serve(create_app(service, start=False), config.api_host, config.api_port)
    finally:
        service.stop()
    log.info("operator %r stopped cleanly", config.name)
    return 0
