"""Offline locks: hops at any height, online spends after unlock, double spends, barred keys."""

from __future__ import annotations

import pytest

from tally.crypto import MerkleProof
from tally.model import (
    Coin,
    DoubleSpendProof,
    Header,
    Receipt,
    Signature,
    SignedTx,
    Witness,
    coin_id,
    tx_id,
)
from tally.rules import (
    DoubleSpend,
    DoubleSpendError,
    DoubleSpendProofError,
    InclusionProofError,
    InvalidSignatureError,
    OfflineBarredError,
    OfflineLockedError,
    OfflineRedeemError,
    SignerIndexError,
    StateDelta,
    barred_element,
    is_offline_hop,
    tx_inclusion_proof,
    verify_double_spend_proof,
    verify_tx_inclusion,
)

from .helpers import (
    ALICE,
    BOB,
    CAROL,
    CHAIN_ID,
    DAVE,
    MALLORY,
    Ledger,
    coin,
    escrow_lock,
    expect_rejection,
    key,
    key_lock,
    make_issue,
    make_redeem,
    make_transfer,
    offline_lock,
    outputs_of,
    owner,
    payee,
    pub,
    sign,
)

UNLOCK = 6
"""The purse's unlock height; the fixture leaves the ledger at height 2."""
AMOUNT = 5_000


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def purse(ledger: Ledger):
    """Alice's 50.00 CNY offline coin, locked until height 6; the ledger is at height 2."""
    (funds,) = ledger.fund(ALICE, "CNY", AMOUNT)
    fund = make_transfer(
        [(funds, owner(ALICE))], [coin("CNY", AMOUNT, offline_lock(ALICE, UNLOCK))]
    )
    assert ledger.commit(fund).codes == ["ok"]
    assert ledger.height == 2
    (cid,) = outputs_of(fund)
    return cid


def hop(cid, to: int, *, unlock: int = UNLOCK, paid: int = 3_520, payer: int = ALICE, **kwargs):
    """An offline hop: `paid` to `to` and the change back to `payer`, both offline."""
    outputs = [coin("CNY", paid, offline_lock(to, unlock))]
    if paid < AMOUNT:
        outputs.append(coin("CNY", AMOUNT - paid, offline_lock(payer, unlock)))
    return make_transfer([(cid, owner(payer))], outputs, **kwargs)


# -- the spend rule ---------------------------------------------------------------------


def test_offline_hop_is_allowed_before_unlock(ledger, purse):
    tx = hop(purse, BOB)
    assert ledger.commit(tx).codes == ["ok"]
    paid, change = outputs_of(tx)
    assert ledger.view.coins[paid] == coin("CNY", 3_520, offline_lock(BOB, UNLOCK))
    assert ledger.view.coins[change] == coin("CNY", 1_480, offline_lock(ALICE, UNLOCK))


def test_offline_hop_is_allowed_after_unlock_and_may_unlock_later(ledger, purse):
    ledger.advance_to(UNLOCK + 3)
    assert ledger.commit(hop(purse, BOB, unlock=UNLOCK + 100)).codes == ["ok"]


def test_spending_online_before_unlock_is_refused_with_offline_locked(ledger, purse):
    tx = make_transfer([(purse, owner(ALICE))], [coin("CNY", AMOUNT, BOB)])
    error = expect_rejection(ledger, tx, OfflineLockedError)
    assert (error.detail["unlock_height"], error.detail["height"]) == (UNLOCK, 3)


def test_at_the_unlock_height_itself_the_coin_is_still_locked(ledger, purse):
    ledger.advance_to(UNLOCK - 1)
    tx = make_transfer([(purse, owner(ALICE))], [coin("CNY", AMOUNT, BOB)])
    expect_rejection(ledger, tx, OfflineLockedError)


def test_spending_online_after_unlock_is_allowed(ledger, purse):
    ledger.advance_to(UNLOCK)
    tx = make_transfer([(purse, owner(ALICE))], [coin("CNY", AMOUNT, BOB)])
    assert ledger.commit(tx).codes == ["ok"]
    assert ledger.view.coins[outputs_of(tx)[0]] == coin("CNY", AMOUNT, BOB)


