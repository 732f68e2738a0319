"""The idempotency table: a committed transaction is never applied twice."""

import pytest

from tally.model import Signature, Witness, tx_id
from tally.rules import ReplayedError, SpentInputError, WindowExpiredError

from .helpers import (
    ALICE,
    BOB,
    CNY,
    Ledger,
    coin,
    expect_rejection,
    make_issue,
    make_transfer,
    owner,
    with_witnesses,
)


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def test_issue_replayed_within_a_block_is_applied_once(ledger):
    tx = make_issue("CNY", [coin("CNY", 5, ALICE)])
    block = ledger.commit(tx, tx)
    assert block.codes == ["ok", ReplayedError.code]
    assert ledger.view.supplies[CNY].issued == 5
    assert ledger.balance("CNY") == 5


def test_issue_replayed_in_a_later_block_is_rejected(ledger):
    tx = make_issue("CNY", [coin("CNY", 5, ALICE)])
    assert ledger.commit(tx).codes == ["ok"]
    error = expect_rejection(ledger, tx, ReplayedError)
    assert error.code == "tx.replayed"
    assert error.detail == {"txid": tx_id(tx.body).hex()}
    assert ledger.view.supplies[CNY].issued == 5


def test_transfer_replayed_is_reported_as_replayed_not_as_spent(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, BOB)])
    assert ledger.commit(tx, tx).codes == ["ok", ReplayedError.code]
    error = expect_rejection(ledger, tx, ReplayedError)
    assert error.detail == {"txid": tx_id(tx.body).hex()}


def test_replay_with_other_witnesses_is_still_the_same_transaction(ledger):
    tx = make_issue("CNY", [coin("CNY", 5, ALICE)])
    ledger.commit(tx)
    garbage = with_witnesses(tx, [Witness(signatures=(Signature(signer=0, sig=bytes(64)),))])
    assert tx_id(garbage.body) == tx_id(tx.body)
    expect_rejection(ledger, garbage, ReplayedError)


def test_rejected_transaction_is_not_remembered_and_may_be_retried(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    spend = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, BOB)])
    refused = ledger.commit(spend, make_issue("CNY", [coin("CNY", 1, ALICE)], issuer=ALICE))
    assert refused.codes == ["ok", "issue.unauthorized"]
    assert set(refused.outcome.delta.committed) == {tx_id(spend.body)}
    second = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, BOB)], valid_until=499)
    assert ledger.commit(second).codes == [SpentInputError.code]
    assert tx_id(second.body) not in ledger.view.committed
    assert ledger.commit(second).codes == [SpentInputError.code]


def test_committed_id_is_recorded_with_its_valid_until(ledger):
    tx = make_issue("CNY", [coin("CNY", 5, ALICE)], valid_until=7)
    block = ledger.commit(tx)
    assert block.outcome.delta.committed == {tx_id(tx.body): 7}


def test_replay_after_the_window_is_answered_as_expired(ledger):
    tx = make_issue("CNY", [coin("CNY", 5, ALICE)], valid_until=3)
    ledger.commit(tx)
    ledger.advance_to(3)
    assert tx_id(tx.body) not in ledger.view.committed
    error = expect_rejection(ledger, tx, WindowExpiredError)
    assert error.detail == {"valid_until": 3, "height": 4}
