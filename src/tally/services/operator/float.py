"""The float: the operator's coins under its float key, kept between a low and a high mark.

Loads pay customers from the float and unloads pay into it. When the float falls below
`low` the operator asks the issuer for `target - float`; when it rises above `high` it
redeems `float - target`: a `Redeem` of coins summing to exactly that amount (a transfer to
itself splits a coin first when no subset is exact), with the operator's identity key as the
reserve account, and then tells the issuer, which releases that much reserve.

Everything that spends float coins (loads, hosted payments, splits, merges, redemptions)
holds `FloatManager.lock`, so that two of them never pick the same coin; coins of rows still
pending after a crash or an unreachable node stay reserved in the journal until settled.

The issuer is reached through the small `Issuer` protocol, so that tests can put a fake in
its place; `HttpIssuer` speaks to the issuer service.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tally.client.builders import make_redeem, make_transfer
from tally.client.node_client import NodeClient
from tally.client.wire import WireError, coins_from_json
from tally.crypto.schnorr import PrivateKey
from tally.model.address import address_of
from tally.model.coin import Coin, coin_id
from tally.model.encoding import encode, tx_id
from tally.model.lock import KeyLock
from tally.model.params import Params
from tally.model.rejection import Rejection
from tally.model.tx import SignedTx
from tally.model.types import CoinId, PublicKey
from tally.services.common.amounts import amount_to_json
from tally.services.common.client import ServiceCallError
from tally.services.common.errors import UpstreamError, upstream_errors
from tally.services.issuer.client import Issuance, IssuerClient, Redemption
from tally.services.operator.config import FloatPolicy
from tally.services.operator.store import DONE, JournalRow, OperatorStore
from tally.wallet.errors import InsufficientFundsError
from tally.wallet.selection import Selection, TooManyInputsError, plan_merge, select_coins

__all__ = [
    "FLOAT_SCOPE",
    "Answer",
    "Issuer",
    "IssuerCallError",
    "issuer_call_error",
    "HttpIssuer",
    "Ledger",
    "FloatUnavailableError",
    "FloatManager",
    "request_hash",
]

log = logging.getLogger(__name__)

FLOAT_SCOPE = "float"
"""The journal scope of the operator's own movements (issuance, redemption, split, merge)."""
_MAX_INPUTS = Params().max_inputs
_MAX_MERGES = 8

CoinEntry = tuple[CoinId, Coin]


@dataclass(frozen=True)
class Answer:
    """What a state-changing call answers: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]  # Any: JSON

    @property
    def is_done(self) -> bool:
        """Whether the movement is settled as done."""
        return self.status == 200 and self.body.get("status") == DONE


def request_hash(request: dict[str, Any]) -> str:  # Any: JSON
    """The hash that tells a repeated request from a different one under the same key."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IssuerCallError(Exception):
    """The issuer refused (`permanent`) or could not be reached (try again later)."""

    def __init__(self, message: str, *, permanent: bool, code: str = "") -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


class Issuer(Protocol):
    """What the operator needs of its issuer."""

    def request_issuance(self, amount: int, idempotency_key: str) -> Issuance:
        """Ask for `amount` new coins to the float key; the answer holds the `txid`.

        The same key repeats the first answer. Raises `IssuerCallError`.
        """
        ...

    def notify_redemption(self, txid: str) -> Redemption:
        """Tell the issuer that the operator's `Redeem` `txid` (hex) is committed.

        Raises `IssuerCallError`.
        """
        ...


_FINAL_ISSUER_CODES = frozenset({"issuance.failed"})
"""Issuer refusals answered with a 5xx that are final all the same: the ledger refused the
issuance for good and the issuer released the reserve."""


def issuer_call_error(exc: ServiceCallError, what: str) -> IssuerCallError:
    """A failed call to the issuer as the operator takes it: final, or worth trying again.

    No answer, 429 and 5xx (the issuer or its node is busy or down) are transient, except
    `issuance.failed`; every other refusal is final.
    """
    transient = exc.status == 0 or exc.status == 429 or exc.status >= 500
    return IssuerCallError(
        f"the issuer answered {exc.status} to {what}: {exc.code}: {exc.message}",
        permanent=not transient or exc.code in _FINAL_ISSUER_CODES,
        code=exc.code,
    )


@contextlib.contextmanager
def _issuer_errors(what: str) -> Iterator[None]:
    try:
        yield
    except ServiceCallError as exc:
        raise issuer_call_error(exc, what) from None
    except WireError as exc:
        raise IssuerCallError(
            f"the issuer's answer to {what} is malformed: {exc}", permanent=False
        ) from None


