import pytest

from tally.model import (
    MAX_AMOUNT,
    AssetCode,
    Govern,
    Height,
    InvalidAssetCodeError,
    Issue,
    Params,
    RegisterAsset,
    Signature,
    Transfer,
    Witness,
)
from tally.rules import (
    MAX_MULTISIG_KEYS,
    DuplicateInputError,
    InvalidLockError,
    IssueAssetMismatchError,
    NoInputsError,
    NoOutputsError,
    SumOverflowError,
    TooManyInputsError,
    TooManyOutputsError,
    WindowExpiredError,
    WindowTooFarError,
    WitnessCountError,
    WitnessOrderError,
    check_tx,
    check_window,
)

from .helpers import (
    ALICE,
    BOB,
    CAROL,
    CNY,
    Ledger,
    coin,
    expect_rejection,
    key,
    make_genesis,
    make_govern,
    make_issue,
    make_redeem,
    make_transfer,
    multi_lock,
    owner,
    pub,
    sign,
    with_witnesses,
)


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def test_transfer_rejects_fewer_witnesses_than_inputs(ledger):
    a, b = ledger.fund(ALICE, "CNY", 5, 5)
    tx = make_transfer([(a, owner(ALICE)), (b, owner(ALICE))], [coin("CNY", 10, BOB)])
    tx = with_witnesses(tx, tx.witnesses[:1])
    error = expect_rejection(ledger, tx, WitnessCountError)
    assert error.code == "witness.count"
    assert error.detail == {"expected": 2, "found": 1}


def test_issue_rejects_two_witnesses(ledger):
    tx = make_issue("CNY", [coin("CNY", 5, ALICE)])
    tx = with_witnesses(tx, tx.witnesses * 2)
    error = expect_rejection(ledger, tx, WitnessCountError)
    assert error.detail == {"expected": 1, "found": 2}


def test_govern_rejects_missing_witness(ledger):
    tx = make_govern(RegisterAsset(asset=AssetCode("EUR"), issuer=pub(ALICE)))
    error = expect_rejection(ledger, with_witnesses(tx, ()), WitnessCountError)
    assert error.detail == {"expected": 1, "found": 0}


def test_transfer_rejects_no_inputs(ledger):
    tx = make_transfer([], [coin("CNY", 5, BOB)])
    error = expect_rejection(ledger, tx, NoInputsError)
    assert error.code == "tx.no_inputs"


def test_redeem_rejects_no_inputs(ledger):
    error = expect_rejection(ledger, make_redeem("CNY", []), NoInputsError)
    assert error.code == "tx.no_inputs"


def test_transfer_rejects_more_inputs_than_max_inputs():
    ledger = Ledger(make_genesis(params=Params(max_inputs=2)))
    ids = ledger.fund(ALICE, "CNY", 1, 1, 1)
    tx = make_transfer([(cid, owner(ALICE)) for cid in ids], [coin("CNY", 3, BOB)])
    error = expect_rejection(ledger, tx, TooManyInputsError)
    assert error.code == "tx.too_many_inputs"
    assert error.detail == {"count": 3, "limit": 2}


def test_transfer_accepts_exactly_max_inputs():
    ledger = Ledger(make_genesis(params=Params(max_inputs=2)))
    ids = ledger.fund(ALICE, "CNY", 1, 1)
    tx = make_transfer([(cid, owner(ALICE)) for cid in ids], [coin("CNY", 2, BOB)])
    assert ledger.commit(tx).codes == ["ok"]


def test_transfer_rejects_no_outputs(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    error = expect_rejection(ledger, make_transfer([(a, owner(ALICE))], []), NoOutputsError)
    assert error.code == "tx.no_outputs"


def test_issue_rejects_no_outputs(ledger):
    error = expect_rejection(ledger, make_issue("CNY", []), NoOutputsError)
    assert error.code == "tx.no_outputs"


def test_transfer_rejects_more_outputs_than_max_outputs():
    ledger = Ledger(make_genesis(params=Params(max_outputs=3)))
    (a,) = ledger.fund(ALICE, "CNY", 4)
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 1, BOB)] * 4)
    error = expect_rejection(ledger, tx, TooManyOutputsError)
    assert error.code == "tx.too_many_outputs"
    assert error.detail == {"count": 4, "limit": 3}


