"""The SDK's builders make transactions the rules accept, and refuse what they see is wrong."""

from __future__ import annotations

import pytest

from tally.client import (
    BuilderError,
    make_escrow_capture,
    make_escrow_reclaim,
    make_govern,
    make_issue,
    make_redeem,
    make_transfer,
    sign_inputs,
    to_lock,
)
from tally.model import (
    AssetCode,
    CoinId,
    Height,
    Lock,
    RegisterAsset,
    SignedTx,
    Transfer,
    decode,
    encode,
)
from tally.rules import EscrowNotExpiredError, InvalidSignatureError, Supply, UnbalancedError
from tests.rules.helpers import (
    ALICE,
    BOB,
    CAROL,
    CHAIN_ID,
    CNY_ISSUER,
    RESERVE_REF,
    USD_ISSUER,
    Ledger,
    coin,
    escrow_lock,
    expect_rejection,
    key,
    key_lock,
    multi_lock,
    offline_lock,
    outputs_of,
    pub,
)

VALID_UNTIL = 500


def _issue(ledger: Ledger, owner: int | Lock, amount: int, nonce: int = 1) -> CoinId:
    tx = make_issue(
        "CNY",
        key(CNY_ISSUER),
        [(pub(owner) if isinstance(owner, int) else owner, amount)],
        RESERVE_REF,
        nonce,
        VALID_UNTIL,
        CHAIN_ID,
    )
    assert ledger.commit(tx).codes == ["ok"]
    return outputs_of(tx)[0]


def test_issue_with_bare_public_keys_is_accepted_and_raises_supply() -> None:
    ledger = Ledger()
    tx = make_issue(
        "CNY",
        key(CNY_ISSUER),
        [(pub(ALICE), 700), (key_lock(BOB), 300)],
        RESERVE_REF,
        7,
        VALID_UNTIL,
        CHAIN_ID,
    )
    assert ledger.commit(tx).codes == ["ok"]
    alice, bob = outputs_of(tx)
    assert ledger.view.coins[alice] == coin("CNY", 700, key_lock(ALICE))
    assert ledger.view.coins[bob].lock == key_lock(BOB)
    assert ledger.view.supplies[AssetCode("CNY")] == Supply(issued=1000, redeemed=0)
    assert decode(encode(tx), SignedTx) == tx


def test_transfer_spends_key_locked_coins_and_pays_change() -> None:
    ledger = Ledger()
    first = _issue(ledger, ALICE, 600, nonce=1)
    second = _issue(ledger, ALICE, 400, nonce=2)
    tx = make_transfer(
        [(first, key(ALICE)), (second, key(ALICE))],
        [(pub(BOB), "CNY", 750), (key_lock(ALICE), "CNY", 250)],
        VALID_UNTIL,
        CHAIN_ID,
    )
    assert ledger.commit(tx).codes == ["ok"]
    assert first not in ledger.view.coins
    assert second not in ledger.view.coins
    assert [ledger.view.coins[c].amount for c in outputs_of(tx)] == [750, 250]


def test_transfer_takes_coin_outputs_and_multisig_signers_in_any_order() -> None:
    ledger = Ledger()
    vault = multi_lock(2, [ALICE, BOB, CAROL])
    funded = _issue(ledger, vault, 100)
    out = coin("CNY", 100, key_lock(CAROL))
    tx = make_transfer([(funded, [(2, key(CAROL)), (0, key(ALICE))])], [out], VALID_UNTIL, CHAIN_ID)
    assert [s.signer for s in tx.witnesses[0].signatures] == [0, 2]
    assert ledger.commit(tx).codes == ["ok"]


def test_unbalanced_transfer_is_left_for_the_node_to_refuse() -> None:
    ledger = Ledger()
    funded = _issue(ledger, ALICE, 100)
    tx = make_transfer([(funded, key(ALICE))], [(pub(BOB), "CNY", 101)], VALID_UNTIL, CHAIN_ID)
    expect_rejection(ledger, tx, UnbalancedError)


def test_signature_binds_the_chain_id() -> None:
    ledger = Ledger()
    funded = _issue(ledger, ALICE, 100)
    tx = make_transfer([(funded, key(ALICE))], [(pub(BOB), "CNY", 100)], VALID_UNTIL, "other")
    expect_rejection(ledger, tx, InvalidSignatureError)


def test_redeem_is_accepted_and_lowers_outstanding_supply() -> None:
    ledger = Ledger()
    funded = _issue(ledger, ALICE, 100)
    tx = make_redeem("CNY", [(funded, key(ALICE))], b"account-1", VALID_UNTIL, CHAIN_ID)
    assert ledger.commit(tx).codes == ["ok"]
    assert ledger.view.supplies[AssetCode("CNY")] == Supply(issued=100, redeemed=100)


