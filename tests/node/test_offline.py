"""Offline money through a real in-process node: double spends, barred keys, proofs, inclusion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any  # Any: the API's JSON answers

import pytest
from starlette.testclient import TestClient

from tally.consensus.solo import SoloOrderer
from tally.crypto import MerkleProof, verify
from tally.model import (
    CommitCertificate,
    DoubleSpendProof,
    Header,
    Receipt,
    Signature,
    SignedTx,
    TxInclusionProof,
    Witness,
    block_hash,
    coin_id,
    decode,
    encode,
    tx_id,
)
from tally.node.core import BlockProposal, Node
from tally.node.errors import MempoolConflictError
from tally.rules import (
    DoubleSpendProofError,
    InclusionProofError,
    OfflineBarredError,
    check_certificate,
    verify_double_spend_proof,
    verify_tx_inclusion,
)
from tally.store.ledger import LedgerStore
from tally.store.memory import MemoryStore
from tests.rules.helpers import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    MEMBER,
    coin,
    key,
    make_genesis,
    make_issue,
    make_transfer,
    offline_lock,
    outputs_of,
    owner,
    pub,
)

UNLOCK = 80
AMOUNT = 5_000


def _submit(api: TestClient, tx: SignedTx) -> Any:
    response = api.post(
        "/v1/txs?wait=commit",
        content=encode(tx),
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def _hop(purse: bytes, to: int, paid: int = 3_520) -> SignedTx:
    """Alice hands `paid` of her purse coin to `to` offline, keeping the change offline."""
    return make_transfer(
        [(purse, owner(ALICE))],
        [
            coin("CNY", paid, offline_lock(to, UNLOCK)),
            coin("CNY", AMOUNT - paid, offline_lock(ALICE, UNLOCK)),
        ],
    )


def _fund_purse(api: TestClient) -> tuple[SignedTx, bytes]:
    issue = make_issue("CNY", [coin("CNY", AMOUNT, ALICE)], nonce=1)
    assert _submit(api, issue)["status"] == "committed"
    fund = make_transfer(
        [(outputs_of(issue)[0], owner(ALICE))], [coin("CNY", AMOUNT, offline_lock(ALICE, UNLOCK))]
    )
    assert _submit(api, fund)["status"] == "committed"
    return fund, outputs_of(fund)[0]


@dataclass
class DoubleSpent:
    purse: bytes
    first: SignedTx
    second: SignedTx
    first_result: Any
    second_result: Any


@pytest.fixture
def double_spent(api: TestClient) -> DoubleSpent:
    """Alice pays Bob and then Carol with the same purse coin; both hops settle."""
    _, purse = _fund_purse(api)
    first, second = _hop(purse, BOB), _hop(purse, CAROL, paid=2_000)
    return DoubleSpent(purse, first, second, _submit(api, first), _submit(api, second))


def test_the_second_hop_is_ordered_as_a_double_spend_and_the_owner_is_barred(
    api: TestClient, double_spent: DoubleSpent
) -> None:
    assert double_spent.first_result["status"] == "committed"
    second = double_spent.second_result
    assert second["status"] == "rejected"
    assert second["receipt"] == {"accepted": False, "code": "offline.double_spend"}
    assert second["height"] > double_spent.first_result["height"]
    shown = api.get(f"/v1/txs/{second['txid']}").json()
    assert shown["receipt"]["code"] == "offline.double_spend"
    purse = api.get(f"/v1/coins/{double_spent.purse.hex()}").json()
    assert purse["spent_by"] == tx_id(double_spent.first.body).hex()
    assert purse["lock"] == {
        "kind": "offline",
        "owner": pub(ALICE).hex(),
        "unlock_height": UNLOCK,
        "address": purse["lock"]["address"],
    }
    # Carol got nothing: the double spend's outputs were never created.
    carol = api.get(f"/v1/coins/{coin_id(tx_id(double_spent.second.body), 0).hex()}")
    assert carol.status_code == 404


def test_a_barred_owner_can_no_longer_receive_offline_money(
    api: TestClient, double_spent: DoubleSpent
) -> None:
    bob_coin = outputs_of(double_spent.first)[0]
    back_to_alice = make_transfer(
        [(bob_coin, owner(BOB))], [coin("CNY", 3_520, offline_lock(ALICE, UNLOCK))]
    )
    response = api.post("/v1/txs?wait=commit", json={"tx": encode(back_to_alice).hex()})
    assert response.status_code == 403
    assert response.json()["code"] == "offline.barred"
    to_dave = make_transfer(
        [(bob_coin, owner(BOB))], [coin("CNY", 3_520, offline_lock(DAVE, UNLOCK))]
    )
    assert _submit(api, to_dave)["status"] == "committed"


def _proofs(api: TestClient, owner_index: int) -> Any:
    response = api.get(f"/v1/offline/barred/{pub(owner_index).hex()}")
    assert response.status_code == 200, response.text
    return response.json()


def test_the_barred_route_gives_a_proof_a_third_party_verifies(
    api: TestClient, double_spent: DoubleSpent
) -> None:
    view = _proofs(api, ALICE)
    assert (view["owner"], view["barred"]) == (pub(ALICE).hex(), True)
    (text,) = view["proofs"]
    proof = decode(bytes.fromhex(text), DoubleSpendProof)
    verify_double_spend_proof(proof)
    assert (proof.chain_id, proof.coin_id, proof.owner) == (
        "tally-test",
        double_spent.purse,
        pub(ALICE),
    )
    assert (proof.first, proof.second) == (double_spent.first, double_spent.second)
    assert _proofs(api, BOB) == {"owner": pub(BOB).hex(), "barred": False, "proofs": []}


def _tampered(proof: DoubleSpendProof, how: str) -> DoubleSpendProof:
    fields = {f: getattr(proof, f) for f in proof.__struct_fields__}
    if how == "signature":
        signature = proof.second.witnesses[0].signatures[0]
        flipped = bytes([signature.sig[0] ^ 1]) + signature.sig[1:]
        witness = Witness(signatures=(Signature(signer=0, sig=flipped),))
        fields["second"] = SignedTx(body=proof.second.body, witnesses=(witness,))
    elif how == "same_tx":
        fields["second"] = proof.first
    else:
        fields["coin_id"] = coin_id(tx_id(proof.first.body), 0)
    return DoubleSpendProof(**fields)


@pytest.mark.parametrize("how", ["signature", "same_tx", "other_coin"])
def test_a_tampered_proof_is_refused(api: TestClient, double_spent: DoubleSpent, how: str) -> None:
    (text,) = _proofs(api, ALICE)["proofs"]
    proof = decode(bytes.fromhex(text), DoubleSpendProof)
    with pytest.raises(DoubleSpendProofError) as caught:
        verify_double_spend_proof(_tampered(proof, how))
    assert caught.value.code == "offline.proof_invalid"


def test_replaying_a_hop_is_answered_with_its_first_result(
    api: TestClient, double_spent: DoubleSpent
) -> None:
    again = _submit(api, double_spent.first)
    assert again == double_spent.first_result
    assert _submit(api, double_spent.second) == double_spent.second_result
    assert len(_proofs(api, ALICE)["proofs"]) == 1


# -- inclusion -------------------------------------------------------------------------


def _inclusion(api: TestClient, tx: SignedTx) -> Any:
    response = api.get(f"/v1/txs/{tx_id(tx.body).hex()}/inclusion")
    assert response.status_code == 200, response.text
    return response.json()


@dataclass
class Decoded:
    tx: SignedTx
    receipt: Receipt
    index: int
    proof: MerkleProof
    header: Header
    certificate: CommitCertificate


def _decoded(view: Any) -> Decoded:
    return Decoded(
        tx=decode(bytes.fromhex(view["tx"]), SignedTx),
        receipt=decode(bytes.fromhex(view["receipt"]), Receipt),
        index=view["index"],
        proof=decode(bytes.fromhex(view["proof"]), TxInclusionProof),
        header=decode(bytes.fromhex(view["header"]), Header),
        certificate=decode(bytes.fromhex(view["certificate"]), CommitCertificate),
    )


def test_inclusion_answer_is_checked_offline_by_proof_and_certificate(api: TestClient) -> None:
    fund, _ = _fund_purse(api)
    view = _inclusion(api, fund)
    assert set(view) == {
        "txid",
        "height",
        "index",
        "tx",
        "receipt",
        "proof",
        "header",
        "certificate",
    }
    found = _decoded(view)
    assert view["txid"] == tx_id(fund.body).hex()
    assert found.tx == fund
    assert found.receipt.accepted
    assert found.header.height == view["height"]
    verify_tx_inclusion(found.header, found.tx, found.receipt, found.index, found.proof)
    check_certificate(found.certificate, found.header, make_genesis().members, verify)


def test_a_changed_index_receipt_or_header_is_refused(api: TestClient) -> None:
    fund, _ = _fund_purse(api)
    found = _decoded(_inclusion(api, fund))
    fields = {f: getattr(found.header, f) for f in found.header.__struct_fields__}
    cases = [
        (found.header, found.receipt, found.index + 1),
        (found.header, Receipt(code="input.spent"), found.index),
        (Header(**{**fields, "tx_root": bytes(32)}), found.receipt, found.index),
        (Header(**{**fields, "tx_count": found.header.tx_count + 1}), found.receipt, found.index),
    ]
    for header, receipt, index in cases:
        with pytest.raises(InclusionProofError) as caught:
            verify_tx_inclusion(header, found.tx, receipt, index, found.proof)
        assert caught.value.code == "offline.inclusion"


def test_inclusion_of_an_unknown_or_malformed_txid_is_refused(api: TestClient) -> None:
    missing = api.get(f"/v1/txs/{'00' * 32}/inclusion")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    bad = api.get("/v1/txs/xyz/inclusion")
    assert (bad.status_code, bad.json()["code"]) == (400, "request.invalid")
    bad_owner = api.get("/v1/offline/barred/1234")
    assert (bad_owner.status_code, bad_owner.json()["code"]) == (400, "request.invalid")


# -- admission while the first hop is still pending ---------------------------------------


@pytest.fixture
def quiet_node() -> Node:
    """A node whose blocks the test cuts itself (no orderer thread)."""
    return Node.create(LedgerStore.open(MemoryStore()), make_genesis(), key(MEMBER), "member-0")


def _commit(node: Node, proposal: BlockProposal) -> None:
    orderer = SoloOrderer(node, node.key, 0, max_txs=lambda: 100, interval_ms=lambda: 50)
    header = proposal.block.header
    node.commit(proposal, orderer.certify(block_hash(header), header.height))


def _cut(node: Node, time_ms: int) -> BlockProposal:
    proposal = node.propose(100, time_ms)
    assert proposal is not None
    _commit(node, proposal)
    return proposal


def _quiet_purse(node: Node) -> bytes:
    issue = make_issue("CNY", [coin("CNY", AMOUNT, ALICE)], nonce=1)
    node.admit_tx(issue, tx_id(issue.body))
    _cut(node, 1)
    fund = make_transfer(
        [(outputs_of(issue)[0], owner(ALICE))], [coin("CNY", AMOUNT, offline_lock(ALICE, UNLOCK))]
    )
    node.admit_tx(fund, tx_id(fund.body))
    _cut(node, 2)
    return outputs_of(fund)[0]


def test_two_pending_hops_of_one_offline_coin_are_both_ordered(quiet_node: Node) -> None:
    purse = _quiet_purse(quiet_node)
    first, second = _hop(purse, BOB), _hop(purse, CAROL, paid=1)
    first_done = quiet_node.admit_tx(first, tx_id(first.body))
    second_done = quiet_node.admit_tx(second, tx_id(second.body))  # no mempool.conflict
    block = _cut(quiet_node, 3)
    assert [r.code for r in block.outcome.receipts] == ["ok", "offline.double_spend"]
    assert first_done.result(timeout=5).receipt.accepted
    assert second_done.result(timeout=5).receipt.code == "offline.double_spend"
    assert quiet_node.store.is_barred(pub(ALICE))
    assert quiet_node.store.stored_commitment() == quiet_node.store.recompute_commitment()
    assert len(quiet_node.mempool) == 0


def test_a_pending_conflict_over_an_ordinary_coin_is_still_refused(quiet_node: Node) -> None:
    issue = make_issue("CNY", [coin("CNY", 10, ALICE)], nonce=1)
    quiet_node.admit_tx(issue, tx_id(issue.body))
    _cut(quiet_node, 1)
    (alice_coin,) = outputs_of(issue)
    first = make_transfer([(alice_coin, owner(ALICE))], [coin("CNY", 10, BOB)])
    second = make_transfer([(alice_coin, owner(ALICE))], [coin("CNY", 10, CAROL)])
    quiet_node.admit_tx(first, tx_id(first.body))
    with pytest.raises(MempoolConflictError):
        quiet_node.admit_tx(second, tx_id(second.body))


def test_a_double_spend_in_the_block_after_an_unwritten_one_is_recorded(quiet_node: Node) -> None:
    purse = _quiet_purse(quiet_node)
    first, second = _hop(purse, BOB), _hop(purse, CAROL, paid=1)
    quiet_node.admit_tx(first, tx_id(first.body))
    written_later = quiet_node.propose(100, 3)  # executed, not yet written
    assert written_later is not None
    quiet_node.admit_tx(second, tx_id(second.body))
    chained = quiet_node.propose(100, 4)  # runs on top of the unwritten block
    assert chained is not None
    assert [r.code for r in chained.outcome.receipts] == ["offline.double_spend"]
    # Admission reads the written state, where Alice is not barred yet; the next block runs
    # on top of both unwritten ones and refuses her new offline coin.
    funds = make_issue("CNY", [coin("CNY", 7, offline_lock(ALICE, UNLOCK))], nonce=9)
    quiet_node.admit_tx(funds, tx_id(funds.body))
    third = quiet_node.propose(100, 5)
    assert third is not None
    assert [r.code for r in third.outcome.receipts] == ["offline.barred"]
    for proposal in (written_later, chained, third):
        _commit(quiet_node, proposal)
    assert quiet_node.store.is_barred(pub(ALICE))
    again = make_issue("CNY", [coin("CNY", 7, offline_lock(ALICE, UNLOCK))], nonce=10)
    with pytest.raises(OfflineBarredError):
        quiet_node.admit_tx(again, tx_id(again.body))
