"""Settlement: a device back online submits the chains it holds, hop by hop, in order.

Every payment a device sent or received offline carries the whole chain from the ledger to
it. Settling a payment submits each hop of its chain in order and waits for its block:

- `ok`: applied (or applied before: the node answers a transaction it has committed with
  its first result, so settling is idempotent, and every device may settle the same hops in
  any order);
- `offline.double_spend`: the hop spends an offline coin that another transaction already
  spent, both signed by the coin's owner. The ledger ordered it without applying it, barred
  the owner's key and keeps the two transactions as a `DoubleSpendProof`; the device fetches
  that proof (`/v1/offline/barred/{owner}`), checks it from the two signatures alone, keeps
  it as its claim, and learns the key is barred. The hops after it cannot settle;
- any other refusal that will not change (a window passed, an input gone): the payment
  failed, with the node's code;
- a refusal that may pass (`mempool.full`, `mempool.conflict`, `node.stopping`), or a hop
  the node took without a block yet: the payment stays unsettled for the next attempt.

A node that cannot be reached stops settlement with `NodeUnreachable`; whatever was settled
before is recorded, the rest stays unsettled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tally.client.errors import NodeRejection
from tally.client.node_client import NodeClient
from tally.model.block import ACCEPTED
from tally.model.coin import Coin, coin_id
from tally.model.encoding import encode, tx_id
from tally.model.lock import OfflineLock
from tally.model.offline import DoubleSpendProof, decode_double_spend_proof
from tally.model.params import Params
from tally.model.rejection import Rejection
from tally.model.tx import SignedTx, Transfer
from tally.model.types import CoinId, PublicKey, TxId
from tally.rules.offline import verify_double_spend_proof
from tally.wallet.offline.chain import root_outputs
from tally.wallet.offline.messages import TrustChain
from tally.wallet.offline.store import (
    DOUBLE_SPEND,
    FAILED,
    SETTLED,
    OfflineStore,
    PaymentRecord,
)

__all__ = [
    "DOUBLE_SPEND_CODE",
    "PENDING_CODE",
    "TRANSIENT_CODES",
    "HopOutcome",
    "SettlementReport",
    "settle_payments",
    "fetch_double_spend_proofs",
]

DOUBLE_SPEND_CODE: Final = "offline.double_spend"
"""The receipt code of a hop the ledger ordered as a double spend."""
PENDING_CODE: Final = "pending"
"""What a hop's outcome says when the node took it but gave no block yet."""
TRANSIENT_CODES: Final = frozenset(
    {"mempool.full", "mempool.conflict", "node.stopping", PENDING_CODE}
)
"""Refusals (and answers) after which a later attempt may succeed."""
_PARAMS: Final = Params()
"""The size limits a proof from the node is read under."""


@dataclass(frozen=True)
class HopOutcome:
    """What the ledger made of one hop."""

    txid: TxId
    """The hop."""
    code: str
    """`ok`, `offline.double_spend`, or the refusal's code."""
    height: int | None
    """The block that ordered it, if one did."""
    ordered: bool
    """Whether a block holds it (applied or not); False for a refusal at admission."""


@dataclass
class SettlementReport:
    """What one settlement run did."""

    settled: list[TxId] = field(default_factory=list)
    """Payments whose whole chain is now applied."""
    double_spends: list[tuple[TxId, DoubleSpendProof | None]] = field(default_factory=list)
    """Payments whose chain holds a double spend, with the ledger's proof (verified)."""
    failed: list[tuple[TxId, str]] = field(default_factory=list)
    """Payments the ledger refused for good, with the code."""
    unsettled: list[TxId] = field(default_factory=list)
    """Payments left for a later attempt."""
    hops: dict[TxId, HopOutcome] = field(default_factory=dict)
    """Every hop submitted, by id."""

    def to_json(self) -> dict[str, Any]:
        """A JSON view: hex ids, each proof as hex of its encoding."""
        return {
            "settled": [txid.hex() for txid in self.settled],
            "double_spends": [
                {
                    "payment_id": txid.hex(),
                    "proof": encode(proof).hex() if proof is not None else None,
                    "owner": bytes(proof.owner).hex() if proof is not None else None,
                }
                for txid, proof in self.double_spends
            ],
            "failed": [{"payment_id": txid.hex(), "code": code} for txid, code in self.failed],
            "unsettled": [txid.hex() for txid in self.unsettled],
            "hops": {
                txid.hex(): {"code": outcome.code, "height": outcome.height}
                for txid, outcome in self.hops.items()
            },
        }


