"""What the operator does, apart from HTTP: customers, deposits, loads, unloads, payments.

Every movement follows one pattern, which makes it exactly-once across crashes:

1. check what can be checked (deposit, tier limit, the customer's transaction);
2. write a `pending` journal row with the signed transaction, in one database transaction
   with the deposit it debits and the coins it reserves;
3. submit the transaction to the node and wait for its block;
4. settle the row `done` (with an unload's credit) or `failed` (with a load's refund), only
   if it is still pending.

A crash between 2 and 4 leaves a pending row; `recover()` at start submits it again (the
node answers a transaction it already committed with its first result) and settles it. A
repeated request with the same idempotency key finds the row and answers what it answered
the first time; with a different request it is refused with `idempotency.conflict`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tally.client.builders import make_transfer
from tally.client.errors import NodeError, NodeRejection
from tally.client.node_client import NodeClient
from tally.crypto.schnorr import PrivateKey, verify
from tally.model.encoding import decode_tx, encode, tx_id
from tally.model.lock import KeyLock
from tally.model.params import Params
from tally.model.rejection import Rejection
from tally.model.tx import SignedTx, Transfer, sighash
from tally.model.types import MAX_AMOUNT, PublicKey
from tally.node.keyfile import KeyFileError, read_key
from tally.services.common.amounts import amount_from_json, amount_to_json
from tally.services.common.auth import hash_token, new_token
from tally.services.common.clock import now_ms
from tally.services.common.errors import (
    BadRequestError,
    ForbiddenError,
    IdempotencyConflictError,
    NotFoundError,
    UpstreamError,
    upstream_errors,
)
from tally.services.common.requests import parse_public_key
from tally.services.operator.config import (
    OperatorConfig,
    OperatorConfigError,
    TierLimits,
    read_seed,
)
from tally.services.operator.float import (
    Answer,
    FloatManager,
    HttpIssuer,
    Issuer,
    IssuerCallError,
    Ledger,
    request_hash,
)
from tally.services.operator.store import (
    DONE,
    FAILED,
    PENDING,
    CustomerRow,
    DepositOverflowError,
    EntryExistsError,
    JournalRow,
    KeyTakenError,
    OperatorStore,
    TxAlreadyJournaledError,
)
from tally.wallet.errors import InsufficientFundsError, LimitExceededError
from tally.wallet.keys import derive_key
from tally.wallet.selection import Selection, select_coins

__all__ = [
    "TxRefusedError",
    "OperatorService",
    "customer_scope",
    "admin_scope",
    "limits_json",
    "open_service",
]

log = logging.getLogger(__name__)

_TRANSIENT_NODE_CODES: Final = frozenset({"mempool.full", "mempool.conflict", "node.stopping"})
"""Node refusals that may pass: the row stays pending and is tried again."""
_RETRY_AFTER_MS: Final = 3_000
_WORKER_INTERVAL_S: Final = 2.0
_CONNECT_TIMEOUT_S: Final = 60.0
_COMMIT_WAIT_S: Final = 30.0
_MAX_WINDOW: Final = Params().max_window


class TxRefusedError(Rejection):
    """The ledger (or the operator, checking first) refuses the transaction for good."""

    code = "operator.tx_refused"
    http_status = 422


def customer_scope(customer_id: int) -> str:
    """The journal scope of a customer's own idempotency keys."""
    return f"customer:{customer_id}"


def admin_scope(customer_id: int) -> str:
    """The journal scope of the admin's counter deposits for a customer."""
    return f"admin:{customer_id}"


def limits_json(limits: TierLimits) -> dict[str, str | int]:
    """A tier's limits as the API shows them (the offline ones bind the customer's device)."""
    return {
        "balance_limit": amount_to_json(limits.balance_limit),
        "payment_limit": amount_to_json(limits.payment_limit),
        "offline_payment_limit": amount_to_json(limits.offline_payment_limit),
        "offline_unsettled_limit": amount_to_json(limits.offline_unsettled_limit),
        "offline_hops": limits.offline_hops,
    }


def _pending_body(entry: JournalRow) -> dict[str, Any]:
    return {
        **_entry_fields(entry),
        "message": "the ledger has not confirmed it yet; repeat the request with the same "
        "idempotency key to learn how it ended",
    }


def _entry_fields(entry: JournalRow) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "journal_id": entry.id,
        "kind": entry.kind,
        "status": entry.status,
        "amount": amount_to_json(entry.amount),
        "txid": entry.txid,
    }
    for name in ("to", "height", "reserve_ref"):
        if name in entry.detail:
            fields[name] = entry.detail[name]
    if entry.kind == "issuance" and "txid" in entry.detail:
        fields["txid"] = entry.detail["txid"]
    return fields


