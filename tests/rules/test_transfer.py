import pytest

from tally.crypto import verify
from tally.model import Signature, Witness, coin_id, tx_id
from tally.rules import (
    InvalidSignatureError,
    SignerIndexError,
    SpentInputError,
    StateDelta,
    UnbalancedError,
    UnknownAssetError,
    UnknownInputError,
    apply_block,
)

from .helpers import (
    ALICE,
    BOB,
    CAROL,
    CNY,
    MALLORY,
    USD,
    Ledger,
    coin,
    context,
    expect_rejection,
    key,
    make_transfer,
    outputs_of,
    owner,
    pub,
    sign,
    with_witnesses,
)


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def test_transfer_pays_and_returns_change(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 100)
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 30, BOB), coin("CNY", 70, ALICE)])
    block = ledger.commit(tx)
    assert block.codes == ["ok"]
    paid, change = outputs_of(tx)
    assert ledger.view.coins[paid] == coin("CNY", 30, BOB)
    assert ledger.view.coins[change] == coin("CNY", 70, ALICE)
    assert a not in ledger.view.coins
    assert ledger.view.spenders[a] == tx_id(tx.body)
    assert ledger.view.supplies[CNY].outstanding == ledger.balance("CNY") == 100


def test_transfer_output_ids_derive_from_tx_id_and_index(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 2)
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 1, BOB), coin("CNY", 1, BOB)])
    ledger.commit(tx)
    txid = tx_id(tx.body)
    assert set(ledger.view.coins) == {coin_id(txid, 0), coin_id(txid, 1)}


def test_transfer_splits_one_coin_into_many(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 10)
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 1, BOB)] * 10)
    assert ledger.commit(tx).codes == ["ok"]
    assert sorted(c.amount for c in ledger.view.coins.values()) == [1] * 10


def test_transfer_merges_many_coins_into_one(ledger):
    ids = ledger.fund(ALICE, "CNY", 1, 2, 3, 4)
    tx = make_transfer([(cid, owner(ALICE)) for cid in ids], [coin("CNY", 10, ALICE)])
    assert ledger.commit(tx).codes == ["ok"]
    assert list(ledger.view.coins.values()) == [coin("CNY", 10, ALICE)]


def test_transfer_moves_several_assets_balanced_per_asset(ledger):
    (c,) = ledger.fund(ALICE, "CNY", 10)
    (u,) = ledger.fund(BOB, "USD", 3)
    tx = make_transfer(
        [(c, owner(ALICE)), (u, owner(BOB))], [coin("USD", 3, ALICE), coin("CNY", 10, BOB)]
    )
    assert ledger.commit(tx).codes == ["ok"]
    assert ledger.balance("CNY") == 10
    assert ledger.balance("USD") == 3


def test_transfer_rejects_unknown_input(ledger):
    ghost = coin_id(bytes(32), 0)
    tx = make_transfer([(ghost, owner(ALICE))], [coin("CNY", 5, BOB)])
    error = expect_rejection(ledger, tx, UnknownInputError)
    assert error.code == "input.unknown"
    assert error.detail == {"coin_id": ghost.hex()}


def test_transfer_rejects_spent_input(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    first = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, BOB)])
    assert ledger.commit(first).codes == ["ok"]
    second = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, CAROL)])
    error = expect_rejection(ledger, second, SpentInputError)
    assert error.code == "input.spent"
    assert error.detail == {"coin_id": a.hex(), "spent_by": tx_id(first.body).hex()}


def test_transfer_rejects_input_spent_earlier_in_the_same_block(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    first = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, BOB)])
    second = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, CAROL)])
    block = ledger.commit(first, second)
    assert block.codes == ["ok", SpentInputError.code]
    assert list(ledger.view.coins.values()) == [coin("CNY", 5, BOB)]
    assert block.outcome.delta.spent == {a: (tx_id(first.body), coin("CNY", 5, ALICE))}


def test_transfer_spends_coin_created_earlier_in_the_same_block(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    first = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, BOB)])
    (middle,) = outputs_of(first)
    second = make_transfer([(middle, owner(BOB))], [coin("CNY", 5, CAROL)])
    block = ledger.commit(first, second)
    assert block.codes == ["ok", "ok"]
    (last,) = outputs_of(second)
    assert block.outcome.delta.created == {last: coin("CNY", 5, CAROL)}
    assert set(block.outcome.delta.spent) == {a, middle}
    assert ledger.view.spenders[middle] == tx_id(second.body)
    assert ledger.view.commitment() == ledger.view.recompute_commitment()


def test_transfer_rejects_output_of_unknown_asset(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 4, BOB), coin("EUR", 1, BOB)])
    error = expect_rejection(ledger, tx, UnknownAssetError)
    assert error.code == "asset.unknown"
    assert error.detail == {"asset": "EUR"}


def test_transfer_rejects_outputs_above_inputs(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 6, BOB)])
    error = expect_rejection(ledger, tx, UnbalancedError)
    assert error.code == "value.unbalanced"
    assert error.detail == {"difference": {"CNY": "-1"}}


