"""The issuer API's wire models and a typed client for operators, admins and auditors.

The JSON documents the issuer serves are defined here once, as wire models
(`tally.services.common.wire`) whose `to_json` the service uses and whose `from_json` this
client uses: amounts travel as decimal strings, as on the node's API, because JSON numbers
lose precision past 2^53; keys, ids and hashes as lowercase hex.

    with IssuerClient(url, key=operator_key) as issuer:
        issuer.request_issuance(100_000, "float-top-up-0001")
        issuer.account().frozen

Every refusal raises `tally.services.common.client.ServiceCallError` with the service's
`status`, `code`, `message` and `detail`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tally.crypto.schnorr import PrivateKey
from tally.services.common.amounts import amount_to_json
from tally.services.common.client import (
    DEFAULT_TIMEOUT,
    Closing,
    ServiceCallError,
    ServiceClient,
    to_hex,
)
from tally.services.common.wire import WireAmount, WireModel

__all__ = [
    "IssuerClient",
    "ServiceCallError",
    "Health",
    "OperatorAccount",
    "ReserveDeposit",
    "Issuance",
    "Redemption",
    "CertificateEntry",
    "CertificateBody",
    "CertificateView",
    "LedgerSupply",
    "ReserveTotals",
    "Audit",
]


@dataclass(frozen=True)
class Health(WireModel):
    """`GET /v1/health`: the service is up, and which asset it issues."""

    ok: bool
    asset: str
    name: str
    issuer: str
    """The issuer's key (hex), registered for `asset` on the ledger."""


@dataclass(frozen=True)
class OperatorAccount(WireModel):
    """An operator and its reserve account (`GET /v1/account`, admin listings, audit)."""

    id: int
    name: str
    key: str
    """The operator's signing key (hex): signed requests must be signed by it."""
    float_key: str
    """The key issued coins are locked to (hex)."""
    available: WireAmount
    """Reserve that may be frozen for new issuance."""
    frozen: WireAmount
    """Reserve frozen behind this operator's coins outstanding (issued minus redeemed)."""
    issued: WireAmount
    """Sum of committed issuances."""
    redeemed: WireAmount
    """Sum of released redemptions."""
    pending: WireAmount
    """Sum of issuances frozen whose ledger outcome is not known yet."""
    created_ms: int


@dataclass(frozen=True)
class ReserveDeposit(WireModel):
    """`POST /v1/admin/operators/{id}/reserves`: a credit, and the account after it."""

    id: int
    operator_id: int
    idempotency_key: str
    amount: WireAmount
    created_ms: int
    account: OperatorAccount
    """The operator's account now (a replay shows the current account, not the first one)."""


@dataclass(frozen=True)
class Issuance(WireModel):
    """`POST /v1/issuance`, `GET /v1/issuances/{id}`: one issuance and its fate."""

    id: int
    """The issuance's number: the certificate's `sequence` and the `Issue` nonce."""
    operator_id: int
    idempotency_key: str
    amount: WireAmount
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


@dataclass(frozen=True)
class Redemption(WireModel):
    """`POST /v1/redemptions`: a committed `Redeem` whose amount went back to available."""

    txid: str
    operator_id: int
    amount: WireAmount
    height: int
    source: str
    """Which path released it first: `api` or `follower`."""
    released_ms: int


@dataclass(frozen=True)
class CertificateEntry(WireModel):
    """One freeze certificate in the audit: its hash and what it backs."""

    hash: str
    """The certificate's hash, the `reserve_ref` of the `Issue`."""
    issuance_id: int
    operator_id: int
    amount: WireAmount
    status: str
    txid: str | None
    height: int | None


@dataclass(frozen=True)
class CertificateBody(WireModel):
    """What a freeze certificate states (`tally.services.issuer.certificate`), decoded."""

    chain_id: str
    asset: str
    operator: str
    """The operator's signing key (hex), whose reserve is frozen."""
    amount: WireAmount
    sequence: int
    """The issuance's id."""
    time_ms: int


@dataclass(frozen=True)
class CertificateView(WireModel):
    """`GET /v1/certificates/{hash}`: a signed freeze certificate, decoded and as bytes."""

    hash: str
    encoded: str
    """The signed certificate's canonical bytes (hex); `decode_certificate` reads them."""
    certificate: CertificateBody
    issuer: str
    signature: str
    issuance_id: int
    status: str
    txid: str | None
    height: int | None


@dataclass(frozen=True)
class LedgerSupply(WireModel):
    """The asset's supply as the ledger node reports it."""

    issued: WireAmount
    redeemed: WireAmount
    outstanding: WireAmount


@dataclass(frozen=True)
class ReserveTotals(WireModel):
    """The issuer's books summed over every operator."""

    available: WireAmount
    frozen: WireAmount
    issued: WireAmount
    redeemed: WireAmount
    pending: WireAmount


@dataclass(frozen=True)
class Audit(WireModel):
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


class IssuerClient(Closing):
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
            self._service.get(f"/v1/certificates/{to_hex(certificate_hash)}")
        )

    # -- admin -------------------------------------------------------------------------------

    def register_operator(
        self, name: str, key: bytes | str, float_key: bytes | str
    ) -> OperatorAccount:
        """Register an operator by its signing key and float key (admin)."""
        document = self._service.post(
            "/v1/admin/operators",
            {"name": name, "key": to_hex(key), "float_key": to_hex(float_key)},
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
            {"amount": amount_to_json(amount), "idempotency_key": idempotency_key},
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
            "/v1/issuance", {"amount": amount_to_json(amount), "idempotency_key": idempotency_key}
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
        return Redemption.from_json(self._service.post("/v1/redemptions", {"txid": to_hex(txid)}))
