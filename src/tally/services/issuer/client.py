"""The issuer API's wire models and a typed client for operators, admins and auditors.

The JSON documents the issuer serves are defined here once, as frozen dataclasses with
`to_json` (used by the service) and `from_json` (used by this client): amounts travel as
decimal strings, as on the node's API, because JSON numbers lose precision past 2^53;
keys, ids and hashes as lowercase hex.

    with IssuerClient(url, key=operator_key) as issuer:
        issuer.request_issuance(100_000, "float-top-up-0001")
        issuer.account().frozen

Every refusal raises `tally.services.common.client.ServiceCallError` with the service's
`status`, `code`, `message` and `detail`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from tally.crypto.schnorr import PrivateKey
from tally.services.common.client import DEFAULT_TIMEOUT, ServiceCallError, ServiceClient

__all__ = [
    "IssuerClient",
    "ServiceCallError",
    "Health",
    "OperatorAccount",
    "ReserveDeposit",
    "Issuance",
    "Redemption",
    "CertificateEntry",
    "CertificateView",
    "LedgerSupply",
    "ReserveTotals",
    "Audit",
]

JsonDict = dict[str, Any]  # Any: a JSON document


def _amount(value: Any) -> int:  # Any: a JSON value
    return int(str(value))


def _optional_int(value: Any) -> int | None:  # Any: a JSON value
    return None if value is None else int(value)


def _optional_str(value: Any) -> str | None:  # Any: a JSON value
    return None if value is None else str(value)


@dataclass(frozen=True)
class Health:
    """`GET /v1/health`: the service is up, and which asset it issues."""

    ok: bool
    asset: str
    name: str
    issuer: str
    """The issuer's key (hex), registered for `asset` on the ledger."""

    def to_json(self) -> JsonDict:
        """The JSON document."""
        return {"ok": self.ok, "asset": self.asset, "name": self.name, "issuer": self.issuer}

    @classmethod
    def from_json(cls, document: JsonDict) -> Self:
        """Read the JSON document."""
        return cls(
            ok=bool(document["ok"]),
            asset=str(document["asset"]),
            name=str(document.get("name", "")),
            issuer=str(document.get("issuer", "")),
        )


@dataclass(frozen=True)
class OperatorAccount:
    """An operator and its reserve account (`GET /v1/account`, admin listings, audit)."""

    id: int
    name: str
    key: str
    """The operator's signing key (hex): signed requests must be signed by it."""
    float_key: str
    """The key issued coins are locked to (hex)."""
    available: int
    """Reserve that may be frozen for new issuance."""
    frozen: int
    """Reserve frozen behind this operator's coins outstanding (issued minus redeemed)."""
    issued: int
    """Sum of committed issuances."""
    redeemed: int
    """Sum of released redemptions."""
    pending: int
    """Sum of issuances frozen whose ledger outcome is not known yet."""
    created_ms: int

    def to_json(self) -> JsonDict:
        """The JSON document."""
        return {
            "id": self.id,
            "name": self.name,
            "key": self.key,
            "float_key": self.float_key,
            "available": str(self.available),
            "frozen": str(self.frozen),
            "issued": str(self.issued),
            "redeemed": str(self.redeemed),
            "pending": str(self.pending),
            "created_ms": self.created_ms,
        }

    @classmethod
    def from_json(cls, document: JsonDict) -> Self:
        """Read the JSON document."""
        return cls(
            id=int(document["id"]),
            name=str(document["name"]),
            key=str(document["key"]),
            float_key=str(document["float_key"]),
            available=_amount(document["available"]),
            frozen=_amount(document["frozen"]),
            issued=_amount(document["issued"]),
            redeemed=_amount(document["redeemed"]),
            pending=_amount(document["pending"]),
            created_ms=int(document["created_ms"]),
        )


@dataclass(frozen=True)
class ReserveDeposit:
    """`POST /v1/admin/operators/{id}/reserves`: a credit, and the account after it."""

    id: int
    operator_id: int
    idempotency_key: str
    amount: int
    created_ms: int
    account: OperatorAccount
    """The operator's account now (a replay shows the current account, not the first one)."""

    def to_json(self) -> JsonDict:
        """The JSON document."""
        return {
            "id": self.id,
            "operator_id": self.operator_id,
            "idempotency_key": self.idempotency_key,
            "amount": str(self.amount),
            "created_ms": self.created_ms,
            "account": self.account.to_json(),
        }

    @classmethod
    def from_json(cls, document: JsonDict) -> Self:
        """Read the JSON document."""
        return cls(
            id=int(document["id"]),
            operator_id=int(document["operator_id"]),
            idempotency_key=str(document["idempotency_key"]),
            amount=_amount(document["amount"]),
            created_ms=int(document["created_ms"]),
            account=OperatorAccount.from_json(document["account"]),
        )


