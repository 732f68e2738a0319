import msgspec
import pytest

from tally.crypto import merkle_root, verify
from tally.model import ACCEPTED, Params, Receipt, block_hash, encode, genesis_hash, tx_id
from tally.rules import (
    BlockContext,
    BlockMismatchError,
    BlockTooLargeError,
    BlockTxTooLargeError,
    apply_block,
    build_header,
    execute_block,
    tx_root,
)

from .helpers import (
    ALICE,
    BOB,
    CHAIN_ID,
    GENESIS_TIME_MS,
    MALLORY,
    Ledger,
    coin,
    make_genesis,
    make_issue,
    make_transfer,
    outputs_of,
    owner,
)


def busy_ledger() -> Ledger:
    """A ledger with three blocks: an issuance, a payment and a refused theft."""
    ledger = Ledger()
    (a,) = ledger.fund(ALICE, "CNY", 10)
    pay = make_transfer([(a, owner(ALICE))], [coin("CNY", 4, BOB), coin("CNY", 6, ALICE)])
    ledger.commit(pay)
    change = outputs_of(pay)[1]
    ledger.commit(make_transfer([(change, owner(MALLORY))], [coin("CNY", 6, MALLORY)]))
    return ledger


def replay(blocks) -> Ledger:
    """A fresh ledger that executes and writes `blocks` received from elsewhere."""
    ledger = Ledger()
    for committed in blocks:
        block = committed.block
        outcome = execute_block(ledger.view, block, CHAIN_ID, ledger.height + 1, ledger.tip, verify)
        ledger.view.apply(outcome.delta, outcome.commitment, block.header.height)
        ledger.tip = block_hash(block.header)
    return ledger


def test_apply_block_rejects_more_transactions_than_max_block_txs():
    ledger = Ledger(make_genesis(params=Params(max_block_txs=2)))
    txs = [make_issue("CNY", [coin("CNY", 1, ALICE)], nonce=n) for n in range(3)]
    with pytest.raises(BlockTooLargeError) as info:
        ledger.dry_run(*txs)
    assert type(info.value) is BlockTooLargeError
    assert info.value.code == "block.too_many_txs"
    assert info.value.detail == {"count": 3, "limit": 2}


def test_apply_block_accepts_exactly_max_block_txs():
    ledger = Ledger(make_genesis(params=Params(max_block_txs=2)))
    txs = [make_issue("CNY", [coin("CNY", 1, ALICE)], nonce=n) for n in range(2)]
    assert ledger.commit(*txs).codes == ["ok", "ok"]


def test_empty_block_changes_nothing():
    ledger = Ledger()
    ledger.fund(ALICE, "CNY", 3)
    before = ledger.view.commitment()
    block = ledger.commit()
    assert block.codes == []
    assert block.outcome.commitment == before
    assert block.block.header.tx_root == merkle_root([])


def test_receipts_follow_transaction_order():
    ledger = Ledger()
    (a,) = ledger.fund(ALICE, "CNY", 10)
    txs = [
        make_transfer([(a, owner(MALLORY))], [coin("CNY", 10, MALLORY)]),
        make_transfer([(a, owner(ALICE))], [coin("CNY", 10, BOB)]),
        make_transfer([(a, owner(ALICE))], [coin("CNY", 10, ALICE)]),
    ]
    assert ledger.commit(*txs).codes == ["sig.invalid", ACCEPTED, "input.spent"]


def test_tx_root_is_the_merkle_root_of_ids_followed_by_receipts():
    txids = [bytes([i]) * 32 for i in range(3)]
    receipts = [Receipt(code="ok"), Receipt(code="input.spent"), Receipt(code="ok")]
    expected = merkle_root([t + encode(r) for t, r in zip(txids, receipts, strict=True)])
    assert tx_root(txids, receipts) == expected
    assert tx_root(txids, [Receipt(code="ok")] * 3) != expected


def test_build_header_records_context_parent_root_and_commitment():
    ledger = Ledger()
    tx = make_issue("CNY", [coin("CNY", 5, ALICE)])
    ctx = BlockContext(chain_id=CHAIN_ID, height=1, time_ms=GENESIS_TIME_MS + 1)
    outcome = apply_block(ledger.view, [tx], ctx, verify)
    header = build_header(ctx, genesis_hash(ledger.genesis), [tx_id(tx.body)], outcome)
    assert header.chain_id == CHAIN_ID
    assert header.height == 1
    assert header.time_ms == GENESIS_TIME_MS + 1
    assert header.prev_hash == genesis_hash(ledger.genesis)
    assert header.tx_count == 1
    assert header.tx_root == tx_root([tx_id(tx.body)], outcome.receipts)
    assert header.state_root == outcome.commitment.digest()


