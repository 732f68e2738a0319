"""The issuer's HTTP API (FastAPI) and its process: thin routes over `IssuerService`.

Who may call what:
    public      GET /v1/health, GET /v1/audit, GET /v1/certificates/{hash}
    admin       /v1/admin/...: `Authorization: Bearer <admin token>` (401 without it)
    operators   /v1/account, /v1/issuance(s), /v1/redemptions: requests signed with a
                registered operator's key (`X-Tally-Key`, `X-Tally-Time`,
                `X-Tally-Signature`); 401 unsigned or forged, 403 for a key that is no
                operator's or for another operator's records.

Credentials are checked before the body is read, and bodies are parsed here
(`tally.services.common.requests`, not FastAPI's validation), so that every refusal carries
our own code: 400 `request.invalid` for malformed JSON or fields, 400 `amount.out_of_range`
for an amount outside 1 … 2^63-1. Amounts are taken as JSON integers or decimal strings and
answered as decimal strings (`tally.services.common.amounts`). Keys, ids and hashes are
lowercase hex. Every refusal is `{"code", "message", "detail"}`.

Endpoints (the answers are the wire models of `tally.services.issuer.client`):

    GET  /v1/health -> {"ok": true, "asset", "name", "issuer"}
    POST /v1/admin/operators {"name", "key", "float_key"} -> 201 Account
         409 issuer.operator_exists
    GET  /v1/admin/operators -> {"operators": [Account, ...]}
    GET  /v1/admin/operators/{id} -> Account; 404 service.not_found
    POST /v1/admin/operators/{id}/reserves {"amount", "idempotency_key"}
         -> {"id", "operator_id", "idempotency_key", "amount", "created_ms", "account": Account}
         the same answer for a repeated key; 409 idempotency.conflict for another amount
    GET  /v1/account -> Account (the caller's own)
    POST /v1/issuance {"amount", "idempotency_key"} -> 200 Issuance (committed),
         202 Issuance (pending: the node's answer is unknown; repeat the call to learn it);
         422 funds.insufficient, 409 idempotency.conflict, 502 issuance.failed (the ledger
         refused it, the reserve is back; detail node_code), 502 service.upstream
    GET  /v1/issuances -> {"issuances": [Issuance, ...]};  GET /v1/issuances/{id} -> Issuance
    POST /v1/redemptions {"txid"} -> {"txid", "operator_id", "amount", "height",
         "source": "api"|"follower", "released_ms"}; 403 auth.forbidden (another account),
         404 service.not_found, 409 redemption.not_committed, 422 redemption.invalid
    GET  /v1/audit -> {"asset", "issuer", "chain_id",
         "ledger": {"issued", "redeemed", "outstanding"},            (the node's /v1/supply)
         "reserves": {"available", "frozen", "issued", "redeemed", "pending"},  (the books)
         "operators": [Account, ...],
         "certificates": [{"hash", "issuance_id", "operator_id", "amount", "status",
                           "txid", "height"}, ...],
         "follower_height", "balanced": ledger.outstanding == reserves.frozen, "time_ms"}
    GET  /v1/certificates/{hash} -> {"hash", "encoded", "certificate": {"chain_id",
         "asset", "operator", "amount", "sequence", "time_ms"}, "issuer", "signature",
         "issuance_id", "status", "txid", "height"}

    Account  = {"id", "name", "key", "float_key", "available", "frozen", "issued",
                "redeemed", "pending", "created_ms"}
    Issuance = {"id", "operator_id", "idempotency_key", "amount", "float_key", "status",
                "txid", "coin_id", "height", "valid_until", "reserve_ref", "certificate",
                "error_code", "error_message", "created_ms", "updated_ms"}
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine.url import make_url

from tally.client.node_client import NodeClient
from tally.model.types import PublicKey
from tally.node.keyfile import KeyFileError, read_key
from tally.services.common.amounts import parse_amount
from tally.services.common.auth import bearer_token, signed_key, token_matches
from tally.services.common.db import make_engine
from tally.services.common.errors import (
    AuthInvalidError,
    AuthMissingError,
    BadRequestError,
    NotFoundError,
    install_error_handlers,
)
from tally.services.common.process import configure_logging, serve
from tally.services.common.requests import (
    RequestBody,
    parse_body,
    parse_hex32,
    parse_id,
    parse_idempotency_key,
    parse_public_key,
)
from tally.services.issuer import store
from tally.services.issuer.certificate import decode_certificate
from tally.services.issuer.client import (
    Audit,
    CertificateBody,
    CertificateEntry,
    CertificateView,
    Health,
    Issuance,
    LedgerSupply,
    OperatorAccount,
    Redemption,
    ReserveDeposit,
    ReserveTotals,
)
from tally.services.issuer.config import IssuerConfigError, load_issuer_config
from tally.services.issuer.service import (
    AuditFigures,
    Follower,
    IssuanceFailedError,
    IssuerService,
)
from tally.services.issuer.store import (
    COMMITTED,
    FAILED,
    IssuanceRow,
    OperatorRow,
    Totals,
)

__all__ = [
    "create_app",
    "run_issuer",
    "operator_account",
    "issuance_view",
    "audit_view",
]

log = logging.getLogger(__name__)

_NODE_TIMEOUT = 15.0
_MAX_NAME = 100


# -- request bodies --------------------------------------------------------------------------


class _OperatorRequest(RequestBody, frozen=True):
    name: str
    key: str
    float_key: str


class _AmountRequest(RequestBody, frozen=True):
    amount: object  # an integer or a decimal string: `parse_amount` reads it
    idempotency_key: str


class _RedemptionRequest(RequestBody, frozen=True):
    txid: str


def _name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > _MAX_NAME or not name.isprintable():
        raise BadRequestError(
            f"name is 1 to {_MAX_NAME} printable characters, got {value[:40]!r}", field="name"
        )
    return name


# -- answers ---------------------------------------------------------------------------------


def operator_account(operator: OperatorRow, totals: Totals) -> OperatorAccount:
    """An operator's account as the API shows it."""
    return OperatorAccount.of(operator, **dataclasses.asdict(totals))


