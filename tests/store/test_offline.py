"""LedgerStore and offline payments: barred keys, double-spend proofs, inclusion data, and the
migration that added their tables."""

from __future__ import annotations

import pytest

from tally.crypto.schnorr import PrivateKey, verify
from tally.model import (
    Coin,
    CoinId,
    Height,
    OfflineLock,
    PublicKey,
    SignedTx,
    Transfer,
    TxId,
    coin_id,
    encode,
    tx_id,
)
from tally.model.types import Amount
from tally.rules import (
    check_certificate,
    verify_double_spend_proof,
    verify_tx_inclusion,
)
from tally.store import (
    SCHEMA_VERSION,
    DoubleSpendRecord,
    KeyValueStore,
    LedgerStore,
    migrate,
    schema,
    schema_version,
)

from .chain import (
    ALICE,
    BOB,
    CAROL,
    CHAIN_ID,
    CNY,
    KEYS,
    PreparedBlock,
    coin,
    commit,
    issue,
    make_genesis,
    sign,
    transfer,
)
from .conftest import Backend

UNLOCK = 50


def offline(amount: int, owner: PrivateKey, unlock: int = UNLOCK) -> Coin:
    lock = OfflineLock(owner=PublicKey(owner.public_key), unlock_height=Height(unlock))
    return Coin(asset=CNY, amount=Amount(amount), lock=lock)


def hop(cid: CoinId, spent: Coin, outputs: list[Coin]) -> SignedTx:
    """A transfer of an offline coin signed by its owner."""
    assert isinstance(spent.lock, OfflineLock)
    body = Transfer(inputs=(cid,), outputs=tuple(outputs), valid_until=Height(100))
    return sign(body, [KEYS[spent.lock.owner]])


@pytest.fixture
def ledger(kv: KeyValueStore) -> LedgerStore:
    ledger = LedgerStore.open(kv)
    ledger.init_genesis(make_genesis())
    return ledger


def fund_purse(ledger: LedgerStore, amount: int = 1_000) -> tuple[CoinId, Coin]:
    """Alice's offline coin of `amount`, created by a committed transfer."""
    b1 = commit(ledger, [issue([amount], ALICE)])
    cid = coin_id(b1.txids[0], 0)
    purse = offline(amount, ALICE)
    b2 = commit(ledger, [transfer([(cid, coin(amount, ALICE))], [purse])])
    assert b2.block.receipts[0].accepted
    return coin_id(b2.txids[0], 0), purse


def double_spend(ledger: LedgerStore) -> tuple[CoinId, SignedTx, SignedTx, PreparedBlock]:
    cid, purse = fund_purse(ledger)
    first = hop(cid, purse, [offline(600, BOB), offline(400, ALICE)])
    second = hop(cid, purse, [offline(1_000, CAROL)])
    commit(ledger, [first])
    prepared = commit(ledger, [second])
    assert [r.code for r in prepared.block.receipts] == ["offline.double_spend"]
    return cid, first, second, prepared


def test_a_double_spend_bars_the_owner_and_keeps_its_evidence(ledger):
    cid, first, second, prepared = double_spend(ledger)
    alice = PublicKey(ALICE.public_key)
    assert ledger.is_barred(alice)
    assert not ledger.is_barred(PublicKey(BOB.public_key))
    assert list(ledger.barred()) == [alice]
    assert ledger.double_spends(alice) == [
        DoubleSpendRecord(
            owner=alice,
            coin_id=cid,
            first=tx_id(first.body),
            second=tx_id(second.body),
            height=prepared.block.header.height,
        )
    ]
    assert ledger.double_spends(PublicKey(BOB.public_key)) == []
    with ledger.reader() as snapshot:
        assert snapshot.is_barred(alice)
        assert snapshot.spent(cid) == (tx_id(first.body), offline(1_000, ALICE))
    # The barred key is in the commitment, recomputed or stored.
    stored = ledger.stored_commitment()
    assert stored == ledger.recompute_commitment() == ledger.commitment()
    assert stored.digest() == prepared.block.header.state_root


def test_double_spend_proofs_are_rebuilt_from_the_blocks_and_verify(ledger):
    cid, first, second, _ = double_spend(ledger)
    (proof,) = ledger.double_spend_proofs(PublicKey(ALICE.public_key))
    assert (proof.chain_id, proof.coin_id, proof.owner) == (CHAIN_ID, cid, ALICE.public_key)
    assert (proof.first, proof.second) == (first, second)
    verify_double_spend_proof(proof)
    assert ledger.double_spend_proofs(PublicKey(BOB.public_key)) == []


