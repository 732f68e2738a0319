import pytest

from tally.model import coin_id, tx_id
from tally.rules import (
    EscrowCaptureKindError,
    InvalidSignatureError,
    RedeemAssetMismatchError,
    SpentInputError,
    Supply,
    UnknownInputError,
)

from .helpers import (
    ALICE,
    BOB,
    CNY,
    MALLORY,
    USD,
    Ledger,
    coin,
    escrow_lock,
    expect_rejection,
    make_redeem,
    make_transfer,
    multi_lock,
    owner,
    payee,
    pub,
    signers,
)


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def test_redeem_destroys_coins_and_raises_redeemed_supply(ledger):
    a, b, c = ledger.fund(ALICE, "CNY", 10, 20, 30)
    tx = make_redeem("CNY", [(a, owner(ALICE)), (c, owner(ALICE))])
    block = ledger.commit(tx)
    assert block.codes == ["ok"]
    assert set(ledger.view.coins) == {b}
    assert ledger.view.supplies[CNY] == Supply(issued=60, redeemed=40)
    assert ledger.view.supplies[CNY].outstanding == ledger.balance("CNY") == 20
    assert block.outcome.delta.created == {}
    assert ledger.view.spenders[a] == tx_id(tx.body)
    assert ledger.view.commitment() == ledger.view.recompute_commitment()


def test_redeem_of_everything_leaves_outstanding_zero(ledger):
    ids = ledger.fund(ALICE, "USD", 1, 2)
    assert ledger.commit(make_redeem("USD", [(i, owner(ALICE)) for i in ids])).codes == ["ok"]
    assert ledger.view.supplies[USD] == Supply(issued=3, redeemed=3)
    assert ledger.view.supplies[USD].outstanding == 0
    assert ledger.view.coins == {}


def test_redeem_accepts_multisig_coin_with_threshold_signatures(ledger):
    (a,) = ledger.fund(multi_lock(2, [ALICE, BOB]), "CNY", 8)
    tx = make_redeem("CNY", [(a, signers((0, ALICE), (1, BOB)))])
    assert ledger.commit(tx).codes == ["ok"]


def test_redeem_rejects_coin_of_another_asset(ledger):
    (c,) = ledger.fund(ALICE, "CNY", 10)
    (u,) = ledger.fund(ALICE, "USD", 10)
    tx = make_redeem("CNY", [(c, owner(ALICE)), (u, owner(ALICE))])
    error = expect_rejection(ledger, tx, RedeemAssetMismatchError)
    assert error.code == "redeem.asset_mismatch"
    assert error.detail == {"index": 1, "expected": "CNY", "found": "USD"}


def test_redeem_rejects_spent_input(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 10)
    pay = make_transfer([(a, owner(ALICE))], [coin("CNY", 10, BOB)])
    ledger.commit(pay)
    error = expect_rejection(ledger, make_redeem("CNY", [(a, owner(ALICE))]), SpentInputError)
    assert error.detail == {"coin_id": a.hex(), "spent_by": tx_id(pay.body).hex()}


def test_redeem_rejects_unknown_input(ledger):
    ghost = coin_id(bytes(32), 7)
    error = expect_rejection(ledger, make_redeem("CNY", [(ghost, owner(ALICE))]), UnknownInputError)
    assert error.detail == {"coin_id": ghost.hex()}


def test_redeem_rejects_coin_of_someone_else(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 10)
    error = expect_rejection(
        ledger, make_redeem("CNY", [(a, owner(MALLORY))]), InvalidSignatureError
    )
    assert error.detail == {"key": pub(ALICE).hex(), "signer": 0}


def test_redeem_rejects_escrow_capture_by_payee(ledger):
    (a,) = ledger.fund(escrow_lock(ALICE, BOB, expiry=10), "CNY", 10)
    error = expect_rejection(ledger, make_redeem("CNY", [(a, payee(BOB))]), EscrowCaptureKindError)
    assert error.code == "escrow.capture_kind"