def test_a_hop_output_unlocking_earlier_is_not_a_hop(ledger, purse):
    tx = hop(purse, BOB, unlock=UNLOCK - 1)
    expect_rejection(ledger, tx, OfflineLockedError)


def test_a_hop_with_one_ordinary_output_is_not_a_hop(ledger, purse):
    outputs = [coin("CNY", 4_000, offline_lock(BOB, UNLOCK)), coin("CNY", 1_000, ALICE)]
    tx = make_transfer([(purse, owner(ALICE))], outputs)
    expect_rejection(ledger, tx, OfflineLockedError)


def test_a_hop_into_an_escrow_is_refused_before_unlock(ledger, purse):
    tx = make_transfer(
        [(purse, owner(ALICE))], [coin("CNY", AMOUNT, escrow_lock(ALICE, BOB, UNLOCK))]
    )
    expect_rejection(ledger, tx, OfflineLockedError)


def test_is_offline_hop_reads_every_output():
    tx = hop(coin_id(bytes(32), 0), BOB)
    assert is_offline_hop(tx.body, UNLOCK)
    assert not is_offline_hop(tx.body, UNLOCK + 1)


def test_a_hop_signed_by_another_key_is_refused(ledger, purse):
    tx = make_transfer(
        [(purse, owner(MALLORY))], [coin("CNY", AMOUNT, offline_lock(MALLORY, UNLOCK))]
    )
    expect_rejection(ledger, tx, InvalidSignatureError)


def test_capture_of_an_offline_coin_by_a_second_signer_is_refused(ledger, purse):
    # An escrow's payee captures as signer 1; an offline coin has no signer but its owner.
    tx = make_transfer([(purse, payee(BOB))], [coin("CNY", AMOUNT, BOB)])
    expect_rejection(ledger, tx, SignerIndexError)
    ledger.advance_to(UNLOCK + 1)
    expect_rejection(ledger, tx, SignerIndexError)


def test_redeeming_an_offline_coin_is_refused_before_and_after_unlock(ledger, purse):
    tx = make_redeem("CNY", [(purse, owner(ALICE))])
    error = expect_rejection(ledger, tx, OfflineRedeemError)
    assert error.detail == {"kind": "Redeem"}
    ledger.advance_to(UNLOCK + 1)
    expect_rejection(ledger, tx, OfflineRedeemError)


# -- double spends ----------------------------------------------------------------------


def test_second_spend_by_the_owner_is_recorded_as_a_double_spend_and_bars_the_owner(ledger, purse):
    first, second = hop(purse, BOB), hop(purse, CAROL)
    assert ledger.commit(first).codes == ["ok"]
    coins_before = dict(ledger.view.coins)
    block = ledger.commit(second)
    assert block.codes == [DoubleSpendError.code] == ["offline.double_spend"]
    delta = block.outcome.delta
    # Not applied: no coin spent or created, nothing entered the idempotency table.
    assert (delta.created, delta.spent, delta.committed) == ({}, {}, {})
    assert ledger.view.coins == coins_before
    evidence = DoubleSpend(
        owner=pub(ALICE), coin_id=purse, first=tx_id(first.body), second=tx_id(second.body)
    )
    assert delta.barred == [pub(ALICE)]
    assert delta.double_spends == [evidence]
    assert ledger.view.barred == {pub(ALICE)}
    # The barred key is part of the state commitment.
    assert ledger.view.commitment() == ledger.view.recompute_commitment()
    without = ledger.blocks[-2].outcome.commitment.copy()
    without.add(barred_element(pub(ALICE)))
    assert ledger.view.commitment() == without


def test_double_spend_within_one_block_records_the_later_one(ledger, purse):
    first, second = hop(purse, BOB), hop(purse, CAROL)
    block = ledger.commit(first, second)
    assert block.codes == ["ok", "offline.double_spend"]
    assert block.outcome.delta.double_spends == [
        DoubleSpend(
            owner=pub(ALICE), coin_id=purse, first=tx_id(first.body), second=tx_id(second.body)
        )
    ]
    assert set(block.outcome.delta.created) == set(outputs_of(first))
    assert ledger.view.commitment() == ledger.view.recompute_commitment()