def test_transfer_rejects_outputs_below_inputs(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 4, BOB)])
    error = expect_rejection(ledger, tx, UnbalancedError)
    assert error.detail == {"difference": {"CNY": "1"}}


def test_transfer_rejects_exchanging_one_asset_for_another(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_transfer([(a, owner(ALICE))], [coin("USD", 5, BOB)])
    error = expect_rejection(ledger, tx, UnbalancedError)
    assert error.detail == {"difference": {"CNY": "5", "USD": "-5"}}


def test_transfer_rejects_signature_by_wrong_key(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_transfer([(a, owner(MALLORY))], [coin("CNY", 5, MALLORY)])
    error = expect_rejection(ledger, tx, InvalidSignatureError)
    assert error.code == "sig.invalid"
    assert error.detail == {"key": pub(ALICE).hex(), "signer": 0}


def test_transfer_rejects_signature_of_another_transaction(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    honest = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, BOB)])
    stolen = make_transfer([(a, owner(MALLORY))], [coin("CNY", 5, MALLORY)])
    error = expect_rejection(
        ledger, with_witnesses(stolen, honest.witnesses), InvalidSignatureError
    )
    assert error.detail["key"] == pub(ALICE).hex()


def test_transfer_rejects_signature_made_for_another_chain(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, BOB)])
    elsewhere = sign(tx.body, [owner(ALICE)], chain_id="tally-other")
    error = expect_rejection(ledger, elsewhere, InvalidSignatureError)
    assert error.detail["key"] == pub(ALICE).hex()


def test_transfer_rejects_garbage_signature(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 5, BOB)])
    garbage = Witness(signatures=(Signature(signer=0, sig=b"\xff" * 64),))
    expect_rejection(ledger, with_witnesses(tx, [garbage]), InvalidSignatureError)


@pytest.mark.parametrize(
    "spend",
    [[(1, key(ALICE))], [(0, key(ALICE)), (1, key(ALICE))], []],
    ids=["signer-1", "two-signatures", "no-signature"],
)
def test_keylock_rejects_anything_but_one_signature_by_signer_zero(ledger, spend):
    (a,) = ledger.fund(ALICE, "CNY", 5)
    tx = make_transfer([(a, spend)], [coin("CNY", 5, BOB)])
    error = expect_rejection(ledger, tx, SignerIndexError)
    assert error.code == "witness.signer"
    assert error.detail == {"signers": [signer for signer, _ in spend]}


def test_transfer_checks_every_input_witness(ledger):
    a, b = ledger.fund(ALICE, "CNY", 5, 5)
    (c,) = ledger.fund(BOB, "CNY", 5)
    tx = make_transfer(
        [(a, owner(ALICE)), (b, owner(ALICE)), (c, owner(ALICE))], [coin("CNY", 15, ALICE)]
    )
    error = expect_rejection(ledger, tx, InvalidSignatureError)
    assert error.detail["key"] == pub(BOB).hex()


def test_rejected_transfer_between_accepted_ones_changes_nothing(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 10)
    (u,) = ledger.fund(BOB, "USD", 10)
    good_1 = make_transfer([(a, owner(ALICE))], [coin("CNY", 10, CAROL)])
    bad = make_transfer([(u, owner(BOB))], [coin("USD", 11, CAROL)])
    good_2 = make_transfer([(u, owner(BOB))], [coin("USD", 10, CAROL)])
    ctx = ledger.next_context
    with_bad = apply_block(ledger.view, [good_1, bad, good_2], ctx, verify)
    without = apply_block(ledger.view, [good_1, good_2], ctx, verify)
    assert [r.code for r in with_bad.receipts] == ["ok", UnbalancedError.code, "ok"]
    assert with_bad.delta == without.delta
    assert with_bad.commitment == without.commitment
    assert tx_id(bad.body) not in with_bad.delta.committed


def test_block_of_only_rejected_transfers_changes_nothing(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 10)
    before = ledger.view.commitment()
    txs = [
        make_transfer([(a, owner(MALLORY))], [coin("CNY", 10, MALLORY)]),
        make_transfer([(a, owner(ALICE))], [coin("CNY", 11, BOB)]),
        make_transfer([(coin_id(bytes(32), 1), owner(ALICE))], [coin("CNY", 1, BOB)]),
    ]
    outcome = apply_block(ledger.view, txs, ledger.next_context, verify)
    assert [r.code for r in outcome.receipts] == [
        "sig.invalid",
        "value.unbalanced",
        "input.unknown",
    ]
    assert outcome.delta == StateDelta()
    assert outcome.commitment == before


def test_apply_block_leaves_the_view_commitment_untouched(ledger):
    (a,) = ledger.fund(ALICE, "CNY", 10)
    before = ledger.view.commitment()
    tx = make_transfer([(a, owner(ALICE))], [coin("CNY", 10, BOB)])
    outcome = apply_block(ledger.view, [tx], context(ledger.height + 1), verify)
    assert outcome.commitment != before
    assert ledger.view.commitment() == before
    assert ledger.view.supplies[CNY].outstanding == 10
    assert USD not in ledger.view.supplies