@dataclass(frozen=True)
class Issuance:
    """`POST /v1/issuance`, `GET /v1/issuances/{id}`: one issuance and its fate."""

    id: int
    """The issuance's number: the certificate's `sequence` and the `Issue` nonce."""
    operator_id: int
    idempotency_key: str
    amount: int
    float_key: str
    """The key the coin is locked to."""
    status: str
    """`pending`, `committed` or `failed`."""
    txid: str | None
    coin_id: str | None
    """The one coin the issuance creates (output 0)."""
    height: int | None
    """The block that committed it."""
    valid_until: int | None
    reserve_ref: str | None
    """The freeze certificate's hash, cited by the `Issue`."""
    certificate: str | None
    """The signed freeze certificate's canonical bytes (hex)."""
    error_code: str | None
    """Why the ledger refused it, for a failed issuance."""
    error_message: str | None
    created_ms: int
    updated_ms: int

    def to_json(self) -> JsonDict:
        """The JSON document."""
        return {
            "id": self.id,
            "operator_id": self.operator_id,
            "idempotency_key": self.idempotency_key,
            "amount": str(self.amount),
            "float_key": self.float_key,
            "status": self.status,
            "txid": self.txid,
            "coin_id": self.coin_id,
            "height": self.height,
            "valid_until": self.valid_until,
            "reserve_ref": self.reserve_ref,
            "certificate": self.certificate,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
        }

    @classmethod
    def from_json(cls, document: JsonDict) -> Self:
        """Read the JSON document."""
        return cls(
            id=int(document["id"]),
            operator_id=int(document["operator_id"]),
            idempotency_key=str(document["idempotency_key"]),
            amount=_amount(document["amount"]),
            float_key=str(document["float_key"]),
            status=str(document["status"]),
            txid=_optional_str(document.get("txid")),
            coin_id=_optional_str(document.get("coin_id")),
            height=_optional_int(document.get("height")),
            valid_until=_optional_int(document.get("valid_until")),
            reserve_ref=_optional_str(document.get("reserve_ref")),
            certificate=_optional_str(document.get("certificate")),
            error_code=_optional_str(document.get("error_code")),
            error_message=_optional_str(document.get("error_message")),
            created_ms=int(document["created_ms"]),
            updated_ms=int(document["updated_ms"]),
        )


@dataclass(frozen=True)
class Redemption:
    """`POST /v1/redemptions`: a committed `Redeem` whose amount went back to available."""

    txid: str
    operator_id: int
    amount: int
    height: int
    source: str
    """Which path released it first: `api` or `follower`."""
    released_ms: int

    def to_json(self) -> JsonDict:
        """The JSON document."""
        return {
            "txid": self.txid,
            "operator_id": self.operator_id,
            "amount": str(self.amount),
            "height": self.height,
            "source": self.source,
            "released_ms": self.released_ms,
        }

    @classmethod
    def from_json(cls, document: JsonDict) -> Self:
        """Read the JSON document."""
        return cls(
            txid=str(document["txid"]),
            operator_id=int(document["operator_id"]),
            amount=_amount(document["amount"]),
            height=int(document["height"]),
            source=str(document["source"]),
            released_ms=int(document["released_ms"]),
        )


@dataclass(frozen=True)
class CertificateEntry:
    """One freeze certificate in the audit: its hash and what it backs."""

    hash: str
    """The certificate's hash, the `reserve_ref` of the `Issue`."""
    issuance_id: int
    operator_id: int
    amount: int
    status: str
    txid: str | None
    height: int | None

    def to_json(self) -> JsonDict:
        """The JSON document."""
        return {
            "hash": self.hash,
            "issuance_id": self.issuance_id,
            "operator_id": self.operator_id,
            "amount": str(self.amount),
            "status": self.status,
            "txid": self.txid,
            "height": self.height,
        }

    @classmethod
    def from_json(cls, document: JsonDict) -> Self:
        """Read the JSON document."""
        return cls(
            hash=str(document["hash"]),
            issuance_id=int(document["issuance_id"]),
            operator_id=int(document["operator_id"]),
            amount=_amount(document["amount"]),
            status=str(document["status"]),
            txid=_optional_str(document.get("txid")),
            height=_optional_int(document.get("height")),
        )