def test_issue_rejects_more_outputs_than_max_outputs():
    ledger = Ledger(make_genesis(params=Params(max_outputs=1)))
    tx = make_issue("CNY", [coin("CNY", 1, BOB)] * 2)
    error = expect_rejection(ledger, tx, TooManyOutputsError)
    assert error.detail == {"count": 2, "limit": 1}


def test_transfer_rejects_duplicate_input(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_transfer([(a, owner(ALICE)), (a, owner(ALICE))], [coin("CNY", 10, BOB)])
    error = expect_rejection(ledger, tx, DuplicateInputError)
    assert error.code == "input.duplicate"
    assert error.detail == {"coin_id": a.hex()}


def test_redeem_rejects_duplicate_input(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_redeem("CNY", [(a, owner(ALICE)), (a, owner(ALICE))])
    error = expect_rejection(ledger, tx, DuplicateInputError)
    assert error.detail == {"coin_id": a.hex()}


def test_transfer_rejects_outputs_summing_over_max_amount(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    outputs = [coin("CNY", MAX_AMOUNT, BOB), coin("CNY", 1, BOB)]
    error = expect_rejection(ledger, make_transfer([(a, owner(ALICE))], outputs), SumOverflowError)
    assert error.code == "amount.sum_overflow"
    assert error.detail == {"asset": "CNY"}


def test_issue_rejects_outputs_summing_over_max_amount(ledger):
    tx = make_issue("CNY", [coin("CNY", MAX_AMOUNT, BOB), coin("CNY", MAX_AMOUNT, BOB)])
    error = expect_rejection(ledger, tx, SumOverflowError)
    assert error.detail == {"asset": "CNY"}


def test_issue_accepts_outputs_summing_to_exactly_max_amount(ledger):
    tx = make_issue("CNY", [coin("CNY", MAX_AMOUNT - 1, BOB), coin("CNY", 1, BOB)])
    assert ledger.commit(tx).codes == ["ok"]
    assert ledger.view.supplies[CNY].issued == MAX_AMOUNT


def test_issue_rejects_output_of_another_asset(ledger):
    tx = make_issue("CNY", [coin("CNY", 5, ALICE), coin("USD", 5, ALICE)])
    error = expect_rejection(ledger, tx, IssueAssetMismatchError)
    assert error.code == "issue.asset_mismatch"
    assert error.detail == {"index": 1, "expected": "CNY", "found": "USD"}


@pytest.mark.parametrize(
    ("threshold", "key_count"),
    [(0, 2), (3, 2), (-1, 1), (1, 0), (1, MAX_MULTISIG_KEYS + 1)],
    ids=["zero-threshold", "threshold-over-keys", "negative", "no-keys", "too-many-keys"],
)
def test_transfer_rejects_malformed_multilock_output(ledger, threshold, key_count):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    lock = multi_lock(threshold, range(100, 100 + key_count))
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 1, BOB), coin("CNY", 4, lock)])
    error = expect_rejection(ledger, tx, InvalidLockError)
    assert error.code == "lock.invalid"
    assert error.detail == {"index": 1}


def test_issue_rejects_malformed_multilock_output(ledger):
    tx = make_issue("CNY", [coin("CNY", 5, multi_lock(2, [ALICE]))])
    error = expect_rejection(ledger, tx, InvalidLockError)
    assert error.detail == {"index": 0}


def test_transfer_accepts_multilock_with_max_keys(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    lock = multi_lock(MAX_MULTISIG_KEYS, range(100, 100 + MAX_MULTISIG_KEYS))
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, lock)])
    assert ledger.commit(tx).codes == ["ok"]


@pytest.mark.parametrize("signers", [(1, 0), (0, 0)], ids=["decreasing", "repeated"])
def test_witness_rejects_signers_not_strictly_increasing(ledger, signers):
    (a,) = ledger.fund(multi_lock(2, [ALICE, BOB, CAROL]), "CNY", 5)
    tx = make_transfer(
        [(a, [(s, key([ALICE, BOB, CAROL][s])) for s in signers])], [coin("CNY", 5, BOB)]
    )
    error = expect_rejection(ledger, tx, WitnessOrderError)
    assert error.code == "witness.order"
    assert error.detail == {"signer": signers[1]}