def test_barred_keys_and_proofs_survive_a_reopen(backend: Backend) -> None:
    kv = backend.open()
    ledger = LedgerStore.open(kv)
    ledger.init_genesis(make_genesis())
    double_spend(ledger)
    alice = PublicKey(ALICE.public_key)
    proofs = ledger.double_spend_proofs(alice)
    reopened = LedgerStore.open(backend.reopen(kv))
    assert reopened.is_barred(alice)
    assert reopened.double_spend_proofs(alice) == proofs
    assert reopened.stored_commitment() == reopened.recompute_commitment()


def test_inclusion_gives_a_path_the_header_and_certificate_accept(ledger):
    b1 = commit(ledger, [issue([5], ALICE, nonce=n) for n in range(5)])
    txid = b1.txids[3]
    inclusion = ledger.inclusion(txid)
    assert inclusion is not None
    assert (inclusion.txid, inclusion.height, inclusion.index) == (txid, 1, 3)
    assert inclusion.tx == b1.block.txs[3]
    assert inclusion.header == b1.block.header
    assert inclusion.certificate == b1.certificate
    verify_tx_inclusion(
        inclusion.header, inclusion.tx, inclusion.receipt, inclusion.index, inclusion.proof
    )
    check_certificate(inclusion.certificate, inclusion.header, make_genesis().members, verify)
    assert ledger.inclusion(TxId(bytes(32))) is None


def test_inclusion_of_a_rejected_transaction_proves_its_receipt(ledger):
    ghost = transfer([(CoinId(bytes(32)), coin(5, ALICE))], [coin(5, CAROL)])
    commit(ledger, [issue([5], ALICE)])
    commit(ledger, [ghost])
    inclusion = ledger.inclusion(tx_id(ghost.body))
    assert inclusion is not None
    assert inclusion.receipt.code == "input.unknown"
    verify_tx_inclusion(inclusion.header, inclusion.tx, inclusion.receipt, 0, inclusion.proof)


def test_keys_of_the_offline_tables_parse_back():
    owner, cid, second = PublicKey(bytes([1]) * 32), CoinId(bytes([2]) * 32), TxId(bytes(32))
    key = schema.double_spend_key(owner, cid, second)
    assert key.startswith(schema.double_spend_prefix(owner))
    assert schema.parse_double_spend_key(key) == (owner, cid, second)
    assert schema.owner_of_barred_key(schema.barred_key(owner)) == owner
    assert schema.barred_key(owner).startswith(schema.barred_prefix())
    row = schema.pack_double_spend(TxId(bytes([3]) * 32), Height(2**40))
    assert schema.unpack_double_spend(row) == (bytes([3]) * 32, 2**40)


def test_migration_from_version_2_adds_the_offline_tables_and_keeps_everything(
    backend: Backend,
) -> None:
    kv = backend.open()
    assert migrate(kv, schema.MIGRATIONS[:2]) == 2  # a store as version 2 code wrote it
    ledger = LedgerStore(kv)  # written through the version 2 layout, without migrating
    ledger.init_genesis(make_genesis())
    b1 = commit(ledger, [issue([600, 400], ALICE)])
    cid = coin_id(b1.txids[0], 0)
    commit(ledger, [transfer([(cid, coin(600, ALICE))], [coin(600, BOB)])])
    rows = list(kv.iter_prefix(b""))
    assert schema_version(kv) == 2
    kv = backend.reopen(kv)
    reopened = LedgerStore.open(kv)  # migrates
    assert schema_version(kv) == SCHEMA_VERSION == 3
    version_row = (schema.schema_version_key(), (3).to_bytes(4, "big"))
    assert list(kv.iter_prefix(b"")) == sorted(
        [row for row in rows if row[0] != schema.schema_version_key()] + [version_row]
    )
    assert list(reopened.barred()) == []
    assert reopened.stored_commitment() == reopened.recompute_commitment()
    assert reopened.tip() == ledger.tip()
    # The migrated store takes offline coins from here on.
    rest, purse = coin_id(b1.txids[0], 1), offline(400, ALICE)
    done = commit(reopened, [transfer([(rest, coin(400, ALICE))], [purse])])
    assert done.block.receipts[0].accepted
    assert encode(reopened.coin(coin_id(done.txids[0], 0))) == encode(purse)