def test_online_spend_after_an_offline_hop_is_a_double_spend_too(ledger, purse):
    assert ledger.commit(hop(purse, BOB)).codes == ["ok"]
    ledger.advance_to(UNLOCK + 1)
    online = make_transfer([(purse, owner(ALICE))], [coin("CNY", AMOUNT, ALICE)])
    assert ledger.commit(online).codes == ["offline.double_spend"]
    assert ledger.view.barred == {pub(ALICE)}


def test_validate_tx_orders_a_double_spend_rather_than_refusing_it(ledger, purse):
    ledger.commit(hop(purse, BOB))
    ledger.validate(hop(purse, CAROL))  # admission: no rejection
    assert ledger.dry_run(hop(purse, CAROL)).receipts == [Receipt(code="offline.double_spend")]


def test_second_spend_with_a_forged_signature_is_just_input_spent(ledger, purse):
    ledger.commit(hop(purse, BOB))
    forged = make_transfer(
        [(purse, owner(MALLORY))], [coin("CNY", AMOUNT, offline_lock(MALLORY, UNLOCK))]
    )
    assert ledger.commit(forged).codes == ["input.spent"]
    garbage = SignedTx(
        body=hop(purse, CAROL).body,
        witnesses=(Witness(signatures=(Signature(signer=0, sig=bytes(64)),)),),
    )
    assert ledger.commit(garbage).codes == ["input.spent"]
    assert ledger.view.barred == set()


def test_second_spend_of_an_ordinary_coin_is_input_spent_and_bars_nobody(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 10)
    first = make_transfer([(a, owner(ALICE))], [coin("CNY", 10, BOB)])
    second = make_transfer([(a, owner(ALICE))], [coin("CNY", 10, CAROL)])
    assert ledger.commit(first, second).codes == ["ok", "input.spent"]
    assert ledger.view.barred == set()


def test_replaying_the_first_spend_is_tx_replayed_not_a_double_spend(ledger, purse):
    first = hop(purse, BOB)
    ledger.commit(first)
    assert ledger.commit(first).codes == ["tx.replayed"]
    assert ledger.view.barred == set()


def test_a_second_double_spend_keeps_evidence_but_bars_once(ledger, purse):
    first, second = hop(purse, BOB), hop(purse, CAROL)
    ledger.commit(first, second)
    third = hop(purse, DAVE)
    block = ledger.commit(third, second)  # `second` ordered again: the same evidence
    assert block.codes == ["offline.double_spend", "offline.double_spend"]
    assert block.outcome.delta.barred == []
    assert [d.second for d in block.outcome.delta.double_spends] == [
        tx_id(third.body),
        tx_id(second.body),
    ]
    assert ledger.view.commitment() == ledger.view.recompute_commitment()


def test_one_double_spend_ordered_twice_in_a_block_is_recorded_once(ledger, purse):
    first, second = hop(purse, BOB), hop(purse, CAROL)
    block = ledger.commit(first, second, second)
    assert block.codes == ["ok", "offline.double_spend", "offline.double_spend"]
    assert len(block.outcome.delta.double_spends) == 1
    assert block.outcome.delta.barred == [pub(ALICE)]


def test_a_double_spend_of_a_later_input_is_found_after_valid_earlier_inputs(ledger, purse):
    (extra,) = ledger.fund(ALICE, "CNY", 100)
    ledger.commit(hop(purse, BOB))
    both = make_transfer(
        [(extra, owner(ALICE)), (purse, owner(ALICE))],
        [coin("CNY", AMOUNT + 100, offline_lock(CAROL, UNLOCK))],
    )
    assert ledger.commit(both).codes == ["offline.double_spend"]
    assert extra in ledger.view.coins  # nothing of it applied


# -- barred keys ------------------------------------------------------------------------


@pytest.fixture
def barred(ledger, purse):
    """Alice double-spent her purse coin and is barred; Bob holds her first hop's payment."""
    first = hop(purse, BOB)
    assert ledger.commit(first, hop(purse, CAROL)).codes == ["ok", "offline.double_spend"]
    return outputs_of(first)


