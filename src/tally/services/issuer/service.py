"""What the issuer does: reserve accounts, issuance against frozen reserve, release on redemption.

    issuance   available -= X, frozen += X, certificate signed, Issue built and stored,
               all in one database transaction; then the Issue goes to the node, and the
               issuance is marked committed, or failed with the freeze undone.
    redemption a committed Redeem of the asset, crediting an operator's account (its key),
               moves the coins' sum from frozen back to available, once per transaction id.

Invariant: the asset's outstanding supply on the ledger equals the sum of frozen reserves
(except while an issuance is pending or a redemption waits to be released).

Crash safety follows from the order: the freeze and the signed transaction are durable
before the node sees the transaction, and the node answers a replay with its first result,
so a pending issuance can always be resubmitted (on start, and by the follower) to learn its
fate. A transaction the node refuses can never be committed later (its record stays), so the
freeze can be undone. Both release paths (the operator's call and the block follower) share
`release`, which records each redemption under its unique transaction id.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from tally.client.builders import make_issue
from tally.client.errors import NodeError, NodeRejection
from tally.client.node_client import NodeClient
from tally.crypto.schnorr import PrivateKey
from tally.model.coin import coin_id
from tally.model.encoding import encode, tx_id
from tally.model.types import MAX_AMOUNT, Amount, AssetCode, PublicKey
from tally.services.common.amounts import amount_from_json, amount_to_json
from tally.services.common.clock import now_ms
from tally.services.common.errors import (
    ForbiddenError,
    IdempotencyConflictError,
    InsufficientFundsError,
    NotFoundError,
    ServiceRejection,
    upstream_errors,
)
from tally.services.issuer import store
from tally.services.issuer.certificate import (
    FreezeCertificate,
    certificate_hash,
    encode_certificate,
    sign_certificate,
)
from tally.services.issuer.config import IssuerConfig
from tally.services.issuer.store import (
    COMMITTED,
    FAILED,
    PENDING,
    DepositRow,
    IssuanceRow,
    OperatorRow,
    RedemptionRow,
    Totals,
)

__all__ = [
    "IssuerError",
    "OperatorExistsError",
    "ReserveOverflowError",
    "IssuanceFailedError",
    "RedemptionNotCommittedError",
    "RedemptionInvalidError",
    "CommittedRedeem",
    "AuditFigures",
    "IssuerService",
    "Follower",
]

log = logging.getLogger(__name__)

API_SOURCE: Final = "api"
FOLLOWER_SOURCE: Final = "follower"

_TRANSIENT_CODES: Final = frozenset({"mempool.full", "node.stopping"})
"""Node refusals that say nothing about the transaction: try again later."""


class IssuerError(ServiceRejection):
    """The issuer refuses a request (a grouping class)."""


class OperatorExistsError(IssuerError):
    """An operator with this signing key is registered already."""

    code = "issuer.operator_exists"
    http_status = 409


class ReserveOverflowError(IssuerError):
    """A reserve credit would take the reserves past 2^63-1 minor units."""

    code = "issuer.reserve_overflow"
    http_status = 422


class IssuanceFailedError(IssuerError):
    """The ledger refused the issuance; the frozen reserve was released again."""

    code = "issuance.failed"
    http_status = 502


class RedemptionNotCommittedError(IssuerError):
    """The redemption is not committed on the ledger (pending, or rejected by it)."""

    code = "redemption.not_committed"
    http_status = 409


class RedemptionInvalidError(IssuerError):
    """The transaction is not a `Redeem` of this issuer's asset."""

    code = "redemption.invalid"
    http_status = 422


@dataclass(frozen=True)
class CommittedRedeem:
    """A `Redeem` the ledger committed and accepted, as read from the node."""

    txid: str
    asset: str
    account: str
    """The account it credits (hex): an operator's signing key, for this issuer."""
    inputs: tuple[str, ...]
    """The coins it destroyed (hex ids)."""
    height: int


@dataclass(frozen=True)
class AuditFigures:
    """What `GET /v1/audit` shows, before it becomes JSON."""

    chain_id: str
    ledger_issued: int
    ledger_redeemed: int
    ledger_outstanding: int
    totals: Totals
    operators: list[tuple[OperatorRow, Totals]]
    certificates: list[IssuanceRow]
    follower_height: int
    time_ms: int

    @property
    def balanced(self) -> bool:
        """Whether the ledger's outstanding supply equals the frozen reserves."""
        return self.ledger_outstanding == self.totals.frozen


