import pytest

from tally.rules import InvalidLockError, InvalidSignatureError, SignerIndexError, ThresholdError

from .helpers import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    MALLORY,
    Ledger,
    coin,
    expect_rejection,
    make_issue,
    make_transfer,
    multi_lock,
    pub,
    signers,
)

CO_OWNERS = [ALICE, BOB, CAROL]


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def shared_coin(ledger):
    (cid,) = ledger.fund(multi_lock(2, CO_OWNERS), "CNY", 9)
    return cid


@pytest.mark.parametrize(
    "pairs",
    [((0, ALICE), (1, BOB)), ((0, ALICE), (2, CAROL)), ((1, BOB), (2, CAROL))],
    ids=["0+1", "0+2", "1+2"],
)
def test_multilock_spends_with_any_threshold_of_keys(ledger, shared_coin, pairs):
    tx = make_transfer([(shared_coin, signers(*pairs))], [coin("CNY", 9, DAVE)])
    assert ledger.commit(tx).codes == ["ok"]
    assert list(ledger.view.coins.values()) == [coin("CNY", 9, DAVE)]


def test_multilock_spends_with_more_than_threshold_signatures(ledger, shared_coin):
    tx = make_transfer(
        [(shared_coin, signers((0, ALICE), (1, BOB), (2, CAROL)))], [coin("CNY", 9, DAVE)]
    )
    assert ledger.commit(tx).codes == ["ok"]


def test_multilock_rejects_fewer_signatures_than_threshold(ledger, shared_coin):
    tx = make_transfer([(shared_coin, signers((1, BOB)))], [coin("CNY", 9, BOB)])
    error = expect_rejection(ledger, tx, ThresholdError)
    assert error.code == "witness.threshold"
    assert error.detail == {"found": 1, "threshold": 2}


def test_multilock_rejects_signer_index_outside_its_keys(ledger, shared_coin):
    tx = make_transfer([(shared_coin, signers((0, ALICE), (3, DAVE)))], [coin("CNY", 9, DAVE)])
    error = expect_rejection(ledger, tx, SignerIndexError)
    assert error.code == "witness.signer"
    assert error.detail == {"signer": 3}


def test_multilock_rejects_signature_by_key_not_at_that_index(ledger, shared_coin):
    tx = make_transfer([(shared_coin, signers((0, ALICE), (1, CAROL)))], [coin("CNY", 9, DAVE)])
    error = expect_rejection(ledger, tx, InvalidSignatureError)
    assert error.code == "sig.invalid"
    assert error.detail == {"key": pub(BOB).hex(), "signer": 1}


def test_multilock_rejects_enough_signatures_when_one_is_forged(ledger, shared_coin):
    tx = make_transfer(
        [(shared_coin, signers((0, ALICE), (1, BOB), (2, MALLORY)))], [coin("CNY", 9, MALLORY)]
    )
    error = expect_rejection(ledger, tx, InvalidSignatureError)
    assert error.detail == {"key": pub(CAROL).hex(), "signer": 2}


def test_one_of_one_multilock_behaves_like_a_key_lock(ledger):
    (cid,) = ledger.fund(multi_lock(1, [ALICE]), "CNY", 3)
    tx = make_transfer([(cid, signers((0, ALICE)))], [coin("CNY", 3, BOB)])
    assert ledger.commit(tx).codes == ["ok"]


def test_multilock_threshold_counts_distinct_keys_not_signer_slots(ledger):
    # MultiLock.threshold is "how many distinct keys must sign": a 2-of-2 lock that names
    # Alice twice must not be spendable by Alice alone. Either refusing such a lock when it
    # is created (lock.invalid) or refusing the spend (witness.threshold) keeps that promise.
    lock = multi_lock(2, [ALICE, ALICE])
    created = ledger.commit(
        make_issue("CNY", [coin("CNY", 9, lock)], nonce=ledger.next_nonce())
    ).codes
    if created == [InvalidLockError.code]:
        return
    assert created == ["ok"]
    (cid,) = [c for c, held in ledger.view.coins.items() if held.lock == lock]
    tx = make_transfer([(cid, signers((0, ALICE), (1, ALICE)))], [coin("CNY", 9, ALICE)])
    assert ledger.commit(tx).codes != ["ok"]