def issuance_view(row: IssuanceRow) -> Issuance:
    """An issuance as the API shows it."""
    return Issuance.of(row, certificate=None if row.certificate is None else row.certificate.hex())


def audit_view(figures: AuditFigures, asset: str, issuer: str) -> Audit:
    """The audit as the API shows it."""
    return Audit(
        asset=asset,
        issuer=issuer,
        chain_id=figures.chain_id,
        ledger=LedgerSupply(
            issued=figures.ledger_issued,
            redeemed=figures.ledger_redeemed,
            outstanding=figures.ledger_outstanding,
        ),
        reserves=ReserveTotals.of(figures.totals),
        operators=tuple(operator_account(op, totals) for op, totals in figures.operators),
        certificates=tuple(
            CertificateEntry.of(row, hash=row.reserve_ref, issuance_id=row.id)
            for row in figures.certificates
            if row.reserve_ref is not None
        ),
        follower_height=figures.follower_height,
        balanced=figures.balanced,
        time_ms=figures.time_ms,
    )


def _certificate_view(row: IssuanceRow) -> CertificateView:
    if row.certificate is None or row.reserve_ref is None:
        raise NotFoundError(f"issuance {row.id} has no certificate yet", issuance_id=row.id)
    signed = decode_certificate(row.certificate)
    body = signed.certificate
    return CertificateView.of(
        row,
        hash=row.reserve_ref,
        encoded=row.certificate.hex(),
        certificate=CertificateBody.of(body, operator=body.operator.hex()),
        issuer=signed.issuer.hex(),
        signature=signed.signature.hex(),
        issuance_id=row.id,
    )


# -- the application -------------------------------------------------------------------------


async def _raw_body(request: Request) -> bytes:
    return await request.body()