def test_a_barred_key_cannot_receive_an_offline_output_from_anyone(ledger, barred):
    bob_coin, _ = barred
    to_alice = make_transfer(
        [(bob_coin, owner(BOB))], [coin("CNY", 3_520, offline_lock(ALICE, UNLOCK))]
    )
    error = expect_rejection(ledger, to_alice, OfflineBarredError)
    assert error.detail == {"owner": pub(ALICE).hex()}


def test_a_barred_key_cannot_be_issued_offline_money(ledger, barred):
    tx = make_issue("CNY", [coin("CNY", 10, offline_lock(ALICE, 50))], nonce=ledger.next_nonce())
    expect_rejection(ledger, tx, OfflineBarredError)


def test_a_barred_key_cannot_fund_its_own_purse(ledger, barred):
    (funds,) = ledger.fund(ALICE, "CNY", 10)
    tx = make_transfer([(funds, owner(ALICE))], [coin("CNY", 10, offline_lock(ALICE, 50))])
    expect_rejection(ledger, tx, OfflineBarredError)


def test_a_barred_key_still_receives_ordinary_coins_and_others_still_go_offline(ledger, barred):
    bob_coin, _ = barred
    ledger.advance_to(UNLOCK)
    tx = make_transfer(
        [(bob_coin, owner(BOB))],
        [coin("CNY", 20, ALICE), coin("CNY", 3_500, offline_lock(CAROL, UNLOCK + 10))],
    )
    assert ledger.commit(tx).codes == ["ok"]


def test_a_key_barred_earlier_in_the_block_refuses_later_offline_outputs(ledger, purse):
    (funds,) = ledger.fund(BOB, "CNY", 10)
    to_alice = make_transfer([(funds, owner(BOB))], [coin("CNY", 10, offline_lock(ALICE, 50))])
    block = ledger.commit(hop(purse, BOB), hop(purse, CAROL), to_alice)
    assert block.codes == ["ok", "offline.double_spend", "offline.barred"]


# -- double-spend proofs ----------------------------------------------------------------


def proof_of(first: SignedTx, second: SignedTx, cid, **changes) -> DoubleSpendProof:
    fields = {"chain_id": CHAIN_ID, "coin_id": cid, "owner": pub(ALICE)}
    fields.update(changes)
    return DoubleSpendProof(first=first, second=second, **fields)


def test_a_proof_of_two_owner_signed_spends_verifies(purse):
    verify_double_spend_proof(proof_of(hop(purse, BOB), hop(purse, CAROL), purse))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("same_tx", "both spends are transaction"),
        ("other_coin", "does not spend coin"),
        ("other_owner", "signature is not by key"),
        ("other_chain", "signature is not by key"),
        ("bad_signature", "signature is not by key"),
        ("second_signer", "not one signature by the owner"),
        ("redeem", "not a Transfer"),
    ],
)
def test_a_proof_that_does_not_hold_is_refused(purse, change, reason):
    first, second = hop(purse, BOB), hop(purse, CAROL)
    cid, changes = purse, dict[str, object]()
    if change == "same_tx":
        second = first
    elif change == "other_coin":
        cid = coin_id(tx_id(first.body), 0)
    elif change == "other_owner":
        changes["owner"] = pub(BOB)
    elif change == "other_chain":
        changes["chain_id"] = "another-chain"
    elif change == "bad_signature":
        sig = bytearray(second.witnesses[0].signatures[0].sig)
        sig[5] ^= 1
        second = SignedTx(
            body=second.body,
            witnesses=(Witness(signatures=(Signature(signer=0, sig=bytes(sig)),)),),
        )
    elif change == "second_signer":
        second = sign(second.body, [((1, key(ALICE)),)])
    else:
        second = make_redeem("CNY", [(purse, owner(ALICE))])
    with pytest.raises(DoubleSpendProofError, match=reason) as caught:
        verify_double_spend_proof(proof_of(first, second, cid, **changes))
    assert caught.value.code == "offline.proof_invalid"


def test_a_proof_without_a_witness_for_the_coin_is_refused(purse):
    first = hop(purse, BOB)
    bare = SignedTx(body=hop(purse, CAROL).body, witnesses=())
    with pytest.raises(DoubleSpendProofError, match="no witness"):
        verify_double_spend_proof(proof_of(first, bare, purse))