@dataclass(frozen=True)
class _Outcome:
    """How the ledger answered a journal row's transaction."""

    state: str
    """committed, rejected, or unknown (no final answer yet)."""
    height: int | None = None
    code: str = ""
    message: str = ""


class OperatorService:
    """The operator's logic over its book, the ledger node and the issuer."""

    def __init__(
        self,
        config: OperatorConfig,
        store: OperatorStore,
        node: NodeClient,
        issuer: Issuer,
        identity_key: PrivateKey,
        float_key: PrivateKey,
        hosted_seed: bytes,
    ) -> None:
        self.config = config
        self.store = store
        self.node = node
        self.issuer = issuer
        self.identity_key = identity_key
        self.hosted_seed = hosted_seed
        self.ledger = Ledger(node=node, asset=config.asset, tx_window=config.tx_window)
        self.float = FloatManager(
            store,
            self.ledger,
            issuer,
            float_key,
            identity_key,
            config.float_policy,
            self.settle,
        )
        self._wake = threading.Event()
        self._rebalance_due = False
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None

    @classmethod
    def open(cls, config: OperatorConfig, issuer: Issuer | None = None) -> OperatorService:
        """Read the keys and open the database and the clients of `config`.

        Raises:
            KeyFileError: a key file is missing or wrong.
            OperatorConfigError: the hosted seed file is missing or wrong.
        """
        identity = read_key(config.key_file)
        float_key = read_key(config.float_key_file)
        seed = read_seed(config.hosted_seed_file)
        store = OperatorStore.open(config.database_url)
        node = NodeClient(config.node_url)
        return cls(
            config,
            store,
            node,
            issuer if issuer is not None else HttpIssuer(config.issuer_url, identity),
            identity,
            float_key,
            seed,
        )

    # -- life cycle --------------------------------------------------------------------------

    def start(self, *, background: bool = True) -> None:
        """Learn the chain from the node, settle what a crash left pending, start the worker.

        Raises:
            UpstreamError: the node did not answer within a minute.
        """
        deadline = time.monotonic() + _CONNECT_TIMEOUT_S
        while True:
            try:
                self.ledger.connect()
                break
            except NodeError as exc:
                if time.monotonic() >= deadline:
                    raise UpstreamError(f"the ledger node does not answer: {exc}") from None
                time.sleep(0.5)
        recovered = self.recover()
        log.info("operator %s serving; %d pending movements settled", self.config.name, recovered)
        if background:
            self._worker = threading.Thread(target=self._work, name="operator-worker", daemon=True)
            self._worker.start()

    def stop(self) -> None:
        """Stop the worker and close the clients and the database; a second call does nothing."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=30)
        if isinstance(self.issuer, HttpIssuer):
            self.issuer.close()
        self.node.close()
        self.store.close()

    def recover(self) -> int:
        """Submit every pending journal row again and settle it; how many were settled."""
        settled = 0
        for entry in self.store.pending_entries():
            try:
                if self.settle(entry).body.get("status") != PENDING:
                    settled += 1
            except Exception:  # a process boundary: log and keep the row for later
                log.exception("could not settle journal row %d (%s)", entry.id, entry.kind)
        return settled

    def poke(self) -> None:
        """Ask the worker to bring the float back between its marks soon."""
        self._rebalance_due = True
        self._wake.set()

    def _work(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(_WORKER_INTERVAL_S)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                stale = now_ms() - _RETRY_AFTER_MS
                for entry in self.store.pending_entries():
                    if entry.updated_ms <= stale:
                        self.settle(entry)
                if self._rebalance_due:
                    self._rebalance_due = False
                    result = self.float.rebalance()
                    if result["action"] != "none":
                        log.info("float rebalanced: %s", result)
            except Exception:  # the worker must outlive a failing node or issuer; log it
                log.exception("operator worker step failed; trying again later")

    # -- settling journal rows ---------------------------------------------------------------

    def answer_of(self, entry: JournalRow) -> Answer:
        """What a row answers now: its stored answer once settled, else `pending`."""
        if entry.status != PENDING and entry.response is not None:
            return Answer(entry.http_status or 200, entry.response)
        return Answer(202, _pending_body(entry))

    def settle(self, entry: JournalRow) -> Answer:
        """Take a pending row as far as the ledger (and issuer) allow; its answer."""
        if entry.status != PENDING:
            return self.answer_of(entry)
        if entry.kind == "issuance":
            return self._settle_issuance(entry)
        outcome = self._submit(entry)
        if outcome.state == "unknown":
            self.store.touch_entry(entry.id)
            return Answer(202, _pending_body(entry))
        if outcome.state == "rejected":
            return self._fail(entry, outcome)
        detail = {**entry.detail, "height": outcome.height}
        if entry.kind == "redeem":
            try:
                self.issuer.notify_redemption(entry.txid or "")
                detail["issuer_notified"] = True
            except IssuerCallError as exc:
                if not exc.permanent:
                    self.store.touch_entry(entry.id, detail)
                    return Answer(202, _pending_body(entry))
                log.error("the issuer refused the redemption %s: %s", entry.txid, exc)
                detail["issuer_notified"] = False
                detail["issuer_error"] = str(exc)
        credit = entry.amount if entry.kind == "unload" else 0
        claim = detail.pop("claim_keys", []) if entry.kind == "unload" else []
        return self._finish(entry, DONE, 200, detail, credit=credit, claim_keys=claim)

    def _finish(
        self,
        entry: JournalRow,
        status: str,
        http_status: int,
        detail: dict[str, Any],
        *,
        credit: int = 0,
        claim_keys: Sequence[str] = (),
        error: Rejection | None = None,
    ) -> Answer:
        def response_of(deposit: int | None) -> dict[str, Any]:
            if error is not None:
                return error.to_dict()
            body = _entry_fields(dataclasses.replace(entry, status=status, detail=detail))
            if deposit is not None:
                body["deposit"] = amount_to_json(deposit)
            return body

        settled = self.store.finish_entry(
            entry.id,
            status=status,
            response_of=response_of,
            http_status=http_status,
            credit=credit,
            claim_keys=claim_keys,
            detail=detail,
        )
        if settled is None:  # another thread settled it first: answer what it stored
            current = self.store.entry_by_id(entry.id)
            return self.answer_of(current if current is not None else entry)
        if entry.kind in ("load", "unload", "pay"):
            self.poke()
        return self.answer_of(settled)

    def _fail(self, entry: JournalRow, outcome: _Outcome) -> Answer:
        error = TxRefusedError(
            f"the ledger refused the {entry.kind}: {outcome.code}: {outcome.message}".rstrip(": "),
            journal_id=entry.id,
            txid=entry.txid,
            node_code=outcome.code,
        )
        refund = entry.amount if entry.kind == "load" else 0
        log.warning("journal row %d (%s) failed: %s", entry.id, entry.kind, outcome.code)
        detail = {**entry.detail, "node_code": outcome.code}
        return self._finish(entry, FAILED, 422, detail, credit=refund, error=error)

    def _submit(self, entry: JournalRow) -> _Outcome:
        if entry.tx is None:
            return _Outcome("rejected", code="operator.no_tx", message="the row has no transaction")
        try:
            result = self.node.submit(entry.tx, wait=True)
        except NodeRejection as rejection:
            if rejection.code in _TRANSIENT_NODE_CODES or rejection.status >= 500:
                return _Outcome("unknown", code=rejection.code)
            return _Outcome("rejected", code=rejection.code, message=rejection.message)
        except NodeError as exc:
            log.warning("journal row %d: the node did not settle it: %s", entry.id, exc)
            return _Outcome("unknown")
        if result.get("status") == "committed":
            return _Outcome("committed", height=int(result["height"]))
        if result.get("status") == "rejected":
            code = str((result.get("receipt") or {}).get("code", "rejected"))
            return _Outcome("rejected", height=result.get("height"), code=code)
        return _Outcome("unknown")

    def _settle_issuance(self, entry: JournalRow) -> Answer:
        try:
            result = self.issuer.request_issuance(entry.amount, entry.idempotency_key)
        except IssuerCallError as exc:
            if not exc.permanent:
                log.warning("issuance %d not answered yet: %s", entry.id, exc)
                self.store.touch_entry(entry.id)
                return Answer(202, _pending_body(entry))
            return self._fail(entry, _Outcome("rejected", code=exc.code, message=str(exc)))
        txid = result.txid or ""
        detail = {
            **entry.detail,
            "txid": txid,
            "reserve_ref": result.reserve_ref,
            "height": result.height,
        }
        if result.status == "failed":
            code = result.error_code or "issuance.failed"
            return self._fail(entry, _Outcome("rejected", code=code))
        outcome = self._await_commit(txid) if txid else _Outcome("unknown")
        if outcome.state == "unknown":
            self.store.touch_entry(entry.id, detail)
            return Answer(202, _pending_body(entry))
        if outcome.state == "rejected":
            return self._fail(entry, outcome)
        detail["height"] = outcome.height
        return self._finish(entry, DONE, 200, detail)

    def _await_commit(self, txid: str) -> _Outcome:
        """Wait until the node has committed `txid` (which someone else submitted)."""
        deadline = time.monotonic() + _COMMIT_WAIT_S
        while time.monotonic() < deadline:
            try:
                view = self.node.tx(txid)
            except NodeRejection as rejection:
                if rejection.code != "not_found":
                    return _Outcome("unknown", code=rejection.code)
                view = {}
            except (NodeError, ValueError) as exc:
                log.warning("cannot read transaction %s: %s", txid, exc)
                return _Outcome("unknown")
            if view.get("status") == "committed":
                return _Outcome("committed", height=int(view["height"]))
            if view.get("status") == "rejected":
                return _Outcome("rejected", code=str(view.get("receipt", {}).get("code")))
            time.sleep(0.05)
        return _Outcome("unknown")

    # -- idempotency ------------------------------------------------------------------------

    def _replay(self, entry: JournalRow, hashed: str) -> Answer:
        if entry.request_hash != hashed:
            raise IdempotencyConflictError(
                f"idempotency key {entry.idempotency_key!r} was used for a different request",
                idempotency_key=entry.idempotency_key,
                journal_id=entry.id,
            )
        return self.settle(entry) if entry.status == PENDING else self.answer_of(entry)

    def _existing(self, scope: str, key: str, hashed: str) -> Answer | None:
        entry = self.store.entry(scope, key)
        return None if entry is None else self._replay(entry, hashed)

    def _open_and_settle(self, scope: str, key: str, hashed: str, **fields: Any) -> Answer:
        try:
            entry = self.store.open_entry(
                scope=scope, idempotency_key=key, request_hash=hashed, **fields
            )
        except EntryExistsError:
            existing = self.store.entry(scope, key)
            if existing is None:  # cannot happen: the row was there a moment ago
                raise
            return self._replay(existing, hashed)
        except TxAlreadyJournaledError as exc:
            raise IdempotencyConflictError(
                f"this transaction was sent before under idempotency key {exc.idempotency_key!r}",
                txid=exc.txid,
            ) from None
        return self.settle(entry)

    def _once(
        self, scope: str, key: str, hashed: str, movement: Callable[[], dict[str, Any]]
    ) -> Answer:
        """Journal and settle a movement of float or hosted coins once per idempotency key.

        A repeated key answers as the first time. Otherwise `movement()` checks the request
        and builds its journal row's fields under the float's lock, after a second look for
        the key, so that two calls with one key at once make one row and no two movements
        pick the same coin.
        """
        existing = self._existing(scope, key, hashed)
        if existing is not None:
            return existing
        with self.float.lock:
            existing = self._existing(scope, key, hashed)
            if existing is not None:
                return existing
            return self._open_and_settle(scope, key, hashed, **movement())

    # -- customers ---------------------------------------------------------------------------

    def limits_of(self, customer: CustomerRow) -> TierLimits:
        """The customer's tier limits.

        Raises:
            LimitExceededError: the tier has no limits configured (nothing may move).
        """
        limits = self.config.tiers.get(customer.tier)
        if limits is None:
            raise LimitExceededError(
                f"tier {customer.tier} has no limits configured; nothing may move",
                tier=customer.tier,
            )
        return limits

    def hosted_key(self, index: int) -> PrivateKey:
        """The key of the hosted wallet with this index."""
        return derive_key(self.hosted_seed, index)

    def create_customer(self, name: str, tier: int, wallet_key: str | None) -> dict[str, Any]:
        """Add a customer: self-custody when `wallet_key` is given, else hosted.

        Returns:
            `customer_id`, and for a hosted customer its `token` (shown only now) and
            `hosted_key`.

        Raises:
            BadRequestError: an unknown tier, an empty name or a malformed key.
            KeyTakenError: the wallet key is already a customer's.
        """
        if not name.strip() or len(name) > 200:
            raise BadRequestError("name is 1 to 200 characters", field="name")
        if tier not in self.config.tiers:
            raise BadRequestError(
                f"tier {tier} is not one of the configured tiers {sorted(self.config.tiers)}",
                field="tier",
            )
        if wallet_key is not None:
            key = parse_public_key(wallet_key, "wallet_key")
            row = self.store.create_customer(name, tier, wallet_key=key.hex())
            return {"customer_id": row.id, "name": name, "tier": tier, "wallet_key": key.hex()}
        token = new_token()
        row = self.store.create_customer(
            name,
            tier,
            token_hash=hash_token(token),
            hosted_key_of=lambda index: self.hosted_key(index).public_key.hex(),
        )
        assert row.hosted_key is not None  # noqa: S101 - set by create_customer above
        return {
            "customer_id": row.id,
            "name": name,
            "tier": tier,
            "token": token,
            "hosted_key": row.hosted_key,
            "hosted_address": self.ledger.address(bytes.fromhex(row.hosted_key)),
        }

    def customer(self, customer_id: int) -> CustomerRow:
        """The customer with this id.

        Raises:
            NotFoundError: no such customer.
        """
        row = self.store.customer(customer_id)
        if row is None:
            raise NotFoundError(f"no customer {customer_id}", customer_id=customer_id)
        return row

    def customer_view(self, customer: CustomerRow) -> dict[str, Any]:
        """A customer as the admin lists it."""
        return {
            "customer_id": customer.id,
            "name": customer.name,
            "tier": customer.tier,
            "hosted": customer.is_hosted,
            "wallet_key": customer.wallet_key,
            "hosted_key": customer.hosted_key,
            "deposit": amount_to_json(customer.deposit),
        }

    def customers(self) -> list[dict[str, Any]]:
        """Every customer."""
        return [self.customer_view(row) for row in self.store.all_customers()]

    def deposit(self, customer_id: int, amount: int, key: str) -> Answer:
        """Cash paid in at the counter: the deposit grows by `amount`, once per key.

        Raises:
            NotFoundError: no such customer.
            IdempotencyConflictError: the key was used for another deposit.
            DepositOverflowError: the deposit would go over 2^63-1.
        """
        self.customer(customer_id)
        scope = admin_scope(customer_id)
        hashed = request_hash({"kind": "deposit", "customer_id": customer_id, "amount": amount})
        existing = self._existing(scope, key, hashed)
        if existing is not None:
            return existing

        def response_of(entry_id: int, deposit: int) -> dict[str, Any]:
            return {
                "journal_id": entry_id,
                "kind": "deposit",
                "status": DONE,
                "customer_id": customer_id,
                "amount": amount_to_json(amount),
                "deposit": amount_to_json(deposit),
            }

        try:
            entry = self.store.record_deposit(
                scope=scope,
                idempotency_key=key,
                customer_id=customer_id,
                amount=amount,
                request_hash=hashed,
                response_of=response_of,
            )
        except EntryExistsError:
            again = self._existing(scope, key, hashed)
            if again is None:
                raise
            return again
        return self.answer_of(entry)

    def known_keys(self, customer: CustomerRow) -> list[bytes]:
        """The keys the customer's coins are known to sit under."""
        return [bytes.fromhex(key) for key in self.store.keys_of(customer.id)]

    def me(self, customer: CustomerRow) -> dict[str, Any]:
        """What a customer sees of itself.

        Raises:
            UpstreamError: the node did not answer.
        """
        limits = self.config.tiers.get(customer.tier)
        keys = self.known_keys(customer)
        body: dict[str, Any] = {
            "customer_id": customer.id,
            "name": customer.name,
            "tier": customer.tier,
            "hosted": customer.is_hosted,
            "asset": self.config.asset,
            "limits": None if limits is None else limits_json(limits),
            "deposit": amount_to_json(customer.deposit),
            "balance": amount_to_json(self.ledger.balance_of(keys)),
            "pending_loads": amount_to_json(self.store.pending_total(customer.id, "load")),
            "keys": [key.hex() for key in keys],
            "float_key": self.float.public_key.hex(),
            "wallet_key": customer.wallet_key,
            "hosted_key": customer.hosted_key,
            "hosted_address": None
            if customer.hosted_key is None
            else self.ledger.address(bytes.fromhex(customer.hosted_key)),
        }
        return body

    def register_keys(self, customer: CustomerRow, keys: Sequence[object]) -> dict[str, Any]:
        """Register receive keys of a customer's wallet.

        Raises:
            BadRequestError: no keys, too many, or a malformed key.
            KeyTakenError: a key is another customer's.
        """
        if not keys or len(keys) > 100:
            raise BadRequestError("keys is a list of 1 to 100 public keys", field="keys")
        parsed = [parse_public_key(key, f"keys[{i}]").hex() for i, key in enumerate(keys)]
        if self.float.public_key.hex() in parsed:
            raise BadRequestError("the operator's float key is not a customer's key")
        return {"keys": self.store.register_keys(customer.id, parsed)}

    def history(self, customer: CustomerRow) -> dict[str, Any]:
        """The customer's journal, newest first."""
        return {
            "entries": [
                {
                    **_entry_fields(entry),
                    "idempotency_key": entry.idempotency_key,
                    "created_ms": entry.created_ms,
                    "updated_ms": entry.updated_ms,
                }
                for entry in self.store.entries(customer_id=customer.id)
            ]
        }

    def journal(self, customer_id: int | None = None) -> dict[str, Any]:
        """Journal rows for the admin, newest first."""
        return {
            "entries": [
                {
                    **_entry_fields(entry),
                    "customer_id": entry.customer_id,
                    "scope": entry.scope,
                    "idempotency_key": entry.idempotency_key,
                    "created_ms": entry.created_ms,
                    "updated_ms": entry.updated_ms,
                }
                for entry in self.store.entries(customer_id=customer_id)
            ]
        }

    # -- load --------------------------------------------------------------------------------

    def load(self, customer: CustomerRow, amount: int, key: str, to: str | None) -> Answer:
        """Move `amount` from the customer's deposit to its wallet key `to`.

        Raises:
            BadRequestError: `to` missing (self-custody), malformed, or not the hosted key.
            InsufficientFundsError: the deposit is short.
            LimitExceededError: the wallet would hold more than the tier allows.
            KeyTakenError: `to` is another customer's key.
            IdempotencyConflictError: the key was used for another request.
            FloatUnavailableError: the float is short and the issuer gave nothing.
            UpstreamError: the node did not answer.
        """
        if customer.is_hosted:
            assert customer.hosted_key is not None  # noqa: S101 - is_hosted says so
            if to is not None and to.lower() != customer.hosted_key:
                raise BadRequestError("a hosted wallet is loaded to its hosted key; omit `to`")
            target = PublicKey(bytes.fromhex(customer.hosted_key))
        else:
            if to is None:
                raise BadRequestError("`to` (the wallet key to load to) is required", field="to")
            target = parse_public_key(to, "to")
        if target == self.float.public_key:
            raise BadRequestError("`to` is the operator's float key")
        hashed = request_hash({"kind": "load", "amount": amount, "to": target.hex()})

        def movement() -> dict[str, Any]:  # Any: the journal row's fields
            fresh = self.customer(customer.id)
            if fresh.deposit < amount:
                raise InsufficientFundsError(
                    f"the deposit holds {fresh.deposit}, less than the {amount} to load",
                    deposit=amount_to_json(fresh.deposit),
                    needed=amount_to_json(amount),
                )
            owner = self.store.owners_of([target.hex()]).get(target.hex())
            if owner is not None and owner != customer.id:
                raise KeyTakenError(
                    f"key {target.hex()} belongs to another customer", key=target.hex()
                )
            limits = self.limits_of(fresh)
            keys = {*self.known_keys(fresh), bytes(target)}
            balance = self.ledger.balance_of(keys) + self.store.pending_total(fresh.id, "load")
            if balance + amount > limits.balance_limit:
                raise LimitExceededError(
                    f"loading {amount} would take the wallet to {balance + amount}, over the "
                    f"tier {fresh.tier} balance limit of {limits.balance_limit}",
                    limit=amount_to_json(limits.balance_limit),
                    balance=amount_to_json(balance),
                    amount=amount_to_json(amount),
                    tier=fresh.tier,
                )
            selection = self.float.select(amount)
            tx = self._transfer(selection, self.float.float_key, target, amount)
            return {
                "kind": "load",
                "amount": amount,
                "customer_id": customer.id,
                "tx": encode(tx),
                "txid": tx_id(tx.body).hex(),
                "detail": {"to": target.hex()},
                "reserve": [cid for cid, _ in selection.inputs],
                "debit": amount,
                "claim_keys": [target.hex()],
            }

        return self._once(customer_scope(customer.id), key, hashed, movement)

    # -- unload ------------------------------------------------------------------------------

    def unload(
        self, customer: CustomerRow, key: str, tx_hex: str | None, amount: int | None
    ) -> Answer:
        """Take the customer's coins into the float and credit the deposit with them.

        A self-custody wallet sends `tx_hex`, a signed transfer paying the float; a hosted
        wallet sends `amount` and the operator signs with the hosted key.

        Raises:
            BadRequestError: a malformed transaction, one that pays the float nothing or
                another asset, or an `amount` that is not what it pays.
            ForbiddenError: it spends coins of another customer's key.
            TxRefusedError: the ledger would refuse it (unknown or spent coins, bad
                signatures, unbalanced).
            IdempotencyConflictError: the key or the transaction was used before.
            UpstreamError: the node did not answer.
        """
        if tx_hex is None:
            if not customer.is_hosted:
                raise BadRequestError(
                    "`tx` (a signed transfer paying the operator's float) is required", field="tx"
                )
            if amount is None:
                raise BadRequestError("`amount` is required", field="amount")
            return self._unload_hosted(customer, key, amount)
        tx, raw = self._parse_tx(tx_hex)
        paid = self._paid_to_float(tx)
        if amount is not None and amount != paid:
            raise BadRequestError(
                f"the transaction pays {paid} to the float, not the {amount} stated",
                paid=amount_to_json(paid),
                amount=amount_to_json(amount),
            )
        scope = customer_scope(customer.id)
        hashed = request_hash({"kind": "unload", "tx": raw.hex(), "amount": amount})
        existing = self._existing(scope, key, hashed)
        if existing is not None:
            return existing
        txid = tx_id(tx.body).hex()
        earlier = self.store.entry_by_txid(txid)
        if earlier is not None and earlier.status != FAILED:
            under = (
                f" under idempotency key {earlier.idempotency_key!r}"
                if earlier.customer_id == customer.id
                else ""
            )
            raise IdempotencyConflictError(f"this transaction was sent before{under}", txid=txid)
        input_keys = self._check_spend(customer, tx)
        self._check_credit(self.customer(customer.id), paid)
        assert isinstance(tx.body, Transfer)  # noqa: S101 - _paid_to_float checked it
        change_keys = [
            output.lock.key.hex()
            for output in tx.body.outputs
            if isinstance(output.lock, KeyLock)
            and output.lock.key != self.float.public_key
            and output.asset == self.config.asset
        ]
        answer = self._open_and_settle(
            scope,
            key,
            hashed,
            kind="unload",
            amount=paid,
            customer_id=customer.id,
            tx=raw,
            txid=txid,
            detail={"claim_keys": sorted({*input_keys, *change_keys})},
        )
        return answer

    def _parse_tx(self, tx_hex: str) -> tuple[SignedTx, bytes]:
        try:
            raw = bytes.fromhex(tx_hex)
        except ValueError:
            raise BadRequestError(
                "`tx` is the signed transaction's bytes as hex", field="tx"
            ) from None
        try:
            tx = decode_tx(raw, Params())
        except Rejection as exc:
            raise BadRequestError(
                f"`tx` is not a canonical signed transaction: {exc.message}", decode_code=exc.code
            ) from None
        return tx, raw

    def _paid_to_float(self, tx: SignedTx) -> int:
        body = tx.body
        if not isinstance(body, Transfer):
            raise BadRequestError(
                f"an unload is a Transfer paying the float, not a {type(body).__name__}"
            )
        float_lock = KeyLock(key=self.float.public_key)
        to_float = [output for output in body.outputs if output.lock == float_lock]
        foreign = sorted({output.asset for output in to_float if output.asset != self.config.asset})
        if foreign:
            raise BadRequestError(
                f"the transaction pays {', '.join(foreign)} to the float; this operator takes "
                f"only {self.config.asset}",
                asset=foreign[0],
                expected=self.config.asset,
            )
        paid = sum(output.amount for output in to_float)
        if paid < 1:
            raise BadRequestError(
                f"the transaction pays nothing to the operator's float key "
                f"{self.float.public_key.hex()}",
                float_key=self.float.public_key.hex(),
            )
        return paid

    def _check_spend(self, customer: CustomerRow, tx: SignedTx) -> list[str]:
        """Check a customer's transfer against the ledger; the keys its inputs sit under."""
        body = tx.body
        assert isinstance(body, Transfer)  # noqa: S101 - checked by the caller
        if len(tx.witnesses) != len(body.inputs):
            raise TxRefusedError(
                f"{len(body.inputs)} inputs but {len(tx.witnesses)} witnesses",
                node_code="witness.count",
            )
        with upstream_errors("read the height"):
            height = int(self.node.status()["height"])
        if body.valid_until <= height:
            raise TxRefusedError(
                f"the transaction was valid until height {body.valid_until}; the ledger is at "
                f"{height}",
                node_code="window.expired",
            )
        if body.valid_until > height + _MAX_WINDOW:
            raise TxRefusedError(
                f"valid_until {body.valid_until} is more than {_MAX_WINDOW} blocks ahead of "
                f"height {height}",
                node_code="window.too_far",
            )
        message = sighash(self.ledger.chain_id, tx_id(body))
        sums: dict[str, int] = {}
        keys: list[str] = []
        for index, (cid, witness) in enumerate(zip(body.inputs, tx.witnesses, strict=True)):
            with upstream_errors(f"read coin {cid.hex()}"):
                try:
                    view = self.node.coin(cid)
                except NodeRejection as rejection:
                    if rejection.code != "not_found":
                        raise
                    raise TxRefusedError(
                        f"input {index} ({cid.hex()}) is not a coin on the ledger",
                        node_code="input.unknown",
                        coin_id=cid.hex(),
                    ) from None
            if view.get("status") != "unspent":
                raise TxRefusedError(
                    f"input {index} ({cid.hex()}) is already spent",
                    node_code="input.spent",
                    coin_id=cid.hex(),
                )
            lock = view.get("lock") or {}
            if lock.get("kind") != "key":
                raise BadRequestError(
                    f"input {index} is a {lock.get('kind')} coin; an unload spends key coins"
                )
            key = parse_public_key(lock.get("key"), f"input {index}'s key")
            signatures = witness.signatures
            if (
                len(signatures) != 1
                or signatures[0].signer != 0
                or not verify(key, message, signatures[0].sig)
            ):
                raise TxRefusedError(
                    f"input {index}'s signature does not verify", node_code="sig.invalid"
                )
            keys.append(key.hex())
            asset = str(view["asset"])
            sums[asset] = sums.get(asset, 0) + amount_from_json(view["amount"])
        owners = self.store.owners_of(keys)
        for key_hex, owner in owners.items():
            if owner != customer.id:
                raise ForbiddenError(
                    "the transaction spends coins of another customer's key", key=key_hex
                )
        for output in body.outputs:
            sums[output.asset] = sums.get(output.asset, 0) - output.amount
        unbalanced = sorted(asset for asset, left in sums.items() if left != 0)
        if unbalanced:
            raise TxRefusedError(
                f"inputs and outputs differ in {', '.join(unbalanced)}",
                node_code="value.unbalanced",
            )
        return keys

    def _unload_hosted(self, customer: CustomerRow, key: str, amount: int) -> Answer:
        hashed = request_hash({"kind": "unload", "amount": amount, "tx": None})

        def movement() -> dict[str, Any]:  # Any: the journal row's fields
            self._check_credit(self.customer(customer.id), amount)
            return self._hosted_movement(customer, "unload", self.float.public_key, amount, {})

        return self._once(customer_scope(customer.id), key, hashed, movement)

    def _check_credit(self, customer: CustomerRow, amount: int) -> None:
        """Refuse a credit that would take the customer's deposit over 2^63-1."""
        if customer.deposit > MAX_AMOUNT - amount:
            raise DepositOverflowError(
                f"crediting {amount} would take the deposit over {MAX_AMOUNT}",
                amount=amount_to_json(amount),
            )

    def _transfer(
        self, selection: Selection, signer: PrivateKey, to: bytes, amount: int
    ) -> SignedTx:
        """A transfer of `amount` to `to` from `signer`'s selected coins, change back to it."""
        outputs: list[tuple[bytes, str, int]] = [(to, self.config.asset, amount)]
        if selection.change:
            outputs.append((signer.public_key, self.config.asset, selection.change))
        return make_transfer(
            [(cid, signer) for cid, _ in selection.inputs],
            outputs,
            self.ledger.valid_until(),
            self.ledger.chain_id,
        )

    def _hosted_movement(
        self, customer: CustomerRow, kind: str, to: PublicKey, amount: int, detail: dict[str, str]
    ) -> dict[str, Any]:  # Any: the journal row's fields
        """The journal row of paying `amount` from the hosted wallet to `to`."""
        assert customer.hosted_index is not None  # noqa: S101 - callers check is_hosted
        hosted = self.hosted_key(customer.hosted_index)
        reserved = self.store.reserved_coins()
        coins = [
            (cid, coin)
            for cid, coin in self.ledger.coins_of(hosted.public_key)
            if bytes(cid) not in reserved
        ]
        selection = select_coins(coins, self.config.asset, amount, max_inputs=Params().max_inputs)
        tx = self._transfer(selection, hosted, to, amount)
        return {
            "kind": kind,
            "amount": amount,
            "customer_id": customer.id,
            "tx": encode(tx),
            "txid": tx_id(tx.body).hex(),
            "detail": detail,
            "reserve": [cid for cid, _ in selection.inputs],
        }

    # -- pay ---------------------------------------------------------------------------------

    def pay(self, customer: CustomerRow, to: str, amount: int, key: str) -> Answer:
        """Pay `amount` from a hosted wallet to the key `to`.

        Raises:
            ForbiddenError: the customer's wallet is not hosted.
            BadRequestError: a malformed `to`.
            LimitExceededError: over the tier's payment limit.
            InsufficientFundsError: the hosted wallet holds too little.
            IdempotencyConflictError: the key was used for another request.
            UpstreamError: the node did not answer.
        """
        if not customer.is_hosted:
            raise ForbiddenError(
                "only hosted wallets pay through the operator; a self-custody wallet pays "
                "from its own keys"
            )
        payee = parse_public_key(to, "to")
        if payee == self.float.public_key:
            raise BadRequestError("`to` is the operator's float key: use unload to pay it in")
        hashed = request_hash({"kind": "pay", "amount": amount, "to": payee.hex()})

        def movement() -> dict[str, Any]:  # Any: the journal row's fields
            limits = self.limits_of(customer)
            if amount > limits.payment_limit:
                raise LimitExceededError(
                    f"a payment of {amount} is over the tier {customer.tier} payment limit of "
                    f"{limits.payment_limit}",
                    limit=amount_to_json(limits.payment_limit),
                    amount=amount_to_json(amount),
                    tier=customer.tier,
                )
            return self._hosted_movement(customer, "pay", payee, amount, {"to": payee.hex()})

        return self._once(customer_scope(customer.id), key, hashed, movement)

    # -- float -------------------------------------------------------------------------------

    def float_view(self) -> dict[str, Any]:
        """The float's coins and totals."""
        return self.float.view()

    def rebalance(self) -> dict[str, Any]:
        """Bring the float between its marks now; what was done."""
        return self.float.rebalance()


def open_service(config: OperatorConfig) -> OperatorService:
    """`OperatorService.open`, reporting unreadable keys as a configuration error."""
    try:
        return OperatorService.open(config)
    except KeyFileError as exc:
        raise OperatorConfigError(str(exc)) from None