def test_govern_registers_an_asset_that_its_issuer_can_then_issue() -> None:
    ledger = Ledger()
    action = RegisterAsset(asset=AssetCode("EUR"), issuer=pub(USD_ISSUER))
    govern = make_govern(action, [(1, key(1)), (0, key(0))], 1, VALID_UNTIL, CHAIN_ID)
    assert ledger.commit(govern).codes == ["ok"]
    issue = make_issue(
        "EUR", key(USD_ISSUER), [(pub(ALICE), 5)], RESERVE_REF, 1, VALID_UNTIL, CHAIN_ID
    )
    assert ledger.commit(issue).codes == ["ok"]


@pytest.mark.parametrize(("captured", "outputs"), [(30, 2), (50, 1)])
def test_escrow_capture_pays_the_payee_and_refunds_the_rest(captured: int, outputs: int) -> None:
    ledger = Ledger()
    lock = escrow_lock(ALICE, BOB, 5)
    escrow = _issue(ledger, lock, 50)
    escrowed = ledger.view.coins[escrow]
    tx = make_escrow_capture(escrow, escrowed, key(BOB), captured, pub(CAROL), CHAIN_ID, 5)
    assert ledger.commit(tx).codes == ["ok"]
    created = [ledger.view.coins[c] for c in outputs_of(tx)]
    assert len(created) == outputs
    assert created[0] == coin("CNY", captured, key_lock(CAROL))
    if outputs == 2:
        assert created[1] == coin("CNY", 50 - captured, key_lock(ALICE))


def test_escrow_reclaim_is_accepted_only_after_expiry() -> None:
    ledger = Ledger()
    escrow = _issue(ledger, escrow_lock(ALICE, BOB, 3), 50)
    escrowed = ledger.view.coins[escrow]
    tx = make_escrow_reclaim(escrow, escrowed, key(ALICE), CHAIN_ID, VALID_UNTIL)
    expect_rejection(ledger, tx, EscrowNotExpiredError)
    ledger.advance_to(3)
    assert ledger.commit(tx).codes == ["ok"]
    assert ledger.view.coins[outputs_of(tx)[0]] == coin("CNY", 50, key_lock(ALICE))


def test_escrow_builders_refuse_wrong_keys_and_over_capture() -> None:
    escrowed = coin("CNY", 50, escrow_lock(ALICE, BOB, 5))
    cid = bytes(32)
    with pytest.raises(BuilderError, match="not the escrow's payee"):
        make_escrow_capture(cid, escrowed, key(ALICE), 10, pub(CAROL), CHAIN_ID, 5)
    with pytest.raises(BuilderError, match="cannot capture 51"):
        make_escrow_capture(cid, escrowed, key(BOB), 51, pub(CAROL), CHAIN_ID, 5)
    with pytest.raises(BuilderError, match="not the escrow's payer"):
        make_escrow_reclaim(cid, escrowed, key(BOB), CHAIN_ID, 10)
    plain = coin("CNY", 50, key_lock(ALICE))
    with pytest.raises(BuilderError, match="not in escrow"):
        make_escrow_capture(cid, plain, key(BOB), 10, pub(CAROL), CHAIN_ID, 5)


def test_offline_purse_and_hop_built_by_the_sdk_are_accepted() -> None:
    ledger = Ledger()
    funds = _issue(ledger, ALICE, 100)
    purse = make_transfer(
        [(funds, key(ALICE))], [(offline_lock(ALICE, 5), "CNY", 100)], VALID_UNTIL, CHAIN_ID
    )
    assert ledger.commit(purse).codes == ["ok"]
    hop = make_transfer(
        [(outputs_of(purse)[0], key(ALICE))],
        [(offline_lock(BOB, 5), "CNY", 60), (offline_lock(ALICE, 5), "CNY", 40)],
        VALID_UNTIL,
        CHAIN_ID,
    )
    assert ledger.commit(hop).codes == ["ok"]
    assert ledger.view.coins[outputs_of(hop)[0]].lock == offline_lock(BOB, 5)


def test_to_lock_refuses_keys_of_the_wrong_length_or_off_the_curve() -> None:
    assert to_lock(pub(ALICE)) == key_lock(ALICE)
    assert to_lock(offline_lock(ALICE, 3)) == offline_lock(ALICE, 3)
    with pytest.raises(BuilderError, match="got 31 bytes"):
        to_lock(bytes(31))
    with pytest.raises(BuilderError, match="not a point"):
        to_lock(b"\xff" * 32)


def test_sign_inputs_refuses_a_wrong_witness_count_and_repeated_signers() -> None:
    body = Transfer(inputs=(CoinId(bytes(32)),), outputs=(), valid_until=Height(10))
    with pytest.raises(BuilderError, match="needs 1 witnesses"):
        sign_inputs(body, [key(ALICE), key(BOB)], CHAIN_ID)
    with pytest.raises(BuilderError, match="appears twice"):
        sign_inputs(body, [[(0, key(ALICE)), (0, key(BOB))]], CHAIN_ID)
    with pytest.raises(BuilderError, match="at least one signer"):
        sign_inputs(body, [[]], CHAIN_ID)
