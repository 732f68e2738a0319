import pytest

from tally.model import MAX_AMOUNT, AssetCode, coin_id, tx_id
from tally.rules import (
    InvalidSignatureError,
    SignerIndexError,
    Supply,
    SupplyOverflowError,
    UnauthorizedIssuerError,
    UnknownAssetError,
)

from .helpers import (
    ALICE,
    BOB,
    CNY,
    CNY_ISSUER,
    MALLORY,
    USD,
    USD_ISSUER,
    Ledger,
    coin,
    expect_rejection,
    key,
    make_issue,
    owner,
    pub,
)


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def test_issue_creates_coins_and_raises_issued_supply(ledger):
    tx = make_issue("CNY", [coin("CNY", 70, ALICE), coin("CNY", 30, BOB)])
    block = ledger.commit(tx)
    assert block.codes == ["ok"]
    txid = tx_id(tx.body)
    assert ledger.view.coins == {
        coin_id(txid, 0): coin("CNY", 70, ALICE),
        coin_id(txid, 1): coin("CNY", 30, BOB),
    }
    assert ledger.view.supplies == {CNY: Supply(issued=100, redeemed=0)}
    assert block.outcome.delta.supply == {CNY: Supply(issued=100, redeemed=0)}


def test_issue_adds_to_earlier_issuance(ledger):
    ledger.fund(ALICE, "CNY", 5)
    ledger.fund(ALICE, "CNY", 7)
    assert ledger.view.supplies[CNY] == Supply(issued=12, redeemed=0)
    assert ledger.view.commitment() == ledger.view.recompute_commitment()


def test_issues_of_two_assets_keep_separate_supplies(ledger):
    ledger.fund(ALICE, "CNY", 5)
    ledger.fund(ALICE, "USD", 9)
    assert ledger.view.supplies == {
        CNY: Supply(issued=5, redeemed=0),
        USD: Supply(issued=9, redeemed=0),
    }


def test_issue_with_another_nonce_is_another_transaction(ledger):
    first = make_issue("CNY", [coin("CNY", 5, ALICE)], nonce=1)
    second = make_issue("CNY", [coin("CNY", 5, ALICE)], nonce=2)
    assert tx_id(first.body) != tx_id(second.body)
    assert ledger.commit(first, second).codes == ["ok", "ok"]
    assert ledger.balance("CNY") == 10


def test_issue_rejects_key_not_registered_for_the_asset(ledger):
    tx = make_issue("CNY", [coin("CNY", 5, MALLORY)], issuer=MALLORY)
    error = expect_rejection(ledger, tx, UnauthorizedIssuerError)
    assert error.code == "issue.unauthorized"
    assert error.detail == {"asset": "CNY", "key": pub(MALLORY).hex()}


def test_issue_rejects_issuer_of_another_asset(ledger):
    tx = make_issue("CNY", [coin("CNY", 5, ALICE)], issuer=USD_ISSUER)
    error = expect_rejection(ledger, tx, UnauthorizedIssuerError)
    assert error.detail == {"asset": "CNY", "key": pub(USD_ISSUER).hex()}


def test_issue_rejects_unknown_asset(ledger):
    tx = make_issue("EUR", [coin("EUR", 5, ALICE)], issuer=CNY_ISSUER)
    error = expect_rejection(ledger, tx, UnknownAssetError)
    assert error.code == "asset.unknown"
    assert error.detail == {"asset": "EUR"}


def test_issue_rejects_registered_key_signed_by_another(ledger):
    tx = make_issue("CNY", [coin("CNY", 5, MALLORY)], signed_by=owner(MALLORY))
    error = expect_rejection(ledger, tx, InvalidSignatureError)
    assert error.code == "sig.invalid"
    assert error.detail == {"key": pub(CNY_ISSUER).hex(), "signer": 0}


@pytest.mark.parametrize(
    "signed_by",
    [[(1, key(CNY_ISSUER))], [(0, key(CNY_ISSUER)), (1, key(CNY_ISSUER))], []],
    ids=["signer-1", "two-signatures", "no-signature"],
)
def test_issue_rejects_anything_but_one_signature_by_signer_zero(ledger, signed_by):
    tx = make_issue("CNY", [coin("CNY", 5, ALICE)], signed_by=signed_by)
    error = expect_rejection(ledger, tx, SignerIndexError)
    assert error.code == "witness.signer"


def test_issue_rejects_lifting_issued_total_over_max_amount(ledger):
    ledger.fund(ALICE, "CNY", MAX_AMOUNT - 1)
    tx = make_issue("CNY", [coin("CNY", 2, ALICE)], nonce=99)
    error = expect_rejection(ledger, tx, SupplyOverflowError)
    assert error.code == "supply.overflow"
    assert error.detail == {"asset": "CNY"}


def test_issue_accepts_reaching_exactly_max_amount(ledger):
    ledger.fund(ALICE, "CNY", MAX_AMOUNT - 1)
    tx = make_issue("CNY", [coin("CNY", 1, ALICE)], nonce=99)
    assert ledger.commit(tx).codes == ["ok"]
    assert ledger.view.supplies[AssetCode("CNY")].issued == MAX_AMOUNT


def test_issue_rejects_supply_overflow_within_one_block(ledger):
    first = make_issue("CNY", [coin("CNY", MAX_AMOUNT, ALICE)], nonce=1)
    second = make_issue("CNY", [coin("CNY", 1, ALICE)], nonce=2)
    block = ledger.commit(first, second)
    assert block.codes == ["ok", SupplyOverflowError.code]
    assert ledger.view.supplies[CNY] == Supply(issued=MAX_AMOUNT, redeemed=0)
    assert ledger.view.commitment() == ledger.view.recompute_commitment()
