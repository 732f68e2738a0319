"""Escrow: the payee captures up to the amount until expiry, the payer reclaims after."""

import pytest

from tally.model import tx_id
from tally.rules import (
    EscrowCaptureKindError,
    EscrowCaptureShapeError,
    EscrowExpiredError,
    EscrowNotExpiredError,
    EscrowOverCaptureError,
    EscrowRefundError,
    InvalidSignatureError,
    SignerIndexError,
    Supply,
    UnbalancedError,
)

from .helpers import (
    ALICE,
    BOB,
    CAROL,
    CNY,
    MALLORY,
    Ledger,
    coin,
    escrow_lock,
    expect_rejection,
    key,
    make_redeem,
    make_transfer,
    outputs_of,
    owner,
    payee,
    payer,
    pub,
)

EXPIRY = 5
AMOUNT = 50


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def escrowed(ledger):
    """Alice pre-pays 50 CNY to Bob, capturable until height 5; the ledger is at height 2."""
    (funds,) = ledger.fund(ALICE, "CNY", AMOUNT)
    prepay = make_transfer(
        [(funds, owner(ALICE))], [coin("CNY", AMOUNT, escrow_lock(ALICE, BOB, EXPIRY))]
    )
    assert ledger.commit(prepay).codes == ["ok"]
    assert ledger.height == 2
    (cid,) = outputs_of(prepay)
    return cid


def capture(cid, *outputs, spend=None):
    return make_transfer([(cid, payee(BOB) if spend is None else spend)], list(outputs))


def test_partial_capture_pays_captured_part_and_refunds_rest_in_one_transaction(ledger, escrowed):
    tx = capture(escrowed, coin("CNY", 42, CAROL), coin("CNY", 8, ALICE))
    block = ledger.commit(tx)
    assert block.codes == ["ok"]
    payment, refund = outputs_of(tx)
    assert ledger.view.coins == {payment: coin("CNY", 42, CAROL), refund: coin("CNY", 8, ALICE)}
    assert ledger.view.spenders[escrowed] == tx_id(tx.body)
    assert ledger.view.supplies[CNY] == Supply(issued=AMOUNT, redeemed=0)


def test_full_capture_needs_no_refund(ledger, escrowed):
    tx = capture(escrowed, coin("CNY", AMOUNT, BOB))
    assert ledger.commit(tx).codes == ["ok"]
    assert list(ledger.view.coins.values()) == [coin("CNY", AMOUNT, BOB)]


def test_capture_is_allowed_at_the_expiry_height(ledger, escrowed):
    ledger.advance_to(EXPIRY - 1)
    tx = capture(escrowed, coin("CNY", 42, BOB), coin("CNY", 8, ALICE))
    assert ledger.next_context.height == EXPIRY
    assert ledger.commit(tx).codes == ["ok"]


def test_capture_rejects_paying_more_than_escrowed(ledger, escrowed):
    tx = capture(escrowed, coin("CNY", AMOUNT + 1, BOB))
    error = expect_rejection(ledger, tx, EscrowOverCaptureError)
    assert error.code == "escrow.over_capture"
    assert error.detail == {"captured": AMOUNT + 1, "escrowed": AMOUNT}


def test_capture_rejects_after_expiry(ledger, escrowed):
    ledger.advance_to(EXPIRY)
    tx = capture(escrowed, coin("CNY", 42, BOB), coin("CNY", 8, ALICE))
    error = expect_rejection(ledger, tx, EscrowExpiredError)
    assert error.code == "escrow.expired"
    assert error.detail == {"expiry": EXPIRY, "height": EXPIRY + 1}


def test_reclaim_rejects_before_expiry(ledger, escrowed):
    tx = make_transfer([(escrowed, payer(ALICE))], [coin("CNY", AMOUNT, ALICE)])
    error = expect_rejection(ledger, tx, EscrowNotExpiredError)
    assert error.code == "escrow.not_expired"
    assert error.detail == {"expiry": EXPIRY, "height": 3}


def test_reclaim_rejects_at_the_expiry_height(ledger, escrowed):
    ledger.advance_to(EXPIRY - 1)
    tx = make_transfer([(escrowed, payer(ALICE))], [coin("CNY", AMOUNT, ALICE)])
    error = expect_rejection(ledger, tx, EscrowNotExpiredError)
    assert error.detail == {"expiry": EXPIRY, "height": EXPIRY}


def test_reclaim_after_expiry_returns_everything_to_the_payer(ledger, escrowed):
    ledger.advance_to(EXPIRY)
    tx = make_transfer([(escrowed, payer(ALICE))], [coin("CNY", AMOUNT, ALICE)])
    assert ledger.commit(tx).codes == ["ok"]
    assert list(ledger.view.coins.values()) == [coin("CNY", AMOUNT, ALICE)]


def test_reclaim_after_expiry_may_pay_anyone_and_split(ledger, escrowed):
    ledger.advance_to(EXPIRY)
    tx = make_transfer(
        [(escrowed, payer(ALICE))], [coin("CNY", 10, CAROL), coin("CNY", AMOUNT - 10, ALICE)]
    )
    assert ledger.commit(tx).codes == ["ok"]


