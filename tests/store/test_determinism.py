"""Determinism across backends: the same random blocks give the same receipts and state."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st

from tally.model import Coin, CoinId, Height, SignedTx, Transfer, coin_id, decode, tx_id
from tally.store import LedgerStore, LmdbStore, MemoryStore

from .chain import (
    ALICE,
    BOB,
    OWNERS,
    USD,
    add_member,
    coin,
    issue,
    key,
    make_genesis,
    owner_key,
    prepare_block,
    redeem,
    register_asset,
    sign,
    transfer,
)

Pool = list[tuple[CoinId, Coin]]
Builder = Callable[["RandomTransactions", Pool, int, int], SignedTx | None]


class RandomTransactions:
    """Turns drawn (intent, number) pairs into transactions against a ledger's state.

    It expects each transaction to be accepted when it builds the next one in the same
    block; where that guess is wrong the later ones are rejected, identically on every
    backend, and the next block starts again from the ledger's real coin set.
    """

    def __init__(self) -> None:
        self.nonce = 0
        self.history: list[SignedTx] = []
        self.spent: Pool = []

    def block(self, ledger: LedgerStore, intents: list[tuple[str, int]]) -> list[SignedTx]:
        height = ledger.tip()[0] + 1
        pool: Pool = [(cid, decode(data, Coin)) for cid, data in ledger.unspent()]
        txs = []
        for intent, number in intents:
            tx = self.builders[intent](self, pool, number, height)
            if tx is not None:
                txs.append(tx)
                self.history.append(tx)
        return txs

    def _next_nonce(self) -> int:
        self.nonce += 1
        return self.nonce

    def _issue(self, pool: Pool, n: int, height: int) -> SignedTx:
        tx = issue(
            [1 + n % 1000, 1 + n % 7],
            OWNERS[n % 3],
            nonce=self._next_nonce(),
            valid_until=height + n % 4,  # short windows, so that pruning happens
        )
        self._add_outputs(pool, tx)
        return tx

    def _issue_usd(self, pool: Pool, n: int, height: int) -> SignedTx:
        # Rejected as asset.unknown until a block registers USD to BOB.
        tx = issue([1 + n % 50], ALICE, nonce=self._next_nonce(), asset=USD, issuer=BOB)
        self._add_outputs(pool, tx)
        return tx

    def _pay(self, pool: Pool, n: int, height: int) -> SignedTx | None:
        if not pool:
            return None
        cid, spent = pool.pop(n % len(pool))
        payee = OWNERS[(n // 7) % 3]
        if spent.amount > 1:
            part = 1 + n % (spent.amount - 1)
            outputs = [
                coin(part, payee, spent.asset),
                coin(spent.amount - part, owner_key(spent), spent.asset),
            ]
        else:
            outputs = [coin(spent.amount, payee, spent.asset)]
        tx = transfer([(cid, spent)], outputs, valid_until=height + 2)
        self.spent.append((cid, spent))
        self._add_outputs(pool, tx)
        return tx

    def _merge(self, pool: Pool, n: int, height: int) -> SignedTx | None:
        if not pool:
            return None
        asset = pool[n % len(pool)][1].asset
        same = [i for i, (_, c) in enumerate(pool) if c.asset == asset][:3]
        if len(same) < 2:
            return None
        inputs = [pool[i] for i in same]
        for i in reversed(same):
            pool.pop(i)
        total = sum(c.amount for _, c in inputs)
        tx = transfer(inputs, [coin(total, OWNERS[n % 3], inputs[0][1].asset)])
        self.spent.extend(inputs)
        self._add_outputs(pool, tx)
        return tx

    def _redeem(self, pool: Pool, n: int, height: int) -> SignedTx | None:
        if not pool:
            return None
        cid, spent = pool.pop(n % len(pool))
        self.spent.append((cid, spent))
        return redeem([(cid, spent)], asset=spent.asset)

    def _replay(self, pool: Pool, n: int, height: int) -> SignedTx | None:
        return self.history[n % len(self.history)] if self.history else None

    def _double_spend(self, pool: Pool, n: int, height: int) -> SignedTx | None:
        if not self.spent:
            return None
        cid, spent = self.spent[n % len(self.spent)]
        return transfer(
            [(cid, spent)], [coin(spent.amount, BOB, spent.asset)], valid_until=height + 1
        )

    def _expired(self, pool: Pool, n: int, height: int) -> SignedTx | None:
        if height < 2:
            return None
        return issue([1], ALICE, nonce=self._next_nonce(), valid_until=height - 1)

    def _bad_signature(self, pool: Pool, n: int, height: int) -> SignedTx | None:
        if not pool:
            return None
        cid, spent = pool[n % len(pool)]
        body = Transfer(
            inputs=(cid,),
            outputs=(coin(spent.amount, ALICE, spent.asset),),
            valid_until=Height(height + 1),
        )
        return sign(body, [key(99)])

    def _register(self, pool: Pool, n: int, height: int) -> SignedTx:
        return register_asset(USD, BOB, nonce=self._next_nonce())

    def _add_member(self, pool: Pool, n: int, height: int) -> SignedTx:
        # Few distinct members, so that some additions are refused as duplicates.
        return add_member(f"node{1 + n % 3}", key(100 + n % 3), nonce=self._next_nonce())

    def _add_outputs(self, pool: Pool, tx: SignedTx) -> None:
        txid = tx_id(tx.body)
        outputs = getattr(tx.body, "outputs", ())
        pool.extend((coin_id(txid, i), c) for i, c in enumerate(outputs))

    builders: ClassVar[dict[str, Builder]] = {
        "issue": _issue,
        "issue_usd": _issue_usd,
        "pay": _pay,
        "merge": _merge,
        "redeem": _redeem,
        "replay": _replay,
        "double_spend": _double_spend,
        "expired": _expired,
        "bad_signature": _bad_signature,
        "register": _register,
        "add_member": _add_member,
    }


_BLOCKS = st.lists(
    st.lists(
        st.tuples(st.sampled_from(sorted(RandomTransactions.builders)), st.integers(0, 2**16)),
        max_size=6,
    ),
    min_size=1,
    max_size=8,
)


def _state(ledger: LedgerStore) -> tuple[object, ...]:
    return (
        ledger.tip(),
        list(ledger.unspent()),
        list(ledger.supplies()),
        ledger.issuers(),
        ledger.governance(),
        ledger.stored_commitment().digest(),
    )


@settings(max_examples=30, deadline=None)
@given(blocks=_BLOCKS)
def test_memory_and_lmdb_ledgers_fed_the_same_blocks_agree(blocks):
    with tempfile.TemporaryDirectory() as directory:
        lmdb_kv = LmdbStore(directory, map_size=16 * 2**20)
        memory = LedgerStore.open(MemoryStore())
        durable = LedgerStore.open(lmdb_kv)
        for ledger in (memory, durable):
            ledger.init_genesis(make_genesis())
        draw = RandomTransactions()
        for intents in blocks:
            txs = draw.block(memory, intents)
            on_memory = prepare_block(memory, txs)
            on_lmdb = prepare_block(durable, txs)
            assert on_memory.outcome.receipts == on_lmdb.outcome.receipts
            assert on_memory.block == on_lmdb.block  # header, so state root, included
            on_memory.commit_to(memory)
            on_lmdb.commit_to(durable)
            for ledger in (memory, durable):
                stored = ledger.stored_commitment().digest()
                assert stored == ledger.recompute_commitment().digest()
                assert stored == on_memory.block.header.state_root
        assert _state(memory) == _state(durable)
        for tx in draw.history:
            assert memory.tx(tx_id(tx.body)) == durable.tx(tx_id(tx.body))
        lmdb_kv.close()
        reopened_kv = LmdbStore(directory, map_size=16 * 2**20)
        try:
            assert _state(LedgerStore.open(reopened_kv)) == _state(memory)
        finally:
            reopened_kv.close()