def test_witness_rejects_negative_signer(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_transfer([(a, [(-1, key(ALICE))])], [coin("CNY", 5, BOB)])
    error = expect_rejection(ledger, tx, WitnessOrderError)
    assert error.detail == {"signer": -1}


def test_issue_rejects_malformed_asset_code(ledger):
    body = Issue(
        asset=AssetCode("cny"),
        issuer=pub(10),
        outputs=(coin("CNY", 5, ALICE),),
        reserve_ref=bytes(32),
        nonce=0,
        valid_until=Height(10),
    )
    error = expect_rejection(ledger, sign(body, [owner(10)]), InvalidAssetCodeError)
    assert error.code == "asset.invalid"
    assert error.detail == {"asset": "cny"}


def test_redeem_rejects_malformed_asset_code(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    error = expect_rejection(ledger, make_redeem("C", [(a, owner(ALICE))]), InvalidAssetCodeError)
    assert error.detail == {"asset": "C"}


def test_register_asset_rejects_malformed_asset_code(ledger):
    tx = make_govern(RegisterAsset(asset=AssetCode("EURO-1"), issuer=pub(ALICE)))
    error = expect_rejection(ledger, tx, InvalidAssetCodeError)
    assert error.detail == {"asset": "EURO-1"}


def test_check_tx_accepts_well_formed_transactions(ledger):
    params = Params()
    check_tx(make_issue("CNY", [coin("CNY", 5, ALICE)]), params)
    check_tx(make_govern(RegisterAsset(asset=AssetCode("EUR"), issuer=pub(ALICE))), params)
    (a,) = ledger.fund(ALICE, "CNY", 5)
    check_tx(make_transfer([(a, owner(ALICE))], [coin("CNY", 5, BOB)]), params)
    check_tx(make_redeem("CNY", [(a, owner(ALICE))]), params)


def test_check_tx_checks_no_signature(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, BOB)])
    forged = with_witnesses(tx, [Witness(signatures=(Signature(signer=0, sig=bytes(64)),))])
    check_tx(forged, Params())


# Windows


def transfer_until(valid_until: int) -> Transfer:
    return Transfer(inputs=(bytes(32),), outputs=(coin("CNY", 1, BOB),), valid_until=valid_until)


def test_window_rejects_valid_until_below_height():
    with pytest.raises(WindowExpiredError) as info:
        check_window(transfer_until(9), Height(10), Params())
    assert type(info.value) is WindowExpiredError
    assert info.value.code == "window.expired"
    assert info.value.detail == {"valid_until": 9, "height": 10}


def test_window_rejects_valid_until_past_max_window():
    with pytest.raises(WindowTooFarError) as info:
        check_window(transfer_until(111), Height(10), Params(max_window=100))
    assert type(info.value) is WindowTooFarError
    assert info.value.code == "window.too_far"
    assert info.value.detail == {"valid_until": 111, "limit": 110}


@pytest.mark.parametrize("valid_until", [10, 50, 110])
def test_window_accepts_valid_until_from_height_to_max_window(valid_until):
    check_window(transfer_until(valid_until), Height(10), Params(max_window=100))


def test_transfer_rejects_expired_window(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    ledger.advance_to(4)
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, BOB)], valid_until=4)
    error = expect_rejection(ledger, tx, WindowExpiredError)
    assert error.detail == {"valid_until": 4, "height": 5}


def test_issue_rejects_window_too_far():
    ledger = Ledger(make_genesis(params=Params(max_window=10)))
    tx = make_issue("CNY", [coin("CNY", 5, ALICE)], valid_until=12)
    error = expect_rejection(ledger, tx, WindowTooFarError)
    assert error.detail == {"valid_until": 12, "limit": 11}


def test_govern_rejects_expired_window(ledger):
    ledger.advance_to(3)
    tx = make_govern(RegisterAsset(asset=AssetCode("EUR"), issuer=pub(ALICE)), valid_until=3)
    error = expect_rejection(ledger, tx, WindowExpiredError)
    assert error.detail == {"valid_until": 3, "height": 4}


def test_transaction_is_accepted_at_its_last_valid_height(ledger):
    ledger.advance_to(4)
    tx = make_issue("CNY", [coin("CNY", 5, ALICE)], valid_until=5)
    assert ledger.commit(tx).codes == ["ok"]


def test_govern_body_is_checked_by_check_tx():
    body = Govern(
        action=RegisterAsset(asset=AssetCode("EUR"), issuer=pub(ALICE)),
        nonce=1,
        valid_until=Height(10),
    )
    check_tx(sign(body, [[(0, key(0)), (1, key(1))]]), Params())