class HttpIssuer:
    """The issuer service over HTTP, each request signed with the operator's identity key."""

    def __init__(self, base_url: str, identity_key: PrivateKey, timeout: float = 30.0) -> None:
        self._client = IssuerClient(base_url, key=identity_key, timeout=timeout)

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def request_issuance(self, amount: int, idempotency_key: str) -> Issuance:
        """`POST /v1/issuance`; see `Issuer.request_issuance`."""
        with _issuer_errors("an issuance request"):
            return self._client.request_issuance(amount, idempotency_key)

    def notify_redemption(self, txid: str) -> Redemption:
        """`POST /v1/redemptions`; see `Issuer.notify_redemption`."""
        with _issuer_errors(f"redemption {txid}"):
            return self._client.redeem(txid)


class FloatUnavailableError(Rejection):
    """The float cannot cover the amount now and the issuer could not top it up."""

    code = "operator.float_unavailable"
    http_status = 503


@dataclass
class Ledger:
    """The ledger as the operator sees it: one node, its chain id and address prefix."""

    node: NodeClient
    asset: str
    tx_window: int
    chain_id: str = ""
    hrp: str = ""

    def connect(self) -> None:
        """Learn the chain id and address prefix from the node.

        Raises:
            NodeError: the node did not answer.
        """
        status = self.node.status()
        self.chain_id = str(status["chain_id"])
        self.hrp = str(status["hrp"])

    def valid_until(self) -> int:
        """The `valid_until` of a transaction signed now.

        Raises:
            UpstreamError: the node did not answer.
        """
        with upstream_errors("read the height"):
            return int(self.node.status()["height"]) + self.tx_window

    def address(self, key: bytes) -> str:
        """The address of `KeyLock(key)`."""
        return address_of(KeyLock(key=PublicKey(bytes(key))), self.hrp)

    def coins_of(self, key: bytes) -> list[CoinEntry]:
        """The unspent coins of the operator's asset under `KeyLock(key)`.

        Raises:
            UpstreamError: the node did not answer, or not as promised.
        """
        with upstream_errors("list coins"):
            document = self.node.address_coins(self.address(key), limit=10_000)
            try:
                coins = coins_from_json(document)
            except WireError as exc:
                raise UpstreamError(f"the node's coin listing is malformed: {exc}") from None
        return [(cid, coin) for cid, coin in coins if coin.asset == self.asset]

    def balance_of(self, keys: Iterable[bytes]) -> int:
        """The sum of the asset's unspent coins under the `KeyLock`s of `keys`."""
        return sum(coin.amount for key in keys for _, coin in self.coins_of(key))


Settle = Callable[[JournalRow], Answer]


