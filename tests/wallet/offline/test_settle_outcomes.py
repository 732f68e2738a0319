"""How settlement reads each answer of the node, with a scripted node in place of a real one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tally.client import NodeRejection
from tally.model import encode, tx_id
from tally.model.offline import DoubleSpendProof
from tally.wallet.offline.messages import encode_message
from tally.wallet.offline.settlement import settle_payments
from tally.wallet.offline.store import (
    DOUBLE_SPEND,
    FAILED,
    RECEIVED,
    SETTLED,
    UNSETTLED,
    HelloRecord,
    OfflineStore,
)
from tests.rules.helpers import ALICE, BOB, CAROL, CHAIN_ID, pub

from .chains import owner_of, pay, purse


class ScriptedNode:
    """Answers each hop as scripted: a receipt code, a refusal, or no block yet."""

    def __init__(self, answers, proofs=()):
        self.answers = answers
        self.proofs = list(proofs)
        self.submitted = []

    def submit(self, tx, wait=True):
        txid = tx_id(tx.body)
        self.submitted.append(txid)
        answer = self.answers.get(txid, "ok")
        if isinstance(answer, NodeRejection):
            raise answer
        if answer == "pending":
            return {"txid": txid.hex(), "status": "pending"}
        status = "committed" if answer == "ok" else "rejected"
        return {"txid": txid.hex(), "status": status, "height": 9, "receipt": {"code": answer}}

    def double_spend_proofs(self, owner):
        return {
            "owner": owner.hex(),
            "barred": True,
            "proofs": [encode(p).hex() for p in self.proofs],
        }


def received(store: OfflineStore, paid, now_ms: int = 1) -> bytes:
    payment_id = tx_id(paid.payment.chain.hops[-1].body)
    store.add_hello(
        HelloRecord(
            nonce=paid.payee_hello.nonce,
            role="payee",
            key_index=1,
            raw=encode_message(paid.payee_hello),
            used_by=None,
        ),
        1,
    )
    store.record_received(
        paid.payment, payment_id, paid.received, pub(ALICE), paid.payee_hello.nonce, 40, now_ms
    )
    return payment_id


@pytest.fixture
def store(tmp_path: Path):
    with OfflineStore.open(tmp_path / "offline.sqlite") as opened:
        yield opened


def test_each_answer_gives_its_status_and_a_hop_is_submitted_once(store):
    [a] = purse(ALICE, [5000])
    [b] = purse(ALICE, [4000])
    [c] = purse(ALICE, [3000])
    [d] = purse(ALICE, [2000])
    first = pay([a], ALICE, BOB, 100)
    onward = pay([first.received], BOB, CAROL, 50)
    busy = pay([b], ALICE, BOB, 100)
    late = pay([c], ALICE, BOB, 100)
    waiting = pay([d], ALICE, BOB, 100)
    ids = [received(store, p, n) for n, p in enumerate((first, onward, busy, late, waiting))]
    hop = lambda p: tx_id(p.payment.chain.hops[-1].body)  # noqa: E731
    node = ScriptedNode(
        {
            hop(busy): NodeRejection("mempool.full", "full", {}, 503),
            hop(late): NodeRejection("window.expired", "too late", {}, 400),
            hop(waiting): "pending",
        }
    )
    report = settle_payments(node, store, store.payments(status=UNSETTLED), lambda: 5)
    assert report.settled == ids[:2]
    assert report.unsettled == [ids[2], ids[4]]
    assert report.failed == [(ids[3], "window.expired")]
    # The onward payment's first hop was settled with the first payment: sent once.
    assert node.submitted.count(hop(first)) == 1
    statuses = {p.payment_id: p.status for p in store.payments(direction=RECEIVED)}
    assert [statuses[i] for i in ids] == [SETTLED, SETTLED, UNSETTLED, FAILED, UNSETTLED]


def test_a_double_spend_keeps_the_verified_proof_and_bars_the_owner(store):
    [coin] = purse(ALICE, [5000])
    honest = pay([coin], ALICE, BOB, 1000)
    cheat = pay([coin], ALICE, CAROL, 2000)
    payment_id = received(store, cheat)
    first, second = honest.payment.chain.hops[0], cheat.payment.chain.hops[0]
    good = DoubleSpendProof(
        chain_id=CHAIN_ID,
        coin_id=coin.coin_id,
        owner=owner_of(coin.coin),
        first=first,
        second=second,
    )
    forged = DoubleSpendProof(
        chain_id=CHAIN_ID, coin_id=coin.coin_id, owner=pub(BOB), first=first, second=second
    )
    node = ScriptedNode({tx_id(second.body): "offline.double_spend"}, proofs=[forged, good])
    report = settle_payments(node, store, store.payments(), lambda: 5)
    assert report.double_spends == [(payment_id, good)]
    [record] = store.payments()
    assert (record.status, record.proof) == (DOUBLE_SPEND, encode(good))
    assert store.barred() == {owner_of(coin.coin): encode(good)}