@dataclass(frozen=True)
class CertificateView:
    """`GET /v1/certificates/{hash}`: a signed freeze certificate, decoded and as bytes."""

    hash: str
    encoded: str
    """The signed certificate's canonical bytes (hex); `decode_certificate` reads them."""
    chain_id: str
    asset: str
    operator: str
    amount: int
    sequence: int
    time_ms: int
    issuer: str
    signature: str
    issuance_id: int
    status: str
    txid: str | None
    height: int | None

    def to_json(self) -> JsonDict:
        """The JSON document."""
        return {
            "hash": self.hash,
            "encoded": self.encoded,
            "certificate": {
                "chain_id": self.chain_id,
                "asset": self.asset,
                "operator": self.operator,
                "amount": str(self.amount),
                "sequence": self.sequence,
                "time_ms": self.time_ms,
            },
            "issuer": self.issuer,
            "signature": self.signature,
            "issuance_id": self.issuance_id,
            "status": self.status,
            "txid": self.txid,
            "height": self.height,
        }

    @classmethod
    def from_json(cls, document: JsonDict) -> Self:
        """Read the JSON document."""
        body = document["certificate"]
        return cls(
            hash=str(document["hash"]),
            encoded=str(document["encoded"]),
            chain_id=str(body["chain_id"]),
            asset=str(body["asset"]),
            operator=str(body["operator"]),
            amount=_amount(body["amount"]),
            sequence=int(body["sequence"]),
            time_ms=int(body["time_ms"]),
            issuer=str(document["issuer"]),
            signature=str(document["signature"]),
            issuance_id=int(document["issuance_id"]),
            status=str(document["status"]),
            txid=_optional_str(document.get("txid")),
            height=_optional_int(document.get("height")),
        )


@dataclass(frozen=True)
class LedgerSupply:
    """The asset's supply as the ledger node reports it."""

    issued: int
    redeemed: int
    outstanding: int

    def to_json(self) -> JsonDict:
        """The JSON document."""
        return {
            "issued": str(self.issued),
            "redeemed": str(self.redeemed),
            "outstanding": str(self.outstanding),
        }

    @classmethod
    def from_json(cls, document: JsonDict) -> Self:
        """Read the JSON document."""
        return cls(
            issued=_amount(document["issued"]),
            redeemed=_amount(document["redeemed"]),
            outstanding=_amount(document["outstanding"]),
        )


@dataclass(frozen=True)
class ReserveTotals:
    """The issuer's books summed over every operator."""

    available: int
    frozen: int
    issued: int
    redeemed: int
    pending: int

    def to_json(self) -> JsonDict:
        """The JSON document."""
        return {
            "available": str(self.available),
            "frozen": str(self.frozen),
            "issued": str(self.issued),
            "redeemed": str(self.redeemed),
            "pending": str(self.pending),
        }

    @classmethod
    def from_json(cls, document: JsonDict) -> Self:
        """Read the JSON document."""
        return cls(
            available=_amount(document["available"]),
            frozen=_amount(document["frozen"]),
            issued=_amount(document["issued"]),
            redeemed=_amount(document["redeemed"]),
            pending=_amount(document["pending"]),
        )


@dataclass(frozen=True)
class Audit:
    """`GET /v1/audit`: the ledger's supply beside the issuer's books, and whether they agree.

    `balanced` is `ledger.outstanding == reserves.frozen`. It is briefly false while an
    issuance is pending (frozen, not yet on the ledger) or a committed redemption has not
    been released yet (off the ledger, still frozen); `reserves.pending` shows the first.
    """

    asset: str
    issuer: str
    chain_id: str
    ledger: LedgerSupply
    reserves: ReserveTotals
    operators: tuple[OperatorAccount, ...]
    certificates: tuple[CertificateEntry, ...]
    """Every freeze certificate of a committed or pending issuance, by issuance id."""
    follower_height: int
    """The last block the issuer has scanned for redemptions."""
    balanced: bool
    time_ms: int

    def to_json(self) -> JsonDict:
        """The JSON document."""
        return {
            "asset": self.asset,
            "issuer": self.issuer,
            "chain_id": self.chain_id,
            "ledger": self.ledger.to_json(),
            "reserves": self.reserves.to_json(),
            "operators": [operator.to_json() for operator in self.operators],
            "certificates": [entry.to_json() for entry in self.certificates],
            "follower_height": self.follower_height,
            "balanced": self.balanced,
            "time_ms": self.time_ms,
        }

    @classmethod
    def from_json(cls, document: JsonDict) -> Self:
        """Read the JSON document."""
        return cls(
            asset=str(document["asset"]),
            issuer=str(document["issuer"]),
            chain_id=str(document["chain_id"]),
            ledger=LedgerSupply.from_json(document["ledger"]),
            reserves=ReserveTotals.from_json(document["reserves"]),
            operators=tuple(OperatorAccount.from_json(o) for o in document["operators"]),
            certificates=tuple(CertificateEntry.from_json(c) for c in document["certificates"]),
            follower_height=int(document["follower_height"]),
            balanced=bool(document["balanced"]),
            time_ms=int(document["time_ms"]),
        )