class FloatManager:
    """The float's coins, the lock over spending them, top-ups and redemptions.

    Args:
        store: The operator's book.
        ledger: The node and chain.
        issuer: The issuer (top-ups, redemption notices).
        float_key: Holds the float's coins.
        identity_key: Its public key is the Redeem account.
        policy: Low, target and high marks.
        settle: Submits a pending journal row and settles it (from the service).
    """

    def __init__(
        self,
        store: OperatorStore,
        ledger: Ledger,
        issuer: Issuer,
        float_key: PrivateKey,
        identity_key: PrivateKey,
        policy: FloatPolicy,
        settle: Settle,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.issuer = issuer
        self.float_key = float_key
        self.identity_key = identity_key
        self.policy = policy
        self.settle = settle
        self.lock = threading.RLock()
        """Held by everything that spends float (or hosted) coins."""

    @property
    def public_key(self) -> PublicKey:
        """The float's public key."""
        return PublicKey(self.float_key.public_key)

    # -- coins -------------------------------------------------------------------------------

    def coins(self) -> list[CoinEntry]:
        """Every unspent float coin of the asset on the ledger."""
        return self.ledger.coins_of(self.public_key)

    def available(self, coins: Sequence[CoinEntry] | None = None) -> list[CoinEntry]:
        """The float coins no pending journal row spends."""
        reserved = self.store.reserved_coins()
        listed = self.coins() if coins is None else coins
        return [(cid, coin) for cid, coin in listed if bytes(cid) not in reserved]

    def view(self) -> dict[str, Any]:  # Any: JSON
        """The float as `GET /v1/admin/float` shows it."""
        coins = self.coins()
        reserved = self.store.reserved_coins()
        total = sum(coin.amount for _, coin in coins)
        held = sum(coin.amount for cid, coin in coins if bytes(cid) in reserved)
        return {
            "asset": self.ledger.asset,
            "key": self.public_key.hex(),
            "address": self.ledger.address(self.public_key),
            "total": amount_to_json(total),
            "available": amount_to_json(total - held),
            "reserved": amount_to_json(held),
            "coins": [
                {
                    "coin_id": cid.hex(),
                    "amount": amount_to_json(coin.amount),
                    "reserved": bytes(cid) in reserved,
                }
                for cid, coin in sorted(coins, key=lambda entry: (-entry[1].amount, entry[0]))
            ],
            "policy": {
                "low": amount_to_json(self.policy.low),
                "target": amount_to_json(self.policy.target),
                "high": amount_to_json(self.policy.high),
            },
        }

    def select(self, amount: int) -> Selection:
        """Float coins paying `amount`, topping the float up from the issuer if it is short.

        The caller holds `lock` until the transaction spending them is journaled.

        Raises:
            FloatUnavailableError: the float is short and the issuer gave nothing.
            UpstreamError: the node did not answer.
        """
        topped_up, merges = False, 0
        while True:
            available = self.available()
            try:
                return select_coins(available, self.ledger.asset, amount, max_inputs=_MAX_INPUTS)
            except InsufficientFundsError:
                if topped_up:
                    break
                topped_up = True
                have = sum(coin.amount for _, coin in available)
                self.top_up(self.policy.target + amount - have)
            except TooManyInputsError:
                # Each merge turns up to 64 of the smallest coins into one.
                if merges == _MAX_MERGES or self.merge(available) is None:
                    break
                merges += 1
        raise FloatUnavailableError(
            f"the float cannot pay {amount} now and the issuer did not top it up; try again later",
            amount=amount_to_json(amount),
        )

    # -- movements of the float ---------------------------------------------------------------

    def _open(
        self, kind: str, amount: int, tx: SignedTx | None, reserve: Iterable[bytes]
    ) -> Answer:
        key = f"{kind}-{uuid.uuid4().hex}"
        txid = tx_id(tx.body).hex() if tx is not None else None
        entry = self.store.open_entry(
            scope=FLOAT_SCOPE,
            idempotency_key=key,
            kind=kind,
            amount=amount,
            request_hash=request_hash({"kind": kind, "amount": amount, "txid": txid}),
            tx=encode(tx) if tx is not None else None,
            txid=txid,
            reserve=reserve,
        )
        return self.settle(entry)

    def top_up(self, amount: int) -> Answer:
        """Ask the issuer for `amount` to the float (journaled first; kept if unanswered)."""
        with self.lock:
            log.info("asking the issuer for %d %s", amount, self.ledger.asset)
            return self._open("issuance", amount, None, ())

    def merge(self, available: Sequence[CoinEntry]) -> Answer | None:
        """Merge the smallest float coins into one, when there are too many to pay with."""
        with self.lock:
            chosen = plan_merge(available, self.ledger.asset, _MAX_INPUTS, threshold=1)
            if chosen is None:
                return None
            total = sum(coin.amount for _, coin in chosen)
            tx = make_transfer(
                [(cid, self.float_key) for cid, _ in chosen],
                [(self.public_key, self.ledger.asset, total)],
                self.ledger.valid_until(),
                self.ledger.chain_id,
            )
            return self._open("merge", total, tx, [cid for cid, _ in chosen])

    def redeem(self, amount: int) -> Answer:
        """Redeem exactly `amount` of the float, splitting a coin first if need be.

        Raises:
            InsufficientFundsError: the float holds less than `amount`.
            UpstreamError: the node did not answer.
        """
        with self.lock:
            try:
                selection = select_coins(
                    self.available(), self.ledger.asset, amount, max_inputs=_MAX_INPUTS
                )
            except TooManyInputsError:
                self.merge(self.available())
                selection = select_coins(
                    self.available(), self.ledger.asset, amount, max_inputs=_MAX_INPUTS
                )
            inputs: list[CoinId] = [cid for cid, _ in selection.inputs]
            if selection.change:
                split = make_transfer(
                    [(cid, self.float_key) for cid in inputs],
                    [
                        (self.public_key, self.ledger.asset, amount),
                        (self.public_key, self.ledger.asset, selection.change),
                    ],
                    self.ledger.valid_until(),
                    self.ledger.chain_id,
                )
                answer = self._open("split", selection.total, split, inputs)
                if not answer.is_done:
                    return answer
                inputs = [coin_id(tx_id(split.body), 0)]
            tx = make_redeem(
                self.ledger.asset,
                [(cid, self.float_key) for cid in inputs],
                self.identity_key.public_key,
                self.ledger.valid_until(),
                self.ledger.chain_id,
            )
            log.info("redeeming %d %s", amount, self.ledger.asset)
            return self._open("redeem", amount, tx, inputs)

    def rebalance(self) -> dict[str, Any]:  # Any: JSON
        """Bring the float back between its marks; what was done.

        Pending issuances and redemptions are settled first, so that nothing is asked twice.

        Raises:
            UpstreamError: the node did not answer.
        """
        with self.lock:
            for entry in self.store.pending_entries(["issuance", "redeem", "split", "merge"]):
                self.settle(entry)
            before = sum(coin.amount for _, coin in self.available())
            action, amount, answer = "none", 0, None
            if before < self.policy.low:
                action, amount = "issue", self.policy.target - before
                answer = self.top_up(amount)
            elif before > self.policy.high:
                action, amount = "redeem", before - self.policy.target
                answer = self.redeem(amount)
            after = sum(coin.amount for _, coin in self.available())
        return {
            "action": action,
            "amount": amount_to_json(amount),
            "status": "done" if answer is None else answer.body.get("status", "failed"),
            "result": None if answer is None else answer.body,
            "total_before": amount_to_json(before),
            "total_after": amount_to_json(after),
        }