def create_app(service: IssuerService, admin_token_hash: str) -> FastAPI:
    """The FastAPI application serving `service`; admin calls need the token of this hash."""
    app = FastAPI(title="Tally issuer", version="1", docs_url="/docs", redoc_url=None)
    install_error_handlers(app)
    app.state.service = service
    asset, issuer = service.asset, service.issuer_hex

    def require_admin(request: Request) -> None:
        token = bearer_token(request)
        if token is None:
            raise AuthMissingError("admin endpoints need 'Authorization: Bearer <admin token>'")
        if not token_matches(token, admin_token_hash):
            raise AuthInvalidError("the admin token is not valid")

    def current_operator(key: PublicKey = Depends(signed_key)) -> OperatorRow:
        return service.operator_for_key(key)

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return Health(ok=True, asset=asset, name=service.config.name, issuer=issuer).to_json()

    # -- admin ---------------------------------------------------------------------------

    @app.post("/v1/admin/operators", status_code=201, dependencies=[Depends(require_admin)])
    def register_operator(body: bytes = Depends(_raw_body)) -> dict[str, Any]:
        request = parse_body(body, _OperatorRequest)
        operator = service.register_operator(
            _name(request.name),
            parse_public_key(request.key, "key").hex(),
            parse_public_key(request.float_key, "float_key").hex(),
        )
        return operator_account(operator, Totals(0, 0, 0, 0, 0)).to_json()

    @app.get("/v1/admin/operators", dependencies=[Depends(require_admin)])
    def list_operators() -> dict[str, Any]:
        operators = service.operators()
        return {"operators": [operator_account(*each).to_json() for each in operators]}

    @app.get("/v1/admin/operators/{operator_id}", dependencies=[Depends(require_admin)])
    def get_operator(operator_id: str) -> dict[str, Any]:
        return operator_account(*service.operator(parse_id(operator_id, "operator id"))).to_json()

    @app.post("/v1/admin/operators/{operator_id}/reserves", dependencies=[Depends(require_admin)])
    def fund_reserve(operator_id: str, body: bytes = Depends(_raw_body)) -> dict[str, Any]:
        number = parse_id(operator_id, "operator id")
        request = parse_body(body, _AmountRequest)
        deposit, operator, totals = service.fund_reserve(
            number, parse_amount(request.amount), parse_idempotency_key(request.idempotency_key)
        )
        return ReserveDeposit.of(deposit, account=operator_account(operator, totals)).to_json()

    # -- operators -----------------------------------------------------------------------

    @app.get("/v1/account")
    def account(operator: OperatorRow = Depends(current_operator)) -> dict[str, Any]:
        return operator_account(*service.account(operator)).to_json()

    @app.post("/v1/issuance")
    def request_issuance(
        operator: OperatorRow = Depends(current_operator), body: bytes = Depends(_raw_body)
    ) -> JSONResponse:
        request = parse_body(body, _AmountRequest)
        row = service.issue(
            operator, parse_amount(request.amount), parse_idempotency_key(request.idempotency_key)
        )
        if row.status == FAILED:
            raise IssuanceFailedError(
                f"the ledger refused issuance {row.id} ({row.error_code}); "
                "the frozen reserve was released",
                issuance_id=row.id,
                node_code=row.error_code,
                node_message=row.error_message,
            )
        return JSONResponse(
            status_code=200 if row.status == COMMITTED else 202,
            content=issuance_view(row).to_json(),
        )

    @app.get("/v1/issuances")
    def list_issuances(operator: OperatorRow = Depends(current_operator)) -> dict[str, Any]:
        rows = service.issuances_of(operator)
        return {"issuances": [issuance_view(row).to_json() for row in rows]}

    @app.get("/v1/issuances/{issuance_id}")
    def get_issuance(
        issuance_id: str, operator: OperatorRow = Depends(current_operator)
    ) -> dict[str, Any]:
        row = service.issuance_for(operator, parse_id(issuance_id, "issuance id"))
        return issuance_view(row).to_json()

    @app.post("/v1/redemptions")
    def redeem(
        operator: OperatorRow = Depends(current_operator), body: bytes = Depends(_raw_body)
    ) -> dict[str, Any]:
        request = parse_body(body, _RedemptionRequest)
        row = service.redeem(operator, parse_hex32(request.txid, "txid"))
        return Redemption.of(row).to_json()

    # -- public --------------------------------------------------------------------------

    @app.get("/v1/audit")
    def audit() -> dict[str, Any]:
        return audit_view(service.audit(), asset, issuer).to_json()

    @app.get("/v1/certificates/{reference}")
    def certificate(reference: str) -> dict[str, Any]:
        row = service.certificate(parse_hex32(reference, "certificate hash"))
        return _certificate_view(row).to_json()

    return app


# -- the process -----------------------------------------------------------------------------


def run_issuer(path: Path, log_level: str = "info") -> int:
    """Run the issuer of a directory (or `issuer.toml`) until SIGINT or SIGTERM.

    Returns:
        The process exit code: 0 after a clean stop, 2 for a configuration error.
    """
    configure_logging(log_level)
    try:
        config = load_issuer_config(path)
        key = read_key(config.key_file)
    except (IssuerConfigError, KeyFileError) as exc:
        log.error("cannot start the issuer: %s", exc)
        return 2
    engine = make_engine(config.database_url)
    node = NodeClient(config.node_url, timeout=_NODE_TIMEOUT)
    follower: Follower | None = None
    try:
        store.create_tables(engine)
        service = IssuerService(config, engine, key, node)
        _recover(service)
        follower = Follower(service, config.follow_interval_s)
        follower.start()
        log.info(
            "issuer %r of %s (key %s) serving on %s; node %s; database %s",
            config.name,
            config.asset,
            service.issuer_hex,
            config.url,
            config.node_url,
            make_url(config.database_url).render_as_string(hide_password=True),
        )
        serve(create_app(service, config.admin_token_hash), config.api_host, config.api_port)
    finally:
        if follower is not None:
            follower.stop()
        node.close()
        engine.dispose()
    log.info("issuer %r stopped cleanly", config.name)
    return 0


def _recover(service: IssuerService) -> None:
    """Resubmit every pending issuance once, so that a restart finishes what a crash left."""
    try:
        finished = service.resubmit_pending()
    except Exception as exc:  # the process boundary: the follower retries later
        log.warning("could not resubmit pending issuances at start: %s", exc)
        return
    if finished:
        outcome = ", ".join(f"{row.id}:{row.status}" for row in finished)
        log.info("resubmitted %d pending issuances at start: %s", len(finished), outcome)
