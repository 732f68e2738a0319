"""Reading blocks into the wallet's store: `scan_block` over real block views."""

from __future__ import annotations

from pathlib import Path

import pytest

from tally.model import EscrowLock, Height, TxId, block_hash, encode, tx_id
from tally.node.views import block_json
from tally.wallet.coinstore import ROLE_ESCROW_PAYEE, ROLE_OWN, CoinStore, PendingTx
from tally.wallet.sync import BlockFormatError, WalletChainError, scan_block
from tests.rules.helpers import (
    ALICE,
    BOB,
    CAROL,
    CHAIN_ID,
    HRP,
    Ledger,
    coin,
    make_transfer,
    outputs_of,
    owner,
    payee,
    payer,
    pub,
)

ALICE_2 = 40
"""A second key of Alice's wallet."""


@pytest.fixture
def store(tmp_path: Path):
    with CoinStore.open(tmp_path / "coins.sqlite") as opened:
        opened.add_key(0, pub(ALICE))
        opened.add_key(1, pub(ALICE_2))
        yield opened


def scan(ledger: Ledger, store: CoinStore, height: int | None = None):
    """Scan the ledger's block at `height` (the last by default) into `store`."""
    committed = ledger.blocks[-1 if height is None else height - 1]
    view = block_json(committed.block, None, HRP)
    changes = scan_block(
        view,
        store.keys(),
        store.coin,
        store.pending,
        chain_id=CHAIN_ID,
        prev_hash=store.cursor()[1],
    )
    store.apply_block(changes)
    return changes


def test_issued_coins_to_our_keys_become_own_coins_with_a_receive_row(store):
    ledger = Ledger()
    ledger.fund(ALICE, "CNY", 500, 300)
    ledger.fund(BOB, "CNY", 999)
    changes = scan(ledger, store, 1)
    assert [(c.coin.amount, c.role, c.key_index) for c in changes.created] == [
        (500, ROLE_OWN, 0),
        (300, ROLE_OWN, 0),
    ]
    assert scan(ledger, store, 2).created == []
    assert store.balances() == {"CNY": 800}
    [row] = store.history()
    assert (row.kind, row.asset, row.amount_in, row.amount_out, row.height) == (
        "receive", "CNY", 800, 0, 1,
    )  # fmt: skip
    assert store.cursor() == (2, block_hash(ledger.blocks[1].block.header))


def test_a_payment_spends_our_coins_and_a_chained_spend_in_the_same_block_is_followed(store):
    ledger = Ledger()
    [big, small] = ledger.fund(ALICE, "CNY", 500, 300)
    scan(ledger, store)
    pay = make_transfer([(big, owner(ALICE))], [coin("CNY", 200, BOB), coin("CNY", 300, ALICE_2)])
    change = outputs_of(pay)[1]
    # The change is spent again in the same block, to Carol and back to Alice.
    again = make_transfer(
        [(change, owner(ALICE_2))], [coin("CNY", 100, CAROL), coin("CNY", 200, ALICE)]
    )
    ledger.commit(pay, again)
    changes = scan(ledger, store)
    assert {cid for cid, _ in changes.spent} == {big, change}
    assert store.balances() == {"CNY": 500}
    assert sorted(c.coin.amount for c in store.spendable()) == [200, 300]
    assert store.coin(change).spent_txid == tx_id(again.body)
    rows = {row.txid: row for row in store.history()}
    assert (rows[tx_id(pay.body)].kind, rows[tx_id(pay.body)].amount_out) == ("pay", 200)
    assert (rows[tx_id(again.body)].kind, rows[tx_id(again.body)].amount_out) == ("pay", 100)
    assert sum(r.amount_in - r.amount_out for r in store.history()) == 500
    assert small in {c.coin_id for c in store.spendable()}


def test_our_pending_send_is_settled_with_its_kind_and_memo(store):
    ledger = Ledger()
    [coin_id] = ledger.fund(ALICE, "CNY", 500)
    scan(ledger, store)
    tx = make_transfer([(coin_id, owner(ALICE))], [coin("CNY", 500, ALICE_2)])
    store.add_pending(PendingTx(tx_id(tx.body), encode(tx), "merge", "tidy up", 100, 0), [coin_id])
    ledger.commit(tx)
    changes = scan(ledger, store)
    assert changes.settled == [tx_id(tx.body)]
    assert store.pending_txs() == []
    [row] = [r for r in store.history() if r.txid == tx_id(tx.body)]
    assert (row.kind, row.memo, row.amount_in, row.amount_out) == ("merge", "tidy up", 0, 0)