def _hex(value: bytes | str) -> str:
    return value.hex() if isinstance(value, bytes | bytearray) else value


class IssuerClient:
    """A client of one issuer service.

    Args:
        base_url: The issuer's API, such as `http://127.0.0.1:7600`.
        key: An operator's signing key; operator calls are signed with it.
        admin_token: The admin bearer token, for the `/v1/admin/...` calls.
        timeout: Seconds a call may take (an issuance waits for the ledger's commit).
    """

    def __init__(
        self,
        base_url: str,
        key: PrivateKey | None = None,
        admin_token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._service = ServiceClient(base_url, key=key, token=admin_token, timeout=timeout)
        self.base_url = self._service.base_url

    def close(self) -> None:
        """Release the connections."""
        self._service.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- public ------------------------------------------------------------------------------

    def health(self) -> Health:
        """Whether the service is up, and its asset."""
        return Health.from_json(self._service.get("/v1/health"))

    def audit(self) -> Audit:
        """The ledger's supply beside the issuer's reserves (public)."""
        return Audit.from_json(self._service.get("/v1/audit"))

    def certificate(self, certificate_hash: bytes | str) -> CertificateView:
        """A signed freeze certificate by its hash (a coin's issuance `reserve_ref`)."""
        return CertificateView.from_json(
            self._service.get(f"/v1/certificates/{_hex(certificate_hash)}")
        )

    # -- admin -------------------------------------------------------------------------------

    def register_operator(
        self, name: str, key: bytes | str, float_key: bytes | str
    ) -> OperatorAccount:
        """Register an operator by its signing key and float key (admin)."""
        document = self._service.post(
            "/v1/admin/operators",
            {"name": name, "key": _hex(key), "float_key": _hex(float_key)},
        )
        return OperatorAccount.from_json(document)

    def operators(self) -> list[OperatorAccount]:
        """Every operator with its account (admin)."""
        document = self._service.get("/v1/admin/operators")
        return [OperatorAccount.from_json(item) for item in document["operators"]]

    def operator(self, operator_id: int) -> OperatorAccount:
        """One operator with its account (admin)."""
        return OperatorAccount.from_json(self._service.get(f"/v1/admin/operators/{operator_id}"))

    def fund_reserve(self, operator_id: int, amount: int, idempotency_key: str) -> ReserveDeposit:
        """Credit an operator's reserve account, once per idempotency key (admin)."""
        document = self._service.post(
            f"/v1/admin/operators/{operator_id}/reserves",
            {"amount": amount, "idempotency_key": idempotency_key},
        )
        return ReserveDeposit.from_json(document)

    # -- operator ----------------------------------------------------------------------------

    def account(self) -> OperatorAccount:
        """The calling operator's own account."""
        return OperatorAccount.from_json(self._service.get("/v1/account"))

    def request_issuance(self, amount: int, idempotency_key: str) -> Issuance:
        """Freeze `amount` of reserve and issue it to the float key, once per key.

        Returns:
            The issuance, `committed` once the ledger holds the coin, or `pending` when the
            node's answer is not known yet (repeat the call with the same key to learn it).

        Raises:
            ServiceCallError: `funds.insufficient` (422), `idempotency.conflict` (409),
                `issuance.failed` (502, the ledger refused it and the reserve is back), ...
        """
        document = self._service.post(
            "/v1/issuance", {"amount": amount, "idempotency_key": idempotency_key}
        )
        return Issuance.from_json(document)

    def issuances(self) -> list[Issuance]:
        """The calling operator's issuances."""
        document = self._service.get("/v1/issuances")
        return [Issuance.from_json(item) for item in document["issuances"]]

    def issuance(self, issuance_id: int) -> Issuance:
        """One of the calling operator's issuances."""
        return Issuance.from_json(self._service.get(f"/v1/issuances/{issuance_id}"))

    def redeem(self, txid: bytes | str) -> Redemption:
        """Ask the issuer to release the reserve of a committed `Redeem` (once per txid)."""
        return Redemption.from_json(self._service.post("/v1/redemptions", {"txid": _hex(txid)}))