class IssuerService:
    """The issuer's logic over its database, its key and a ledger node.

    Args:
        config: The service's configuration.
        engine: The service database (tables created).
        key: The issuer key registered for `config.asset`.
        node: A client of the ledger node.
    """

    def __init__(
        self, config: IssuerConfig, engine: Engine, key: PrivateKey, node: NodeClient
    ) -> None:
        self.config = config
        self.asset = AssetCode(config.asset)
        self.engine = engine
        self.key = key
        self.issuer_hex = key.public_key.hex()
        self.node = node
        self._chain_id: str | None = None

    # -- the node ----------------------------------------------------------------------------

    def node_status(self) -> tuple[str, int]:
        """The chain id and the node's tip height.

        Raises:
            UpstreamError: the node did not answer.
        """
        with upstream_errors(f"read the status of {self.config.node_url}"):
            status = self.node.status()
        self._chain_id = str(status["chain_id"])
        return self._chain_id, int(status["height"])

    # -- operators ---------------------------------------------------------------------------

    def register_operator(self, name: str, key: str, float_key: str) -> OperatorRow:
        """Register an operator by its signing key (hex) and float key (hex).

        Raises:
            OperatorExistsError: the signing key is registered already.
        """
        try:
            with self.engine.begin() as conn:
                if store.operator_by_key(conn, key) is not None:
                    raise OperatorExistsError(
                        f"an operator with key {key} is registered already", key=key
                    )
                operator = store.insert_operator(conn, name, key, float_key)
        except IntegrityError:
            raise OperatorExistsError(
                f"an operator with key {key} is registered already", key=key
            ) from None
        log.info("registered operator %d %r key %s", operator.id, name, key)
        return operator

    def operators(self) -> list[tuple[OperatorRow, Totals]]:
        """Every operator with its sums."""
        with self.engine.connect() as conn:
            return [(op, store.operator_totals(conn, op)) for op in store.list_operators(conn)]

    def operator(self, operator_id: int) -> tuple[OperatorRow, Totals]:
        """One operator with its sums.

        Raises:
            NotFoundError: no operator has this id.
        """
        with self.engine.connect() as conn:
            operator = store.operator_by_id(conn, operator_id)
            if operator is None:
                raise NotFoundError(f"no operator {operator_id}", operator_id=operator_id)
            return operator, store.operator_totals(conn, operator)

    def operator_for_key(self, key: PublicKey) -> OperatorRow:
        """The operator whose signing key signed a request.

        Raises:
            ForbiddenError: the key is not a registered operator's.
        """
        with self.engine.connect() as conn:
            operator = store.operator_by_key(conn, key.hex())
        if operator is None:
            raise ForbiddenError(
                f"key {key.hex()} is not a registered operator of this issuer", key=key.hex()
            )
        return operator

    def fund_reserve(
        self, operator_id: int, amount: int, idempotency_key: str
    ) -> tuple[DepositRow, OperatorRow, Totals]:
        """Credit `amount` to an operator's available reserve, once per idempotency key.

        Returns:
            The deposit (the first one made under the key), the account now and its sums.

        Raises:
            NotFoundError: no operator has this id.
            IdempotencyConflictError: the key was used for another amount.
            ReserveOverflowError: the reserves would pass 2^63-1.
        """
        with self.engine.begin() as conn:
            operator = store.lock_operator(conn, operator_id)
            if operator is None:
                raise NotFoundError(f"no operator {operator_id}", operator_id=operator_id)
            deposit = store.find_deposit(conn, operator_id, idempotency_key)
            if deposit is None:
                reserves = store.totals(conn)
                if (
                    operator.available + amount > MAX_AMOUNT
                    or reserves.available + max(reserves.frozen, 0) + amount > MAX_AMOUNT
                ):
                    raise ReserveOverflowError(
                        f"crediting {amount} would take the reserves past {MAX_AMOUNT}",
                        amount=amount_to_json(amount),
                    )
                deposit = store.insert_deposit(conn, operator_id, idempotency_key, amount)
                operator = store.adjust_reserve(conn, operator_id, available=amount)
                log.info("operator %d reserve +%d (%s)", operator_id, amount, idempotency_key)
            elif deposit.amount != amount:
                raise IdempotencyConflictError(
                    f"idempotency key {idempotency_key!r} credited {deposit.amount}, not {amount}",
                    idempotency_key=idempotency_key,
                    first_amount=amount_to_json(deposit.amount),
                    amount=amount_to_json(amount),
                )
            return deposit, operator, store.operator_totals(conn, operator)

    def account(self, operator: OperatorRow) -> tuple[OperatorRow, Totals]:
        """The operator's account as it is now."""
        return self.operator(operator.id)

    # -- issuance ----------------------------------------------------------------------------

    def _same_request(self, issuance: IssuanceRow, amount: int) -> IssuanceRow:
        if issuance.amount != amount:
            raise IdempotencyConflictError(
                f"idempotency key {issuance.idempotency_key!r} was used for an issuance of "
                f"{issuance.amount}, not {amount}",
                idempotency_key=issuance.idempotency_key,
                first_amount=amount_to_json(issuance.amount),
                amount=amount_to_json(amount),
                issuance_id=issuance.id,
            )
        return issuance

    def freeze(
        self,
        operator: OperatorRow,
        amount: int,
        idempotency_key: str,
        *,
        valid_until: int | None = None,
    ) -> tuple[IssuanceRow, bool]:
        """Freeze reserve and store a signed certificate and `Issue`, without submitting it.

        One database transaction: available -= amount, frozen += amount, the certificate
        signed and the transaction built and stored as a pending issuance.

        Args:
            operator: The operator asking.
            amount: Minor units to issue.
            idempotency_key: The operator's key for this request.
            valid_until: The transaction's last height; the node's tip plus the configured
                window when None.

        Returns:
            The issuance, and whether this call created it (False: the key's first answer).

        Raises:
            IdempotencyConflictError: the key was used for another amount.
            InsufficientFundsError: the available reserve is below `amount`.
            UpstreamError: the node did not answer (nothing was frozen).
        """
        with self.engine.connect() as conn:
            existing = store.issuance_by_key(conn, operator.id, idempotency_key)
        if existing is not None:
            return self._same_request(existing, amount), False
        chain_id, tip = self.node_status()
        until = tip + self.config.valid_window if valid_until is None else valid_until
        with self.engine.begin() as conn:
            locked = store.lock_operator(conn, operator.id)
            if locked is None:
                raise ForbiddenError(f"operator {operator.id} is no longer registered")
            existing = store.issuance_by_key(conn, operator.id, idempotency_key)
            if existing is not None:
                return self._same_request(existing, amount), False
            if locked.available < amount:
                raise InsufficientFundsError(
                    f"the available reserve is {locked.available}; issuing {amount} needs "
                    f"{amount - locked.available} more",
                    available=amount_to_json(locked.available),
                    requested=amount_to_json(amount),
                )
            row = store.insert_issuance(
                conn, operator.id, idempotency_key, amount, locked.float_key
            )
            certificate = FreezeCertificate(
                chain_id=chain_id,
                asset=self.asset,
                operator=PublicKey(bytes.fromhex(locked.key)),
                amount=Amount(amount),
                sequence=row.id,
                time_ms=now_ms(),
            )
            reference = certificate_hash(certificate)
            tx = make_issue(
                self.asset,
                self.key,
                [(bytes.fromhex(locked.float_key), amount)],
                reference,
                nonce=row.id,
                valid_until=until,
                chain_id=chain_id,
            )
            txid = tx_id(tx.body)
            row = store.set_issuance_tx(
                conn,
                row.id,
                certificate=encode_certificate(sign_certificate(certificate, self.key)),
                reserve_ref=reference.hex(),
                tx=encode(tx),
                txid=txid.hex(),
                coin_id=coin_id(txid, 0).hex(),
                valid_until=until,
            )
            store.adjust_reserve(conn, operator.id, available=-amount, frozen=amount)
        log.info(
            "issuance %d: froze %d of operator %d, Issue %s", row.id, amount, operator.id, row.txid
        )
        return row, True

    def issue(self, operator: OperatorRow, amount: int, idempotency_key: str) -> IssuanceRow:
        """Freeze, submit and finish one issuance (or answer a repeated key as the first time).

        Returns:
            The issuance: committed, failed (the freeze undone), or still pending when the
            node's answer is unknown (the follower resubmits it).

        Raises:
            IdempotencyConflictError: the key was used for another amount.
            InsufficientFundsError: the available reserve is below `amount`.
            UpstreamError: the node did not answer before anything was frozen.
        """
        issuance, _ = self.freeze(operator, amount, idempotency_key)
        if issuance.status == PENDING:
            issuance = self.submit(issuance)
        return issuance

    def submit(self, issuance: IssuanceRow) -> IssuanceRow:
        """Send a pending issuance's transaction to the node and record what it says.

        Safe to repeat: the node answers a transaction it has seen with its first result.
        """
        if issuance.status != PENDING or issuance.tx is None:
            return issuance
        try:
            result = self.node.submit(issuance.tx, wait=True)
        except NodeRejection as exc:
            if exc.status >= 500 or exc.code in _TRANSIENT_CODES:
                log.warning("issuance %d: node busy (%s); stays pending", issuance.id, exc.code)
                return self._reload(issuance.id)
            return self._fail(issuance.id, exc.code, exc.message)
        except NodeError as exc:
            log.warning(
                "issuance %d: no answer from the node (%s); stays pending", issuance.id, exc
            )
            return self._reload(issuance.id)
        if result.get("status") == "committed":
            return self._commit(issuance.id, int(result["height"]))
        receipt = result.get("receipt") or {}
        code = str(receipt.get("code") or "rejected")
        return self._fail(issuance.id, code, f"the ledger rejected the issuance: {code}")

    def _reload(self, issuance_id: int) -> IssuanceRow:
        with self.engine.connect() as conn:
            row = store.issuance_by_id(conn, issuance_id)
        if row is None:
            raise LookupError(f"issuance {issuance_id} vanished")
        return row

    @staticmethod
    def _lock_issuance(conn: Connection, issuance_id: int) -> IssuanceRow:
        """An issuance read under its operator's lock, so that its status cannot change."""
        row = store.issuance_by_id(conn, issuance_id)
        if row is None:
            raise LookupError(f"issuance {issuance_id} vanished")
        store.lock_operator(conn, row.operator_id)
        locked = store.issuance_by_id(conn, issuance_id)
        if locked is None:
            raise LookupError(f"issuance {issuance_id} vanished")
        return locked

    def _commit(self, issuance_id: int, height: int) -> IssuanceRow:
        """Mark an issuance committed (idempotent)."""
        with self.engine.begin() as conn:
            row = self._lock_issuance(conn, issuance_id)
            if row.status == COMMITTED:
                return row
            if row.status == FAILED:
                # Cannot happen while the node keeps refused transactions' records; if it
                # ever does, the books must follow the ledger: freeze the amount again.
                log.error("issuance %d was marked failed but is committed: refreezing", row.id)
                store.adjust_reserve(
                    conn, row.operator_id, available=-row.amount, frozen=row.amount
                )
            row = store.set_issuance_status(conn, issuance_id, COMMITTED, height=height)
        log.info("issuance %d committed at height %d", issuance_id, height)
        return row

    def _fail(self, issuance_id: int, code: str, message: str) -> IssuanceRow:
        """Mark a pending issuance failed and release its frozen reserve (idempotent)."""
        with self.engine.begin() as conn:
            row = self._lock_issuance(conn, issuance_id)
            if row.status != PENDING:
                return row
            store.adjust_reserve(conn, row.operator_id, available=row.amount, frozen=-row.amount)
            row = store.set_issuance_status(
                conn, issuance_id, FAILED, error_code=code, error_message=message
            )
        log.warning("issuance %d failed (%s): reserve released", issuance_id, code)
        return row

    def resubmit_pending(self, older_than_ms: int | None = None) -> list[IssuanceRow]:
        """Resubmit pending issuances (untouched for `older_than_ms`, if given).

        Returns:
            The issuances after resubmission, in id order.
        """
        before = None if older_than_ms is None else now_ms() - older_than_ms
        with self.engine.connect() as conn:
            pending = store.pending_issuances(conn, updated_before_ms=before)
        return [self.submit(row) for row in pending]

    def issuance_for(self, operator: OperatorRow, issuance_id: int) -> IssuanceRow:
        """One of the operator's own issuances.

        Raises:
            NotFoundError: no issuance has this id.
            ForbiddenError: it is another operator's.
        """
        with self.engine.connect() as conn:
            row = store.issuance_by_id(conn, issuance_id)
        if row is None:
            raise NotFoundError(f"no issuance {issuance_id}", issuance_id=issuance_id)
        if row.operator_id != operator.id:
            raise ForbiddenError(f"issuance {issuance_id} is not yours", issuance_id=issuance_id)
        return row

    def issuances_of(self, operator: OperatorRow) -> list[IssuanceRow]:
        """The operator's issuances by id."""
        with self.engine.connect() as conn:
            return store.list_issuances(conn, operator_id=operator.id)

    def certificate(self, reference: str) -> IssuanceRow:
        """The issuance whose certificate hash is `reference` (hex).

        Raises:
            NotFoundError: no certificate has this hash.
        """
        with self.engine.connect() as conn:
            found = store.issuance_by_reserve_ref(conn, reference)
        if found is None or found.certificate is None:
            raise NotFoundError(f"no freeze certificate {reference}", hash=reference)
        return found

    # -- redemption --------------------------------------------------------------------------

    def redeem(self, operator: OperatorRow, txid: str) -> RedemptionRow:
        """Release the reserve of the operator's committed `Redeem` `txid` (hex), once.

        Raises:
            ForbiddenError: the redemption credits another account than the operator's.
            NotFoundError: the node knows no such transaction.
            RedemptionNotCommittedError: it is pending, or the ledger rejected it.
            RedemptionInvalidError: it is not a `Redeem` of this issuer's asset.
            UpstreamError: the node did not answer.
        """
        with self.engine.connect() as conn:
            existing = store.find_redemption(conn, txid)
        if existing is not None:
            return self._own(existing, operator)
        with upstream_errors(f"look up transaction {txid}"):
            try:
                view = self.node.tx(txid)
            except NodeRejection as exc:
                if exc.code == "not_found":
                    raise NotFoundError(
                        f"the ledger has no transaction {txid}", txid=txid
                    ) from None
                raise
        status = view.get("status")
        if status != "committed":
            raise RedemptionNotCommittedError(
                f"transaction {txid} is {status} on the ledger, not committed",
                txid=txid,
                status=status,
                receipt=view.get("receipt"),
            )
        body = view.get("tx") or {}
        if body.get("kind") != "redeem" or body.get("asset") != self.asset:
            raise RedemptionInvalidError(
                f"transaction {txid} is a {body.get('kind')} of {body.get('asset')}, "
                f"not a redeem of {self.asset}",
                txid=txid,
                kind=body.get("kind"),
                asset=body.get("asset"),
            )
        account = str(body.get("account", ""))
        if account != operator.key:
            raise ForbiddenError(
                f"redemption {txid} credits account {account or '(empty)'}, not yours",
                txid=txid,
                account=account,
            )
        redeem = CommittedRedeem(
            txid=txid,
            asset=str(body["asset"]),
            account=account,
            inputs=tuple(str(cid) for cid in body.get("inputs", ())),
            height=int(view["height"]),
        )
        released = self.release(redeem, API_SOURCE)
        if released is None:  # the operator was removed between the two reads
            raise ForbiddenError(f"redemption {txid} credits no registered operator", txid=txid)
        return self._own(released, operator)

    @staticmethod
    def _own(redemption: RedemptionRow, operator: OperatorRow) -> RedemptionRow:
        if redemption.operator_id != operator.id:
            raise ForbiddenError(
                f"redemption {redemption.txid} was released to another operator",
                txid=redemption.txid,
            )
        return redemption

    def _redeemed_amount(self, redeem: CommittedRedeem) -> int:
        """The sum of the coins a committed `Redeem` destroyed, read from the node."""
        total = 0
        for cid in redeem.inputs:
            with upstream_errors(f"read coin {cid} of redemption {redeem.txid}"):
                coin = self.node.coin(cid)
            if coin.get("asset") != redeem.asset:
                raise RedemptionInvalidError(
                    f"coin {cid} of redemption {redeem.txid} is {coin.get('asset')}",
                    txid=redeem.txid,
                )
            total += amount_from_json(coin["amount"])
        return total

    def release(self, redeem: CommittedRedeem, source: str) -> RedemptionRow | None:
        """Move a committed `Redeem`'s amount from frozen to available, once per txid.

        Shared by the operator's call and the block follower.

        Returns:
            The release (the first one, if it happened before), or None when the account is
            no registered operator's (nothing to release to).

        Raises:
            UpstreamError: the node did not answer a coin lookup (nothing changed).
        """
        with self.engine.connect() as conn:
            existing = store.find_redemption(conn, redeem.txid)
            operator = store.operator_by_key(conn, redeem.account)
        if existing is not None:
            return existing
        if operator is None:
            return None
        amount = self._redeemed_amount(redeem)
        try:
            with self.engine.begin() as conn:
                store.lock_operator(conn, operator.id)
                existing = store.find_redemption(conn, redeem.txid)
                if existing is not None:
                    return existing
                row = store.insert_redemption(
                    conn, redeem.txid, operator.id, amount, redeem.height, source
                )
                store.adjust_reserve(conn, operator.id, available=amount, frozen=-amount)
        except IntegrityError:  # released by the other path between our read and insert
            with self.engine.connect() as conn:
                return store.find_redemption(conn, redeem.txid)
        log.info(
            "redemption %s: released %d to operator %d (%s)",
            redeem.txid,
            amount,
            operator.id,
            source,
        )
        return row

    # -- the follower ------------------------------------------------------------------------

    def follow(self, stop: threading.Event | None = None) -> int:
        """Scan the blocks after the cursor up to the node's tip, releasing redemptions.

        Also confirms issuances whose `Issue` shows up in a block (a crash between the
        commit and recording it), and resubmits issuances pending for `retry_after_s`.

        Returns:
            How many blocks were scanned.

        Raises:
            NodeError: the node did not answer (the cursor stays where it was).
            UpstreamError: a coin lookup failed (the block is scanned again next time).
        """
        status = self.node.status()
        self._chain_id = str(status["chain_id"])
        tip = int(status["height"])
        with self.engine.connect() as conn:
            cursor = store.cursor_height(conn)
        scanned = 0
        for height in range(cursor + 1, tip + 1):
            if stop is not None and stop.is_set():
                break
            self._scan_block(height, self.node.block(height))
            with self.engine.begin() as conn:
                store.set_cursor(conn, height)
            scanned += 1
        self.resubmit_pending(older_than_ms=int(self.config.retry_after_s * 1000))
        return scanned

    def _scan_block(self, height: int, block: dict[str, Any]) -> None:  # Any: JSON
        for entry in block.get("txs", ()):
            if not (entry.get("receipt") or {}).get("accepted"):
                continue
            kind = entry.get("kind")
            if kind == "redeem" and entry.get("asset") == self.asset:
                redeem = CommittedRedeem(
                    txid=str(entry["txid"]),
                    asset=str(entry["asset"]),
                    account=str(entry.get("account", "")),
                    inputs=tuple(str(cid) for cid in entry.get("inputs", ())),
                    height=height,
                )
                self.release(redeem, FOLLOWER_SOURCE)
            elif kind == "issue" and entry.get("issuer") == self.issuer_hex:
                self._confirm_issue(str(entry["txid"]), height)

    def _confirm_issue(self, txid: str, height: int) -> None:
        with self.engine.connect() as conn:
            row = store.issuance_by_txid(conn, txid)
        if row is None:
            log.error(
                "the ledger holds Issue %s signed by this issuer's key, not in its books", txid
            )
        elif row.status != COMMITTED:
            self._commit(row.id, height)

    # -- audit -------------------------------------------------------------------------------

    def audit(self) -> AuditFigures:
        """The ledger's supply of the asset beside the reserves in the books.

        Raises:
            UpstreamError: the node did not answer.
        """
        chain_id, _ = self.node_status()
        with upstream_errors("read the supply"):
            supply = self.node.supply().get("assets", {}).get(self.asset, {})
        with self.engine.connect() as conn:
            operators = [(op, store.operator_totals(conn, op)) for op in store.list_operators(conn)]
            totals = store.totals(conn)
            certificates = [row for row in store.list_issuances(conn) if row.status != FAILED]
            follower_height = store.cursor_height(conn)
        return AuditFigures(
            chain_id=chain_id,
            ledger_issued=amount_from_json(supply.get("issued", 0)),
            ledger_redeemed=amount_from_json(supply.get("redeemed", 0)),
            ledger_outstanding=amount_from_json(supply.get("outstanding", 0)),
            totals=totals,
            operators=operators,
            certificates=certificates,
            follower_height=follower_height,
            time_ms=now_ms(),
        )


class Follower:
    """A thread that runs `IssuerService.follow` every `interval_s` until stopped."""

    def __init__(self, service: IssuerService, interval_s: float) -> None:
        self.service = service
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="issuer-follower", daemon=True)

    def start(self) -> None:
        """Start following."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.service.follow(self._stop)
                failures = 0
            except Exception as exc:  # the thread's boundary: log, wait, try again
                failures += 1
                level = logging.WARNING if failures < 5 else logging.ERROR
                log.log(level, "follower: %s (attempt %d)", exc, failures)
            self._stop.wait(self.interval_s if failures == 0 else min(5.0, self.interval_s * 4))