def test_first_block_points_to_the_genesis_hash():
    ledger = busy_ledger()
    assert ledger.blocks[0].block.header.prev_hash == genesis_hash(ledger.genesis)
    for parent, child in zip(ledger.blocks, ledger.blocks[1:], strict=False):
        assert bytes(child.block.header.prev_hash) == bytes(block_hash(parent.block.header))


def test_execute_block_reproduces_blocks_made_elsewhere():
    source = busy_ledger()
    copy = replay(source.blocks)
    assert copy.view.coins == source.view.coins
    assert copy.view.supplies == source.view.supplies
    assert copy.view.commitment() == source.view.commitment()
    assert copy.tip == source.tip


def test_execute_block_accepts_precomputed_ids():
    source = busy_ledger()
    ledger = Ledger()
    first = source.blocks[0]
    outcome = execute_block(ledger.view, first.block, CHAIN_ID, 1, ledger.tip, verify, first.txids)
    assert outcome.receipts == first.outcome.receipts


def tampered(header_change=None, receipts=None):
    """The first block of a busy ledger with a changed header or receipts."""
    block = busy_ledger().blocks[0].block
    header = block.header
    if header_change:
        header = msgspec.structs.replace(header, **header_change)
    return msgspec.structs.replace(
        block, header=header, receipts=block.receipts if receipts is None else receipts
    )


def expect_mismatch(block, *, height=1, prev=None):
    ledger = Ledger()
    prev_hash = ledger.tip if prev is None else prev
    with pytest.raises(BlockMismatchError) as info:
        execute_block(ledger.view, block, CHAIN_ID, height, prev_hash, verify)
    assert type(info.value) is BlockMismatchError
    assert info.value.code == "block.mismatch"
    return info.value


def test_execute_block_rejects_another_chain():
    error = expect_mismatch(tampered({"chain_id": "tally-other"}))
    assert error.detail == {"chain_id": "tally-other"}


def test_execute_block_rejects_wrong_height():
    error = expect_mismatch(tampered({"height": 2}))
    assert error.detail == {"height": 2, "expected": 1}


def test_execute_block_rejects_wrong_parent():
    error = expect_mismatch(tampered(), prev=bytes(32))
    assert error.detail == {"height": 1, "expected": 1}


@pytest.mark.parametrize(
    "change",
    [{"state_root": bytes(32)}, {"tx_root": bytes(32)}, {"tx_count": 2}],
    ids=["state-root", "tx-root", "tx-count"],
)
def test_execute_block_rejects_header_that_differs_from_execution(change):
    block = tampered(change)
    error = expect_mismatch(block)
    assert error.detail["height"] == 1
    assert error.detail["found_state_root"] == block.header.state_root.hex()
    assert (
        error.detail["expected_state_root"] == busy_ledger().blocks[0].block.header.state_root.hex()
    )


def test_execute_block_rejects_receipts_that_differ_from_execution():
    expect_mismatch(tampered(receipts=(Receipt(code="sig.invalid"),)))


def test_execute_block_takes_the_block_time_as_given_by_the_orderer():
    block = tampered({"time_ms": 5})
    ledger = Ledger()
    outcome = execute_block(ledger.view, block, CHAIN_ID, 1, ledger.tip, verify)
    assert outcome.receipts == list(block.receipts)


def test_execute_block_refuses_a_transaction_over_the_size_limit():
    # A faulty orderer's block: `apply_block` takes objects, so only the receiver's
    # `execute_block` sees that the encoded transaction is over the limit.
    genesis = make_genesis(params=Params(max_tx_bytes=1024))
    big = make_issue("CNY", [coin("CNY", 1, ALICE) for _ in range(40)])
    committed = Ledger(genesis).commit(big)
    small = Ledger(genesis)
    assert len(encode(big)) > 1024
    with pytest.raises(BlockTxTooLargeError) as info:
        execute_block(small.view, committed.block, CHAIN_ID, 1, small.tip, verify)
    assert info.value.code == "block.tx_too_large"
    assert info.value.detail["index"] == 0
    assert info.value.detail["limit"] == 1024
