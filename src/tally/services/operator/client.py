"""`OperatorClient`: the operator's API for wallets, the CLI and tests.

A self-custody wallet passes its identity `key` (every customer request is signed), a hosted
wallet its bearer `token`, the operator's staff the `admin_token`. Answers are the API's JSON
documents as dicts; amounts in them are decimal strings of minor units, as everywhere in the
services' and the node's APIs (`int(answer["deposit"])` reads one). A refusal raises
`tally.services.common.client.ServiceCallError` with the service's `status` and `code`
(`limit.exceeded`, `funds.insufficient`, `idempotency.conflict`, `auth.forbidden`, ...).

A load, unload or payment the ledger has not confirmed yet answers `{"status": "pending"}`
(HTTP 202); repeating the call with the same idempotency key tells how it ended.
"""

from __future__ import annotations

from collections.abc import Sequence

from tally.crypto.schnorr import PrivateKey
from tally.model.encoding import encode
from tally.model.tx import SignedTx
from tally.services.common.amounts import amount_to_json
from tally.services.common.client import DEFAULT_TIMEOUT, Closing, ServiceClient, to_hex
from tally.services.common.wire import JsonDict

__all__ = ["OperatorClient"]


class OperatorClient(Closing):
    """Calls one operator service as a customer, as its admin, or both.

    Args:
        base_url: The operator's API, such as `http://127.0.0.1:7610`.
        key: A self-custody wallet's identity key; customer calls are signed with it.
        token: A hosted wallet's bearer token.
        admin_token: The operator's admin token, for the `/v1/admin` calls.
        timeout: Seconds each call may take (a load waits for its block).
    """

    def __init__(
        self,
        base_url: str,
        *,
        key: PrivateKey | None = None,
        token: str | None = None,
        admin_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._customer = ServiceClient(self.base_url, key=key, token=token, timeout=timeout)
        self._admin = ServiceClient(self.base_url, token=admin_token, timeout=timeout)

    def close(self) -> None:
        """Close the connection pools."""
        self._customer.close()
        self._admin.close()

    # -- public ------------------------------------------------------------------------------

    def health(self) -> JsonDict:
        """`GET /v1/health`: `{"ok": true}` while the service serves."""
        return dict(self._admin.get("/v1/health"))

    def info(self) -> JsonDict:
        """`GET /v1/info`: name, asset, chain, the float and identity keys, the tiers."""
        return dict(self._admin.get("/v1/info"))

    # -- admin -------------------------------------------------------------------------------

    def create_customer(
        self, name: str, tier: int, wallet_key: bytes | str | None = None
    ) -> JsonDict:
        """Add a customer: self-custody with its wallet's identity key, else hosted.

        Returns:
            `{"customer_id", "name", "tier", "wallet_key"}`, or for a hosted customer
            `{"customer_id", "name", "tier", "token", "hosted_key", "hosted_address"}`; the
            token is shown only this once.
        """
        body: JsonDict = {"name": name, "tier": tier}
        if wallet_key is not None:
            body["wallet_key"] = to_hex(wallet_key)
        return dict(self._admin.post("/v1/admin/customers", body))

    def customers(self) -> list[JsonDict]:
        """Every customer: id, name, tier, hosted, keys and deposit."""
        return list(self._admin.get("/v1/admin/customers")["customers"])

    def customer(self, customer_id: int) -> JsonDict:
        """One customer as `customers()` lists it."""
        return dict(self._admin.get(f"/v1/admin/customers/{customer_id}"))

    def deposit(self, customer_id: int, amount: int, idempotency_key: str) -> JsonDict:
        """Cash paid in at the counter: `{"journal_id", "amount", "deposit", ...}`."""
        return dict(
            self._admin.post(
                f"/v1/admin/customers/{customer_id}/deposit",
                {"amount": amount_to_json(amount), "idempotency_key": idempotency_key},
            )
        )

    def float_status(self) -> JsonDict:
        """`{"asset", "key", "address", "total", "available", "reserved", "coins", "policy"}`."""
        return dict(self._admin.get("/v1/admin/float"))

    def rebalance(self) -> JsonDict:
        """Bring the float between its marks now: `{"action", "amount", "status", ...}`."""
        return dict(self._admin.post("/v1/admin/float/rebalance", {}))

    def journal(self, customer_id: int | None = None) -> list[JsonDict]:
        """Journal rows, newest first, of one customer if given."""
        params = None if customer_id is None else {"customer_id": str(customer_id)}
        return list(self._admin.get("/v1/admin/journal", params=params)["entries"])

    # -- customer ----------------------------------------------------------------------------

    def me(self) -> JsonDict:
        """The caller's tier, limits, deposit, known wallet balance and keys."""
        return dict(self._customer.get("/v1/me"))

    def history(self) -> list[JsonDict]:
        """The caller's journal rows, newest first."""
        return list(self._customer.get("/v1/me/history")["entries"])

    def register_keys(self, keys: Sequence[bytes | str]) -> list[str]:
        """Register receive keys of the caller's wallet; all its keys after it."""
        answer = self._customer.post("/v1/me/keys", {"keys": [to_hex(key) for key in keys]})
        return list(answer["keys"])

    def load(self, amount: int, idempotency_key: str, to: bytes | str | None = None) -> JsonDict:
        """Move `amount` from the deposit to the wallet key `to` (a hosted wallet omits it).

        Returns:
            `{"journal_id", "kind": "load", "status", "amount", "to", "txid", "height",
            "deposit"}`.
        """
        body: JsonDict = {"amount": amount_to_json(amount), "idempotency_key": idempotency_key}
        if to is not None:
            body["to"] = to_hex(to)
        return dict(self._customer.post("/v1/me/load", body))

    def unload(
        self,
        idempotency_key: str,
        *,
        tx: SignedTx | bytes | None = None,
        amount: int | None = None,
    ) -> JsonDict:
        """Pay coins into the operator's float and have the deposit credited with them.

        Args:
            idempotency_key: The request's key.
            tx: A signed transfer paying the float (self-custody wallets).
            amount: What to unload; a hosted wallet gives only this, a self-custody wallet
                may give it as a check of what `tx` pays.

        Returns:
            `{"journal_id", "kind": "unload", "status", "amount", "txid", "height",
            "deposit"}`.
        """
        body: JsonDict = {"idempotency_key": idempotency_key}
        if tx is not None:
            raw = encode(tx) if isinstance(tx, SignedTx) else bytes(tx)
            body["tx"] = raw.hex()
        if amount is not None:
            body["amount"] = amount_to_json(amount)
        return dict(self._customer.post("/v1/me/unload", body))

    def pay(self, to: bytes | str, amount: int, idempotency_key: str) -> JsonDict:
        """Pay from a hosted wallet to the key `to`.

        Returns:
            `{"journal_id", "kind": "pay", "status", "amount", "to", "txid", "height"}`.
        """
        return dict(
            self._customer.post(
                "/v1/me/pay",
                {
                    "to": to_hex(to),
                    "amount": amount_to_json(amount),
                    "idempotency_key": idempotency_key,
                },
            )
        )