def test_a_rejected_send_of_ours_releases_its_inputs(store):
    ledger = Ledger()
    [coin_id] = ledger.fund(ALICE, "CNY", 500)
    scan(ledger, store)
    unbalanced = make_transfer([(coin_id, owner(ALICE))], [coin("CNY", 600, BOB)])
    store.add_pending(
        PendingTx(tx_id(unbalanced.body), encode(unbalanced), "pay", "", 100, 0), [coin_id]
    )
    assert store.balances() == {}
    committed = ledger.commit(unbalanced)
    assert committed.codes == ["value.unbalanced"]
    changes = scan(ledger, store)
    assert changes.spent == []
    assert changes.history == []
    assert store.balances() == {"CNY": 500}
    assert store.pending_txs() == []


def test_an_escrow_naming_our_key_as_payee_is_recorded_and_its_capture_followed(store):
    ledger = Ledger()
    lock = EscrowLock(payer=pub(BOB), payee=pub(ALICE), expiry=Height(10))
    [escrow] = ledger.fund(lock, "CNY", 5000)
    changes = scan(ledger, store)
    assert [(c.role, c.key_index) for c in changes.created] == [(ROLE_ESCROW_PAYEE, 0)]
    assert store.balances() == {}
    assert [(r.kind, r.amount_in) for r in store.history()] == [("preauth", 0)]
    capture = make_transfer(
        [(escrow, payee(ALICE))], [coin("CNY", 4200, ALICE_2), coin("CNY", 800, BOB)]
    )
    assert ledger.commit(capture).codes == ["ok"]
    scan(ledger, store)
    assert store.balances() == {"CNY": 4200}
    assert store.coin(escrow).spent_txid == tx_id(capture.body)
    assert store.history()[0].kind == "capture"


def test_a_block_of_another_chain_or_out_of_line_is_refused(store):
    ledger = Ledger()
    ledger.fund(ALICE, "CNY", 1)
    view = block_json(ledger.blocks[-1].block, None, HRP)
    with pytest.raises(WalletChainError) as info:
        scan_block(view, {}, store.coin, store.pending, chain_id="other", prev_hash=None)
    assert info.value.code == "wallet.chain"
    with pytest.raises(WalletChainError, match="does not follow"):
        scan_block(view, {}, store.coin, store.pending, chain_id=CHAIN_ID, prev_hash=bytes(32))


@pytest.mark.parametrize(
    "view",
    [
        {},
        {"header": {"height": 1}},
        {"header": {"height": 1, "time_ms": 0, "chain_id": CHAIN_ID, "hash": "00"}, "txs": []},
        {
            "header": {"height": 1, "time_ms": 0, "chain_id": CHAIN_ID, "hash": "00" * 32},
            "txs": [{"txid": "zz", "receipt": {"accepted": True}}],
        },
    ],
)
def test_a_malformed_block_view_is_refused(store, view):
    with pytest.raises(BlockFormatError) as info:
        scan_block(view, {}, store.coin, store.pending, chain_id=CHAIN_ID, prev_hash=None)
    assert info.value.code == "wallet.block_format"


def test_a_reclaim_sent_from_elsewhere_is_recognised_as_one(store):
    ledger = Ledger()
    lock = EscrowLock(payer=pub(ALICE), payee=pub(BOB), expiry=Height(2))
    [escrow] = ledger.fund(lock, "CNY", 700)
    scan(ledger, store)
    ledger.advance_to(2)
    scan(ledger, store)
    reclaim = make_transfer([(escrow, payer(ALICE))], [coin("CNY", 700, ALICE)])
    assert ledger.commit(reclaim).codes == ["ok"]
    scan(ledger, store)
    assert store.history()[0].kind == "reclaim"
    assert store.balances() == {"CNY": 700}
    assert TxId(store.history()[0].txid) == tx_id(reclaim.body)
