"""LedgerStore on both backends: genesis, committing blocks, queries, pruning, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from tally.crypto.commitment import StateCommitment
from tally.model import (
    ACCEPTED,
    BlockHash,
    Coin,
    CoinId,
    Height,
    PublicKey,
    Receipt,
    TxId,
    coin_id,
    encode,
    genesis_hash,
    lock_hash,
    tx_id,
)
from tally.rules import Supply, governance_from_genesis
from tally.store import (
    SCHEMA_VERSION,
    AlreadyInitialisedError,
    BlockOrderError,
    InconsistentBlockError,
    KeyValueReader,
    KeyValueStore,
    LedgerStore,
    NotInitialisedError,
    TxRecord,
    WriteBatch,
    schema,
    schema_version,
)

from .chain import (
    ALICE,
    BOB,
    CAROL,
    CNY,
    ISSUER,
    NODE,
    USD,
    PreparedBlock,
    add_member,
    coin,
    commit,
    issue,
    lock_of,
    make_genesis,
    prepare_block,
    redeem,
    register_asset,
    transfer,
)
from .conftest import Backend


@pytest.fixture
def ledger(kv: KeyValueStore) -> LedgerStore:
    ledger = LedgerStore.open(kv)
    ledger.init_genesis(make_genesis())
    return ledger


def assert_commitment_consistent(
    ledger: LedgerStore, prepared: PreparedBlock | None = None
) -> None:
    stored = ledger.stored_commitment().digest()
    assert stored == ledger.recompute_commitment().digest()
    assert stored == ledger.commitment().digest()
    if prepared is not None:
        assert stored == prepared.block.header.state_root


def outputs_of(prepared: PreparedBlock, index: int) -> list[tuple[CoinId, Coin]]:
    txid = prepared.txids[index]
    body = prepared.block.txs[index].body
    return [(coin_id(txid, i), c) for i, c in enumerate(body.outputs)]  # type: ignore[union-attr]


# -- genesis ----------------------------------------------------------------------------


def test_open_on_empty_store_writes_schema_version_and_is_not_initialised(kv):
    ledger = LedgerStore.open(kv)
    assert schema_version(kv) == SCHEMA_VERSION
    assert not ledger.is_initialised()
    with pytest.raises(NotInitialisedError):
        ledger.tip()
    with pytest.raises(NotInitialisedError):
        ledger.governance()
    with pytest.raises(NotInitialisedError):
        ledger.stored_commitment()


def test_init_genesis_stores_tip_governance_issuers_and_empty_commitment(kv):
    genesis = make_genesis()
    ledger = LedgerStore.open(kv)
    ledger.init_genesis(genesis)
    assert ledger.is_initialised()
    assert ledger.genesis() == genesis
    assert ledger.tip() == (0, BlockHash(genesis_hash(genesis)))
    assert ledger.height_of(genesis_hash(genesis)) == 0
    assert ledger.governance() == governance_from_genesis(genesis)
    assert ledger.issuer(CNY) == ISSUER.public_key
    assert ledger.issuers() == {CNY: ISSUER.public_key}
    assert ledger.issuer(USD) is None
    assert ledger.supply(CNY) is None
    assert ledger.commitment().digest() == StateCommitment().digest()
    assert_commitment_consistent(ledger)
    assert ledger.block(Height(0)) is None
    assert ledger.block(Height(1)) is None


def test_init_genesis_twice_is_refused(ledger):
    with pytest.raises(AlreadyInitialisedError):
        ledger.init_genesis(make_genesis())


def test_reopened_ledger_loads_tip_governance_and_commitment(backend: Backend) -> None:
    kv = backend.open()
    ledger = LedgerStore.open(kv)
    ledger.init_genesis(make_genesis())
    commit(ledger, [issue([500], ALICE)])
    commit(ledger, [add_member("node1", CAROL)])
    before = (ledger.tip(), ledger.governance(), ledger.commitment().digest())
    reopened = LedgerStore.open(backend.reopen(kv))
    assert (reopened.tip(), reopened.governance(), reopened.commitment().digest()) == before
    assert reopened.genesis() == make_genesis()


# -- commit and queries -----------------------------------------------------------------


def test_commit_blocks_updates_coins_spenders_supply_and_indexes(ledger):
    b1 = commit(ledger, [issue([600, 400], ALICE)])
    assert_commitment_consistent(ledger, b1)
    assert b1.outcome.receipts == [Receipt(code=ACCEPTED)]
    (c0, coin0), (c1, coin1) = outputs_of(b1, 0)
    assert ledger.coin(c0) == coin0 == coin(600, ALICE)
    assert ledger.supply(CNY) == Supply(issued=1000, redeemed=0)
    assert ledger.coins_of(lock_hash(lock_of(ALICE))) == sorted([(c0, coin0), (c1, coin1)])

    pay = transfer([(c0, coin0)], [coin(250, BOB), coin(350, ALICE)])
    b2 = commit(ledger, [pay])
    assert_commitment_consistent(ledger, b2)
    pay_id = tx_id(pay.body)
    assert ledger.coin(c0) is None
    assert ledger.spender(c0) == pay_id
    assert ledger.spender(c1) is None
    (bob_id, bob_coin), (change_id, change) = outputs_of(b2, 0)
    assert ledger.coins_of(lock_hash(lock_of(BOB))) == [(bob_id, bob_coin)]
    assert ledger.coins_of(lock_hash(lock_of(ALICE))) == sorted([(c1, coin1), (change_id, change)])
    assert ledger.tx(pay_id) == TxRecord(height=Height(2), index=0, receipt=Receipt(code=ACCEPTED))

    b3 = commit(ledger, [redeem([(bob_id, bob_coin)])])
    assert_commitment_consistent(ledger, b3)
    assert ledger.supply(CNY) == Supply(issued=1000, redeemed=250)
    assert ledger.coins_of(lock_hash(lock_of(BOB))) == []
    assert ledger.spender(bob_id) == b3.txids[0]
    assert dict(ledger.supplies()) == {CNY: Supply(issued=1000, redeemed=250)}
    assert sorted(cid for cid, _ in ledger.unspent()) == sorted([c1, change_id])
    assert dict(ledger.unspent())[c1] == encode(coin1)

    for height, prepared in enumerate((b1, b2, b3), start=1):
        digest = prepared.certificate.block_hash
        assert ledger.block(Height(height)) == prepared.block
        assert ledger.block_bytes(Height(height)) == encode(prepared.block)
        assert ledger.certificate(Height(height)) == prepared.certificate
        assert ledger.height_of(digest) == height
    assert ledger.tip() == (3, b3.certificate.block_hash)
    assert ledger.block(Height(4)) is None
    assert ledger.certificate(Height(4)) is None
    assert ledger.tx(TxId(bytes(32))) is None


def test_coin_created_and_spent_in_one_block_is_only_in_spent_index(ledger):
    first = issue([100], ALICE)
    first_id = tx_id(first.body)
    created = coin_id(first_id, 0)
    spend = transfer([(created, coin(100, ALICE))], [coin(100, BOB)])
    prepared = commit(ledger, [first, spend])
    assert prepared.outcome.receipts == [Receipt(code=ACCEPTED)] * 2
    assert ledger.coin(created) is None
    assert ledger.spender(created) == tx_id(spend.body)
    assert ledger.coins_of(lock_hash(lock_of(ALICE))) == []
    assert_commitment_consistent(ledger, prepared)


def test_rejected_transaction_is_indexed_with_its_rejection(ledger):
    ghost = transfer([(CoinId(bytes(32)), coin(5, ALICE))], [coin(5, BOB)])
    prepared = commit(ledger, [issue([10], ALICE), ghost])
    record = ledger.tx(tx_id(ghost.body))
    assert record == TxRecord(height=Height(1), index=1, receipt=Receipt(code="input.unknown"))
    assert not record.receipt.accepted
    assert not ledger.is_committed(tx_id(ghost.body))
    assert_commitment_consistent(ledger, prepared)


def test_replayed_transaction_keeps_its_first_accepted_record(ledger):
    tx = issue([10], ALICE)
    commit(ledger, [tx])
    replay = commit(ledger, [issue([1], BOB, nonce=1), tx])
    assert replay.outcome.receipts[1] == Receipt(code="tx.replayed")
    assert ledger.tx(tx_id(tx.body)) == TxRecord(
        height=Height(1), index=0, receipt=Receipt(code=ACCEPTED)
    )


def test_transaction_accepted_after_a_rejection_is_indexed_as_accepted(ledger):
    pay = transfer([(coin_id(tx_id(issue([10], ALICE).body), 0), coin(10, ALICE))], [coin(10, BOB)])
    commit(ledger, [pay])  # its input does not exist yet
    assert ledger.tx(tx_id(pay.body)).receipt.code == "input.unknown"
    commit(ledger, [issue([10], ALICE)])
    commit(ledger, [pay])
    assert ledger.tx(tx_id(pay.body)) == TxRecord(
        height=Height(3), index=0, receipt=Receipt(code=ACCEPTED)
    )


def test_coins_of_stops_at_limit(ledger):
    commit(ledger, [issue(list(range(1, 8)), ALICE)])
    alice = lock_hash(lock_of(ALICE))
    every = ledger.coins_of(alice)
    assert len(every) == 7
    assert ledger.coins_of(alice, limit=3) == every[:3]
    assert ledger.coins_of(alice, limit=0) == []


def test_governance_and_issuer_changes_are_stored(backend: Backend) -> None:
    kv = backend.open()
    ledger = LedgerStore.open(kv)
    ledger.init_genesis(make_genesis())
    prepared = commit(ledger, [register_asset(USD, BOB), add_member("node1", CAROL, nonce=1)])
    assert prepared.outcome.receipts == [Receipt(code=ACCEPTED)] * 2
    assert ledger.issuer(USD) == BOB.public_key
    assert ledger.issuers() == {CNY: ISSUER.public_key, USD: BOB.public_key}
    members = [m.key for m in ledger.governance().members]
    assert members == [PublicKey(NODE.public_key), PublicKey(CAROL.public_key)]
    reopened = LedgerStore.open(backend.reopen(kv))
    assert reopened.governance() == ledger.governance()
    assert reopened.issuer(USD) == BOB.public_key


def test_commitment_hands_out_copies(ledger):
    commit(ledger, [issue([10], ALICE)])
    digest = ledger.commitment().digest()
    copy = ledger.commitment()
    copy.add(b"not in the ledger")
    assert ledger.commitment().digest() == digest


# -- idempotency pruning ----------------------------------------------------------------


def idempotency_rows(kv: KeyValueStore) -> list[tuple[int, bytes]]:
    return [schema.parse_expiry_key(key) for key, _ in kv.iter_prefix(schema.expiry_prefix())]


def test_idempotency_rows_are_pruned_once_height_passes_valid_until(kv, ledger):
    short = issue([1], ALICE, nonce=1, valid_until=1)
    long = issue([2], ALICE, nonce=2, valid_until=3)
    commit(ledger, [short, long])
    short_id, long_id = tx_id(short.body), tx_id(long.body)
    assert ledger.is_committed(short_id)
    assert ledger.is_committed(long_id)
    assert idempotency_rows(kv) == [(1, short_id), (3, long_id)]

    commit(ledger, [])  # height 2: valid_until 1 < 2 is pruned, 3 stays
    assert not ledger.is_committed(short_id)
    assert kv.get(schema.idempotency_key(short_id)) is None
    assert ledger.is_committed(long_id)
    assert idempotency_rows(kv) == [(3, long_id)]

    commit(ledger, [])  # height 3: valid_until 3 is not below 3
    assert ledger.is_committed(long_id)
    commit(ledger, [])  # height 4
    assert not ledger.is_committed(long_id)
    assert idempotency_rows(kv) == []
    # The receipts stay: the tx index is permanent.
    assert ledger.tx(short_id).receipt.accepted


# -- refusals ---------------------------------------------------------------------------


def test_commit_refuses_a_block_at_the_wrong_height(ledger):
    prepared = commit(ledger, [issue([10], ALICE)])
    tip = ledger.tip()
    with pytest.raises(BlockOrderError) as caught:
        prepared.commit_to(ledger)  # height 1 again
    assert (caught.value.expected_height, caught.value.found_height) == (2, 1)
    skipping = prepare_block(ledger, [], height=3)
    with pytest.raises(BlockOrderError) as caught:
        skipping.commit_to(ledger)
    assert (caught.value.expected_height, caught.value.found_height) == (2, 3)
    assert ledger.tip() == tip
    assert ledger.block(Height(2)) is None


def test_commit_refuses_a_block_with_the_wrong_parent(ledger):
    orphan = prepare_block(ledger, [issue([10], ALICE)], prev_hash=bytes(32))
    with pytest.raises(BlockOrderError) as caught:
        orphan.commit_to(ledger)
    assert caught.value.found_prev_hash == bytes(32)
    assert caught.value.expected_prev_hash == genesis_hash(make_genesis())
    assert ledger.tip()[0] == 0
    assert list(ledger.unspent()) == []


def test_commit_refuses_a_certificate_for_another_block(ledger):
    first = prepare_block(ledger, [issue([10], ALICE)])
    other = prepare_block(ledger, [issue([20], ALICE)])
    with pytest.raises(InconsistentBlockError):
        ledger.commit_block(first.block, other.certificate, first.txids, first.outcome)
    with pytest.raises(InconsistentBlockError):
        ledger.commit_block(first.block, first.certificate, first.txids, other.outcome)
    with pytest.raises(InconsistentBlockError):
        ledger.commit_block(first.block, first.certificate, [], first.outcome)
    assert ledger.tip()[0] == 0


class _FailOnTip:
    """A store whose batches raise when the tip is written: a crash mid-commit."""

    def __init__(self, inner: KeyValueStore) -> None:
        self.inner = inner

    def get(self, key: bytes) -> bytes | None:
        return self.inner.get(key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self.inner.iter_prefix(prefix)

    def snapshot(self) -> AbstractContextManager[KeyValueReader]:
        return self.inner.snapshot()

    @contextmanager
    def atomic(self) -> Iterator[WriteBatch]:
        with self.inner.atomic() as batch:
            yield _FailingBatch(batch)

    def close(self) -> None:
        self.inner.close()


class _FailingBatch:
    def __init__(self, inner: WriteBatch) -> None:
        self.inner = inner

    def get(self, key: bytes) -> bytes | None:
        return self.inner.get(key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self.inner.iter_prefix(prefix)

    def put(self, key: bytes, value: bytes) -> None:
        if key == schema.tip_key():
            raise OSError("simulated crash")
        self.inner.put(key, value)

    def delete(self, key: bytes) -> None:
        self.inner.delete(key)


def test_a_commit_that_fails_midway_writes_nothing(kv, ledger):
    commit(ledger, [issue([10], ALICE)])
    rows_before = list(kv.iter_prefix(b""))
    tip, commitment = ledger.tip(), ledger.commitment().digest()
    failing = LedgerStore.open(_FailOnTip(kv))
    prepared = prepare_block(failing, [issue([20], BOB, nonce=1)])
    with pytest.raises(OSError, match="simulated crash"):
        prepared.commit_to(failing)
    assert list(kv.iter_prefix(b"")) == rows_before
    assert failing.tip() == tip
    assert failing.commitment().digest() == commitment


def _history_rows(kv: KeyValueStore) -> list[tuple[bytes, bytes]]:
    prefix = schema.KEY_PREFIX + schema.TABLES["history"]
    origins = schema.KEY_PREFIX + schema.TABLES["origin"]
    return list(kv.iter_prefix(prefix)) + list(kv.iter_prefix(origins))


def test_origin_and_history_follow_coins_and_addresses(ledger):
    b1 = commit(ledger, [issue([600, 400], ALICE)])
    (c0, coin0), (c1, _) = outputs_of(b1, 0)
    pay = transfer([(c0, coin0)], [coin(250, BOB), coin(350, ALICE)])
    b2 = commit(ledger, [pay])
    ghost = transfer([(CoinId(bytes(32)), coin(5, ALICE))], [coin(5, CAROL)])
    commit(ledger, [ghost])  # rejected: no origin, no history

    issue_id, pay_id = b1.txids[0], tx_id(pay.body)
    origin = ledger.origin(c1)
    assert (origin.txid, origin.output, origin.height) == (issue_id, 1, 1)
    assert ledger.origin(c0).txid == issue_id  # spent coins keep their origin
    assert ledger.origin(outputs_of(b2, 0)[0][0]).txid == pay_id
    assert ledger.origin(coin_id(tx_id(ghost.body), 0)) is None

    alice = ledger.history(lock_hash(lock_of(ALICE)))
    assert [(e.height, e.txid, e.received, e.spent) for e in alice] == [
        (2, pay_id, 1, 1),  # newest first: change back, one coin spent
        (1, issue_id, 2, 0),
    ]
    assert [(e.txid, e.received) for e in ledger.history(lock_hash(lock_of(BOB)))] == [(pay_id, 1)]
    assert ledger.history(lock_hash(lock_of(CAROL))) == []
    assert len(ledger.history(lock_hash(lock_of(ALICE)), limit=1)) == 1


def test_migration_to_version_2_rebuilds_origin_and_history_from_blocks(backend: Backend) -> None:
    kv = backend.open()
    ledger = LedgerStore.open(kv)
    ledger.init_genesis(make_genesis())
    b1 = commit(ledger, [issue([600, 400], ALICE)])
    (c0, coin0), _ = outputs_of(b1, 0)
    commit(ledger, [transfer([(c0, coin0)], [coin(250, BOB), coin(350, ALICE)])])
    written = _history_rows(kv)
    assert len(written) == 7  # 4 origins; Alice twice, Bob once in history
    # Turn the store back into a version-1 store: no origin or history rows.
    with kv.atomic() as batch:
        for key, _ in written:
            batch.delete(key)
        batch.put(schema.schema_version_key(), (1).to_bytes(4, "big"))
    kv = backend.reopen(kv)
    reopened = LedgerStore.open(kv)  # migrates
    assert schema_version(kv) == SCHEMA_VERSION == 3
    assert _history_rows(kv) == written
    origin = reopened.origin(c0)
    assert origin is not None
    assert origin.txid == b1.txids[0]