def _submit(client: NodeClient, hop: SignedTx) -> HopOutcome:
    txid = tx_id(hop.body)
    try:
        answer = client.submit(hop, wait=True)
    except NodeRejection as rejection:
        return HopOutcome(txid=txid, code=rejection.code, height=None, ordered=False)
    receipt = answer.get("receipt") or {}
    code = receipt.get("code")
    height = answer.get("height")
    return HopOutcome(
        txid=txid,
        code=str(code) if code is not None else PENDING_CODE,
        height=height if isinstance(height, int) else None,
        ordered=isinstance(height, int),
    )


def _input_owners(chain: TrustChain, hop: SignedTx) -> list[PublicKey]:
    """The owners of the coins `hop` spends, as the chain shows them, each once."""
    coins: dict[CoinId, Coin] = {}
    for root in chain.roots:
        coins.update(root_outputs(root))
    for earlier in chain.hops:
        body = earlier.body
        if isinstance(body, Transfer):
            txid = tx_id(body)
            for index, output in enumerate(body.outputs):
                coins[coin_id(txid, index)] = output
    owners: list[PublicKey] = []
    body = hop.body
    if isinstance(body, Transfer):
        for cid in body.inputs:
            coin = coins.get(cid)
            lock = coin.lock if coin is not None else None
            if isinstance(lock, OfflineLock) and lock.owner not in owners:
                owners.append(lock.owner)
    return owners


def fetch_double_spend_proofs(
    client: NodeClient, owners: Sequence[PublicKey], txid: TxId
) -> list[DoubleSpendProof]:
    """The ledger's proofs against `owners` that involve hop `txid`, each checked here.

    A proof that does not verify is left out: it proves nothing to a third party.

    Raises:
        NodeError: the node cannot be reached or refuses.
    """
    found: list[DoubleSpendProof] = []
    for owner in owners:
        view = client.double_spend_proofs(owner)
        for text in view.get("proofs") or []:
            try:
                proof = decode_double_spend_proof(bytes.fromhex(str(text)), _PARAMS)
                verify_double_spend_proof(proof)
            except (Rejection, ValueError):
                continue
            if txid in (tx_id(proof.first.body), tx_id(proof.second.body)):
                found.append(proof)
    return found


def settle_payments(
    client: NodeClient,
    store: OfflineStore,
    payments: Sequence[PaymentRecord],
    now_ms: Callable[[], int],
) -> SettlementReport:
    """Submit the chains of `payments`, hop by hop in order, and record each outcome.

    Args:
        client: The node.
        store: The device's offline store: statuses, proofs and barred keys go there.
        payments: The payments to settle, oldest first.
        now_ms: The clock, for the records.

    Returns:
        What happened.

    Raises:
        NodeUnreachable: the node stopped answering; what was settled is recorded.
    """
    report = SettlementReport()
    for record in payments:
        chain = record.payment.chain
        outcome: HopOutcome | None = None
        for hop in chain.hops:
            txid = tx_id(hop.body)
            outcome = report.hops.get(txid)
            if outcome is None:
                outcome = report.hops[txid] = _submit(client, hop)
            if outcome.code != ACCEPTED:
                break
        if outcome is None or outcome.code == ACCEPTED:
            store.set_status(record.payment_id, SETTLED, now_ms())
            report.settled.append(record.payment_id)
        elif outcome.code == DOUBLE_SPEND_CODE:
            bad_hop = next(h for h in chain.hops if tx_id(h.body) == outcome.txid)
            proofs = fetch_double_spend_proofs(client, _input_owners(chain, bad_hop), outcome.txid)
            proof = proofs[0] if proofs else None
            for found in proofs:
                store.add_barred(found.owner, encode(found))
            store.set_status(
                record.payment_id,
                DOUBLE_SPEND,
                now_ms(),
                code=DOUBLE_SPEND_CODE,
                proof=encode(proof) if proof is not None else None,
            )
            report.double_spends.append((record.payment_id, proof))
        elif outcome.code in TRANSIENT_CODES:
            report.unsettled.append(record.payment_id)
        else:
            store.set_status(record.payment_id, FAILED, now_ms(), code=outcome.code)
            report.failed.append((record.payment_id, outcome.code))
    return report