# -- inclusion proofs -------------------------------------------------------------------


@pytest.fixture
def included(ledger):
    """A block of three transactions (one rejected); the middle one's inclusion data."""
    (a,) = ledger.fund(ALICE, "CNY", 100)
    pay = make_transfer([(a, owner(ALICE))], [coin("CNY", 100, offline_lock(BOB, 9))])
    theft = make_transfer([(a, owner(MALLORY))], [coin("CNY", 100, MALLORY)])
    other = make_issue("CNY", [coin("CNY", 7, CAROL)], nonce=ledger.next_nonce())
    block = ledger.commit(other, pay, theft).block
    proof = tx_inclusion_proof([tx_id(t.body) for t in block.txs], block.receipts, 1)
    return block.header, pay, block.receipts[1], proof


def test_verify_tx_inclusion_accepts_the_path_of_every_transaction(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 100)
    txs = [make_issue("CNY", [coin("CNY", i + 1, BOB)], nonce=100 + i) for i in range(5)]
    txs.append(make_transfer([(a, owner(ALICE))], [coin("CNY", 100, key_lock(BOB))]))
    block = ledger.commit(*txs).block
    ids = [tx_id(t.body) for t in block.txs]
    for index, tx in enumerate(block.txs):
        proof = tx_inclusion_proof(ids, block.receipts, index)
        verify_tx_inclusion(block.header, tx, block.receipts[index], index, proof)


def test_verify_tx_inclusion_accepts_the_real_data(included):
    header, tx, receipt, proof = included
    assert receipt.accepted
    verify_tx_inclusion(header, tx, receipt, 1, proof)


def test_inclusion_with_another_index_is_refused(included):
    header, tx, receipt, proof = included
    for index in (0, 2, 3, -1):
        with pytest.raises(InclusionProofError):
            verify_tx_inclusion(header, tx, receipt, index, proof)
    moved = MerkleProof(index=0, leaf_count=3, siblings=proof.siblings)
    with pytest.raises(InclusionProofError):
        verify_tx_inclusion(header, tx, receipt, 0, moved)


def test_inclusion_with_another_receipt_or_tx_is_refused(included, ledger):
    header, tx, _, proof = included
    with pytest.raises(InclusionProofError, match="do not lead"):
        verify_tx_inclusion(header, tx, Receipt(code="input.spent"), 1, proof)
    other = make_transfer([(coin_id(bytes(32), 0), owner(ALICE))], [coin("CNY", 1, BOB)])
    with pytest.raises(InclusionProofError, match="do not lead"):
        verify_tx_inclusion(header, other, Receipt(code="ok"), 1, proof)


def test_inclusion_against_another_header_is_refused(included):
    header, tx, receipt, proof = included
    fields = {f: getattr(header, f) for f in header.__struct_fields__}
    root = Header(**{**fields, "tx_root": bytes(32)})
    with pytest.raises(InclusionProofError, match="do not lead"):
        verify_tx_inclusion(root, tx, receipt, 1, proof)
    count = Header(**{**fields, "tx_count": 4})
    with pytest.raises(InclusionProofError, match="not 1 of the header's 4"):
        verify_tx_inclusion(count, tx, receipt, 1, proof)


def test_inclusion_with_a_forged_leaf_count_is_refused(included):
    header, tx, receipt, proof = included
    shorter = MerkleProof(index=1, leaf_count=2, siblings=proof.siblings)
    with pytest.raises(InclusionProofError):
        verify_tx_inclusion(header, tx, receipt, 1, shorter)


def test_offline_coin_and_rules_stay_in_the_empty_delta_on_refusal(ledger, purse):
    tx = make_transfer([(purse, owner(ALICE))], [coin("CNY", AMOUNT, BOB)])
    assert ledger.dry_run(tx).delta == StateDelta()


def test_offline_outputs_are_plain_coins_for_balance(ledger, purse):
    tx = make_transfer(
        [(purse, owner(ALICE))],
        [Coin(asset="CNY", amount=AMOUNT + 1, lock=offline_lock(BOB, UNLOCK))],
    )
    assert ledger.commit(tx).codes == ["value.unbalanced"]