def test_reclaim_after_expiry_may_redeem(ledger, escrowed):
    ledger.advance_to(EXPIRY)
    assert ledger.commit(make_redeem("CNY", [(escrowed, payer(ALICE))])).codes == ["ok"]
    assert ledger.view.supplies[CNY] == Supply(issued=AMOUNT, redeemed=AMOUNT)


def test_reclaim_still_needs_balanced_outputs(ledger, escrowed):
    ledger.advance_to(EXPIRY)
    tx = make_transfer([(escrowed, payer(ALICE))], [coin("CNY", AMOUNT + 1, ALICE)])
    error = expect_rejection(ledger, tx, UnbalancedError)
    assert error.detail == {"difference": {"CNY": "-1"}}


def test_reclaim_rejects_signature_by_someone_else_as_payer(ledger, escrowed):
    ledger.advance_to(EXPIRY)
    tx = make_transfer([(escrowed, payer(BOB))], [coin("CNY", AMOUNT, BOB)])
    error = expect_rejection(ledger, tx, InvalidSignatureError)
    assert error.detail == {"key": pub(ALICE).hex(), "signer": 0}


def test_capture_rejects_missing_refund(ledger, escrowed):
    tx = capture(escrowed, coin("CNY", 42, BOB))
    error = expect_rejection(ledger, tx, EscrowRefundError)
    assert error.code == "escrow.refund_missing"
    assert error.detail == {"rest": 8}


@pytest.mark.parametrize(
    "refund",
    [coin("CNY", 7, ALICE), coin("CNY", 8, BOB), coin("CNY", 8, escrow_lock(ALICE, BOB, 99))],
    ids=["wrong-amount", "to-payee", "to-other-lock"],
)
def test_capture_rejects_wrong_refund(ledger, escrowed, refund):
    tx = capture(escrowed, coin("CNY", 42, BOB), refund)
    error = expect_rejection(ledger, tx, EscrowRefundError)
    assert error.detail == {"rest": 8}


def test_full_capture_rejects_an_extra_refund_output(ledger, escrowed):
    tx = capture(escrowed, coin("CNY", AMOUNT, BOB), coin("CNY", 1, ALICE))
    error = expect_rejection(ledger, tx, EscrowRefundError)
    assert error.detail == {"rest": 0}


def test_capture_rejects_payment_in_another_asset(ledger, escrowed):
    tx = capture(escrowed, coin("USD", 42, BOB), coin("CNY", 8, ALICE))
    error = expect_rejection(ledger, tx, EscrowRefundError)
    assert error.detail == {"rest": AMOUNT - 42}


def test_capture_rejects_other_inputs_beside_the_escrow_coin(ledger, escrowed):
    (extra,) = ledger.fund(BOB, "CNY", 5)
    tx = make_transfer(
        [(escrowed, payee(BOB)), (extra, owner(BOB))], [coin("CNY", AMOUNT + 5, BOB)]
    )
    error = expect_rejection(ledger, tx, EscrowCaptureShapeError)
    assert error.code == "escrow.capture_shape"
    assert error.detail == {"inputs": 2, "outputs": 1}


def test_capture_rejects_more_than_two_outputs(ledger, escrowed):
    tx = capture(escrowed, coin("CNY", 40, BOB), coin("CNY", 8, ALICE), coin("CNY", 2, BOB))
    error = expect_rejection(ledger, tx, EscrowCaptureShapeError)
    assert error.detail == {"inputs": 1, "outputs": 3}


def test_capture_rejects_a_redemption(ledger, escrowed):
    tx = make_redeem("CNY", [(escrowed, payee(BOB))])
    error = expect_rejection(ledger, tx, EscrowCaptureKindError)
    assert error.code == "escrow.capture_kind"


def test_capture_rejects_signature_by_someone_else_as_payee(ledger, escrowed):
    tx = capture(
        escrowed, coin("CNY", 42, MALLORY), coin("CNY", 8, ALICE), spend=[(1, key(MALLORY))]
    )
    error = expect_rejection(ledger, tx, InvalidSignatureError)
    assert error.detail == {"key": pub(BOB).hex(), "signer": 1}


@pytest.mark.parametrize(
    "spend",
    [[(2, key(BOB))], [(0, key(ALICE)), (1, key(BOB))], []],
    ids=["signer-2", "both", "none"],
)
def test_escrow_rejects_anything_but_one_signature_by_payer_or_payee(ledger, escrowed, spend):
    tx = capture(escrowed, coin("CNY", AMOUNT, BOB), spend=spend)
    error = expect_rejection(ledger, tx, SignerIndexError)
    assert error.code == "witness.signer"
    assert error.detail == {"signers": [signer for signer, _ in spend]}


def test_captured_payment_may_itself_be_escrowed_again(ledger, escrowed):
    tx = capture(escrowed, coin("CNY", 42, escrow_lock(BOB, CAROL, 9)), coin("CNY", 8, ALICE))
    assert ledger.commit(tx).codes == ["ok"]
    payment, _ = outputs_of(tx)
    onward = make_transfer([(payment, payee(CAROL))], [coin("CNY", 42, CAROL)])
    assert ledger.commit(onward).codes == ["ok"]
