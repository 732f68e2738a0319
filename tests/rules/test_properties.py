"""Invariants of the state transition under random sequences of blocks.

A Hypothesis state machine issues, pays, splits, merges, escrows, captures, reclaims and
redeems coins, funds offline purses, hands offline coins on hop by hop, settles them after
their unlock height, and tries double spends (online, and offline ones by the owner, which
are recorded and bar the owner), unbalanced transfers, forged signatures, early reclaims,
late captures, early settlements, offline payments to barred keys and replays, committing
each step as a block through `apply_block`. It keeps its own model of the unspent coins,
built from what each accepted transaction should do, and after every step checks on every
backend:

- the unspent coins are exactly the model's;
- conservation: per asset, the unspent coins add up to issued minus redeemed;
- no coin is spent twice: every spent coin id appears in exactly one block's delta, and
  none of them is unspent;
- every offline double spend is recorded: the barred keys are exactly the model's, and each
  double spend yields a proof that `verify_double_spend_proof` accepts;
- the running commitment equals one recomputed from scratch, barred keys included (and, for
  a `LedgerStore`, the stored commitment equals `recompute_commitment()`).

Each step also checks the exact receipt codes. The determinism machine runs a leader
(the dict-based view) and followers (`LedgerStore` over `MemoryStore` and `LmdbStore`)
that re-execute each block with `execute_block`, which refuses any difference in
receipts, transaction root or state root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import tally.store as store
from tally.crypto import StateCommitment, verify
from tally.model import (
    Block,
    Coin,
    CoinId,
    CommitCertificate,
    EscrowLock,
    Issue,
    KeyLock,
    MultiLock,
    OfflineLock,
    PublicKey,
    Redeem,
    Signature,
    SignedTx,
    Transfer,
    TxId,
    block_hash,
    coin_id,
    decode,
    encode,
    tx_id,
)
from tally.rules import (
    BlockOutcome,
    DoubleSpend,
    Supply,
    apply_block,
    build_header,
    check_certificate,
    commit_message,
    commitment_from_scratch,
    execute_block,
    verify_double_spend_proof,
)

from .helpers import (
    ALICE,
    BOB,
    CAROL,
    CHAIN_ID,
    DAVE,
    MALLORY,
    MEMBER,
    CommittedBlock,
    Ledger,
    SpendKeys,
    coin,
    context,
    escrow_lock,
    key,
    key_lock,
    make_issue,
    make_redeem,
    make_transfer,
    multi_lock,
    offline_lock,
    payee,
    payer,
    pub,
)

USERS = (ALICE, BOB, CAROL, DAVE)
ASSETS = ("CNY", "USD")
INDEX_OF = {pub(i): i for i in (*USERS, MALLORY)}
WINDOW = 300
"""Every transaction is valid for this many blocks: longer than any run, so replays stay
inside their window and are answered `tx.replayed`."""

picks = st.integers(min_value=0, max_value=2**16)
amounts = st.integers(min_value=1, max_value=10**12)
users = st.sampled_from(USERS)
assets = st.sampled_from(ASSETS)


# Backends: something that commits blocks and shows its state.


class Backend(Protocol):
    def height(self) -> int: ...
    def lead(self, txs: Sequence[SignedTx]) -> CommittedBlock: ...
    def follow(self, committed: CommittedBlock) -> BlockOutcome: ...
    def unspent(self) -> dict[CoinId, bytes]: ...
    def supplies(self) -> dict[str, Supply]: ...
    def barred(self) -> set[PublicKey]: ...
    def double_spends(self) -> set[DoubleSpend]: ...
    def running_commitment(self) -> StateCommitment: ...
    def audit(self) -> None: ...
    def close(self) -> None: ...


class MemoryViewBackend:
    """The dict-based `MemoryView` of the test helpers."""

    def __init__(self) -> None:
        self.ledger = Ledger()

    def height(self) -> int:
        return self.ledger.height

    def lead(self, txs: Sequence[SignedTx]) -> CommittedBlock:
        committed = self.ledger.commit(*txs)
        assert committed.block.header.state_root == committed.outcome.commitment.digest()
        return committed

    def follow(self, committed: CommittedBlock) -> BlockOutcome:
        ledger = self.ledger
        block = committed.block
        outcome = execute_block(
            ledger.view, block, CHAIN_ID, ledger.height + 1, ledger.tip, verify, committed.txids
        )
        ledger.view.apply(outcome.delta, outcome.commitment, block.header.height)
        ledger.tip = block_hash(block.header)
        return outcome

    def unspent(self) -> dict[CoinId, bytes]:
        return {cid: encode(c) for cid, c in self.ledger.view.coins.items()}

    def supplies(self) -> dict[str, Supply]:
        return dict(self.ledger.view.supplies)

    def barred(self) -> set[PublicKey]:
        return set(self.ledger.view.barred)

    def double_spends(self) -> set[DoubleSpend]:
        return set(self.ledger.view.double_spends)

    def running_commitment(self) -> StateCommitment:
        return self.ledger.view.commitment()

    def audit(self) -> None:
        assert self.running_commitment() == self.ledger.view.recompute_commitment()

    def close(self) -> None:
        pass


def certify(block: Block) -> CommitCertificate:
    """The solo orderer's certificate: the one member signs the block hash."""
    digest = block_hash(block.header)
    msg = commit_message(CHAIN_ID, block.header.height, digest, 0)
    return CommitCertificate(
        height=block.header.height,
        block_hash=digest,
        view=0,
        signatures=(Signature(signer=0, sig=key(MEMBER).sign(msg)),),
    )


class LedgerStoreBackend:
    """A `LedgerStore` over a key-value store, written the way the node writes it."""

    def __init__(self, kv: store.KeyValueStore, cleanup: Callable[[], None] = lambda: None):
        self.kv = kv
        self.cleanup = cleanup
        self.genesis = Ledger().genesis
        self.ledger = store.LedgerStore.open(kv)
        self.ledger.init_genesis(self.genesis)

    @classmethod
    def in_memory(cls) -> LedgerStoreBackend:
        return cls(store.MemoryStore())

    @classmethod
    def in_lmdb(cls) -> LedgerStoreBackend:
        directory = tempfile.mkdtemp(prefix="tally-properties-")
        kv = store.LmdbStore(directory, map_size=16 * 1024 * 1024)

        def cleanup() -> None:
            kv.close()
            shutil.rmtree(directory, ignore_errors=True)

        return cls(kv, cleanup)

    def height(self) -> int:
        return self.ledger.tip()[0]

    def _commit(self, block: Block, txids: list[TxId], outcome: BlockOutcome) -> None:
        certificate = certify(block)
        check_certificate(certificate, block.header, self.ledger.governance().members, verify)
        self.ledger.commit_block(block, certificate, txids, outcome)

    def lead(self, txs: Sequence[SignedTx]) -> CommittedBlock:
        height, tip = self.ledger.tip()
        ctx = context(height + 1)
        txids = [tx_id(tx.body) for tx in txs]
        outcome = apply_block(self.ledger, txs, ctx, verify, txids)
        header = build_header(ctx, tip, txids, outcome)
        block = Block(header=header, txs=tuple(txs), receipts=tuple(outcome.receipts))
        self._commit(block, txids, outcome)
        return CommittedBlock(block=block, txids=txids, outcome=outcome)

    def follow(self, committed: CommittedBlock) -> BlockOutcome:
        height, tip = self.ledger.tip()
        block = committed.block
        outcome = execute_block(
            self.ledger, block, CHAIN_ID, height + 1, tip, verify, committed.txids
        )
        self._commit(block, committed.txids, outcome)
        return outcome

    def unspent(self) -> dict[CoinId, bytes]:
        return dict(self.ledger.unspent())

    def supplies(self) -> dict[str, Supply]:
        return dict(self.ledger.supplies())

    def barred(self) -> set[PublicKey]:
        return set(self.ledger.barred())

    def double_spends(self) -> set[DoubleSpend]:
        found = set()
        for owner in self.ledger.barred():
            records = self.ledger.double_spends(owner)
            proofs = self.ledger.double_spend_proofs(owner)
            assert len(proofs) == len(records) >= 1
            for record, proof in zip(records, proofs, strict=True):
                verify_double_spend_proof(proof)
                assert (proof.coin_id, proof.owner) == (record.coin_id, owner)
                assert (tx_id(proof.first.body), tx_id(proof.second.body)) == (
                    record.first,
                    record.second,
                )
                found.add(DoubleSpend(owner, record.coin_id, record.first, record.second))
        return found

    def running_commitment(self) -> StateCommitment:
        return self.ledger.commitment()

    def audit(self) -> None:
        stored = self.ledger.stored_commitment()
        assert stored == self.ledger.recompute_commitment()
        assert stored == self.running_commitment()
        # A ledger reopened from the same store sees the same state.
        reopened = store.LedgerStore.open(self.kv)
        assert reopened.tip() == self.ledger.tip()
        assert reopened.commitment() == stored

    def close(self) -> None:
        self.cleanup()


# The machine


def spend_keys(c: Coin) -> SpendKeys:
    """The witness keys of a key-, offline- or multisig-locked coin (the first `threshold`)."""
    lock = c.lock
    if isinstance(lock, KeyLock):
        return ((0, key(INDEX_OF[lock.key])),)
    if isinstance(lock, OfflineLock):
        return ((0, key(INDEX_OF[lock.owner])),)
    assert isinstance(lock, MultiLock)
    return tuple((i, key(INDEX_OF[k])) for i, k in enumerate(lock.keys[: lock.threshold]))


class LedgerMachine(RuleBasedStateMachine):
    """Random blocks against one or more backends; the first leads, the others follow."""

    backend_factories: ClassVar[tuple[Callable[[], Backend], ...]] = (MemoryViewBackend,)

    def __init__(self) -> None:
        super().__init__()
        self.backends: list[Backend] = [make() for make in self.backend_factories]
        self.coins: dict[CoinId, Coin] = {}
        """The model: unspent coins as the accepted transactions should have left them."""
        self.history: dict[CoinId, Coin] = {}
        """Every coin ever created."""
        self.issued: Counter[str] = Counter()
        self.redeemed: Counter[str] = Counter()
        self.spent_in_blocks: Counter[CoinId] = Counter()
        self.accepted: list[SignedTx] = []
        self.nonce = 0
        self.spent_by: dict[CoinId, TxId] = {}
        """Who spent each coin, as the model applied it."""
        self.barred: set[PublicKey] = set()
        self.double_spends: set[DoubleSpend] = set()
        """Every offline double spend the blocks should have recorded."""

    def teardown(self) -> None:
        for backend in self.backends:
            backend.close()

    # Helpers

    @property
    def next_height(self) -> int:
        return self.backends[0].height() + 1

    @property
    def valid_until(self) -> int:
        return self.next_height + WINDOW

    def fresh_nonce(self) -> int:
        self.nonce += 1
        return self.nonce

    def spendable(self) -> list[tuple[CoinId, Coin]]:
        return sorted(
            (cid, c) for cid, c in self.coins.items() if isinstance(c.lock, KeyLock | MultiLock)
        )

    def key_locked(self) -> list[tuple[CoinId, Coin]]:
        return [(cid, c) for cid, c in self.spendable() if isinstance(c.lock, KeyLock)]

    def escrows(self, *, expired: bool) -> list[tuple[CoinId, Coin]]:
        return sorted(
            (cid, c)
            for cid, c in self.coins.items()
            if isinstance(c.lock, EscrowLock) and (c.lock.expiry < self.next_height) == expired
        )

    def transfer(self, inputs: Sequence[tuple[CoinId, SpendKeys]], outputs) -> SignedTx:
        return make_transfer(inputs, outputs, valid_until=self.valid_until)

    def run_block(self, txs: Sequence[SignedTx], expected: Sequence[str]) -> CommittedBlock:
        """Commit `txs` as the next block on every backend and update the model."""
        leader, *followers = self.backends
        committed = leader.lead(txs)
        assert committed.codes == list(expected)
        for follower in followers:
            outcome = follower.follow(committed)
            assert outcome.receipts == committed.outcome.receipts
            assert outcome.commitment == committed.outcome.commitment
            assert outcome.delta == committed.outcome.delta
        for cid in committed.outcome.delta.spent:
            self.spent_in_blocks[cid] += 1
        for tx, code in zip(txs, committed.codes, strict=True):
            if code == "ok":
                self.model_apply(tx)
        return committed

    def model_apply(self, tx: SignedTx) -> None:
        """What an accepted transaction does, computed without the rules."""
        body = tx.body
        txid = tx_id(body)
        self.accepted.append(tx)
        if isinstance(body, Transfer | Redeem):
            spent = [self.coins.pop(cid) for cid in body.inputs]
            self.spent_by.update(dict.fromkeys(body.inputs, txid))
            if isinstance(body, Redeem):
                self.redeemed[body.asset] += sum(c.amount for c in spent)
        if isinstance(body, Issue | Transfer):
            for index, output in enumerate(body.outputs):
                cid = coin_id(txid, index)
                self.coins[cid] = self.history[cid] = output
            if isinstance(body, Issue):
                self.issued[body.asset] += sum(c.amount for c in body.outputs)

    # Valid steps

    @rule(asset=assets, values=st.lists(amounts, min_size=1, max_size=4), owner=users)
    def issue(self, asset, values, owner):
        tx = make_issue(
            asset,
            [coin(asset, v, owner) for v in values],
            nonce=self.fresh_nonce(),
            valid_until=self.valid_until,
        )
        self.run_block([tx], ["ok"])

    @precondition(lambda self: self.spendable())
    @rule(pick=picks, to=users, value=amounts, to_multisig=st.booleans())
    def pay(self, pick, to, value, to_multisig):
        cid, c = self.spendable()[pick % len(self.spendable())]
        value = value % c.amount + 1
        co_owners = [u for u in USERS if u != to][:2]  # a multisig lock names distinct keys
        lock = multi_lock(2, [to, *co_owners]) if to_multisig else key_lock(to)
        outputs = [Coin(asset=c.asset, amount=value, lock=lock)]
        if value < c.amount:
            outputs.append(Coin(asset=c.asset, amount=c.amount - value, lock=c.lock))
        self.run_block([self.transfer([(cid, spend_keys(c))], outputs)], ["ok"])

    @precondition(lambda self: self.spendable())
    @rule(pick=picks, parts=st.integers(min_value=2, max_value=6))
    def split(self, pick, parts):
        cid, c = self.spendable()[pick % len(self.spendable())]
        parts = min(parts, c.amount)
        share, rest = divmod(c.amount, parts)
        values = [share + (1 if i < rest else 0) for i in range(parts)]
        outputs = [Coin(asset=c.asset, amount=v, lock=c.lock) for v in values]
        self.run_block([self.transfer([(cid, spend_keys(c))], outputs)], ["ok"])

    def mergeable(self) -> list[list[tuple[CoinId, Coin]]]:
        groups: dict[tuple[bytes, str], list[tuple[CoinId, Coin]]] = {}
        for cid, c in self.spendable():
            groups.setdefault((encode(c.lock), c.asset), []).append((cid, c))
        return [group for _, group in sorted(groups.items()) if len(group) >= 2]

    @precondition(lambda self: self.mergeable())
    @rule(pick=picks, count=st.integers(min_value=2, max_value=5))
    def merge(self, pick, count):
        groups = self.mergeable()
        group = groups[pick % len(groups)][:count]
        first = group[0][1]
        total = sum(c.amount for _, c in group)
        merged = Coin(asset=first.asset, amount=total, lock=first.lock)
        tx = self.transfer([(cid, spend_keys(c)) for cid, c in group], [merged])
        self.run_block([tx], ["ok"])

    @precondition(lambda self: self.key_locked())
    @rule(pick=picks, to=users, expires_in=st.integers(min_value=0, max_value=4))
    def escrow(self, pick, to, expires_in):
        cid, c = self.key_locked()[pick % len(self.key_locked())]
        assert isinstance(c.lock, KeyLock)
        owner = INDEX_OF[c.lock.key]
        lock = escrow_lock(owner, to, self.next_height + expires_in)
        held = Coin(asset=c.asset, amount=c.amount, lock=lock)
        self.run_block([self.transfer([(cid, spend_keys(c))], [held])], ["ok"])

    @precondition(lambda self: self.escrows(expired=False))
    @rule(pick=picks, value=amounts, to=users)
    def capture(self, pick, value, to):
        cid, c = self.escrows(expired=False)[pick % len(self.escrows(expired=False))]
        lock = c.lock
        assert isinstance(lock, EscrowLock)
        captured = value % c.amount + 1
        outputs = [Coin(asset=c.asset, amount=captured, lock=key_lock(to))]
        if captured < c.amount:
            outputs.append(
                Coin(asset=c.asset, amount=c.amount - captured, lock=KeyLock(key=lock.payer))
            )
        tx = self.transfer([(cid, payee(INDEX_OF[lock.payee]))], outputs)
        self.run_block([tx], ["ok"])

    @precondition(lambda self: self.escrows(expired=True))
    @rule(pick=picks)
    def reclaim(self, pick):
        cid, c = self.escrows(expired=True)[pick % len(self.escrows(expired=True))]
        lock = c.lock
        assert isinstance(lock, EscrowLock)
        back = Coin(asset=c.asset, amount=c.amount, lock=KeyLock(key=lock.payer))
        tx = self.transfer([(cid, payer(INDEX_OF[lock.payer]))], [back])
        self.run_block([tx], ["ok"])

    @precondition(lambda self: self.spendable())
    @rule(pick=picks, count=st.integers(min_value=1, max_value=3))
    def redeem(self, pick, count):
        _, chosen = self.spendable()[pick % len(self.spendable())]
        same = [(cid, c) for cid, c in self.spendable() if c.asset == chosen.asset][:count]
        tx = make_redeem(
            chosen.asset, [(cid, spend_keys(c)) for cid, c in same], valid_until=self.valid_until
        )
        self.run_block([tx], ["ok"])

    @rule()
    def empty_block(self):
        self.run_block([], [])

    @precondition(lambda self: self.spendable())
    @rule(pick=picks, to=users)
    def pay_then_spend_again_in_one_block(self, pick, to):
        cid, c = self.spendable()[pick % len(self.spendable())]
        first = self.transfer([(cid, spend_keys(c))], [coin(c.asset, c.amount, to)])
        conflict = self.transfer([(cid, spend_keys(c))], [coin(c.asset, c.amount, MALLORY)])
        onward = self.transfer(
            [(coin_id(tx_id(first.body), 0), spend_keys(coin(c.asset, c.amount, to)))],
            [coin(c.asset, c.amount, ALICE)],
        )
        self.run_block([first, conflict, onward], ["ok", "input.spent", "ok"])

    # Offline money

    def offline(self, *, unlocked: bool | None = None) -> list[tuple[CoinId, Coin]]:
        return sorted(
            (cid, c)
            for cid, c in self.coins.items()
            if isinstance(c.lock, OfflineLock)
            and (unlocked is None or (c.lock.unlock_height < self.next_height) == unlocked)
        )

    def spent_offline(self) -> list[tuple[CoinId, Coin]]:
        return sorted(
            (cid, self.history[cid])
            for cid in self.spent_in_blocks
            if isinstance(self.history[cid].lock, OfflineLock)
        )

    def offline_code(self, outputs: Sequence[Coin]) -> str:
        """What a valid spend into `outputs` gets: refused if one is offline to a barred key."""
        for output in outputs:
            if isinstance(output.lock, OfflineLock) and output.lock.owner in self.barred:
                return "offline.barred"
        return "ok"

    @precondition(lambda self: self.key_locked())
    @rule(pick=picks, unlock_in=st.integers(min_value=0, max_value=6))
    def fund_purse(self, pick, unlock_in):
        cid, c = self.key_locked()[pick % len(self.key_locked())]
        assert isinstance(c.lock, KeyLock)
        lock = OfflineLock(owner=c.lock.key, unlock_height=self.next_height + unlock_in)
        outputs = [Coin(asset=c.asset, amount=c.amount, lock=lock)]
        tx = self.transfer([(cid, spend_keys(c))], outputs)
        self.run_block([tx], [self.offline_code(outputs)])

    @precondition(lambda self: self.offline())
    @rule(pick=picks, to=users, value=amounts, later=st.integers(min_value=0, max_value=3))
    def offline_hop(self, pick, to, value, later):
        cid, c = self.offline()[pick % len(self.offline())]
        lock = c.lock
        assert isinstance(lock, OfflineLock)
        unlock = lock.unlock_height + later
        value = value % c.amount + 1
        outputs = [Coin(asset=c.asset, amount=value, lock=offline_lock(to, unlock))]
        if value < c.amount:
            change = OfflineLock(owner=lock.owner, unlock_height=unlock)
            outputs.append(Coin(asset=c.asset, amount=c.amount - value, lock=change))
        tx = self.transfer([(cid, spend_keys(c))], outputs)
        self.run_block([tx], [self.offline_code(outputs)])

    @precondition(lambda self: self.offline())
    @rule(pick=picks, to=users)
    def settle_online(self, pick, to):
        cid, c = self.offline()[pick % len(self.offline())]
        assert isinstance(c.lock, OfflineLock)
        unlocked = c.lock.unlock_height < self.next_height
        tx = self.transfer([(cid, spend_keys(c))], [coin(c.asset, c.amount, to)])
        self.run_block([tx], ["ok" if unlocked else "offline.locked"])

    def record_double_spend(self, cid: CoinId, first: TxId, second: SignedTx) -> None:
        lock = self.history[cid].lock
        assert isinstance(lock, OfflineLock)
        self.barred.add(lock.owner)
        self.double_spends.add(DoubleSpend(lock.owner, cid, first, tx_id(second.body)))

    @precondition(lambda self: self.spent_offline())
    @rule(pick=picks, amount_off=st.integers(min_value=0, max_value=1))
    def offline_double_spend(self, pick, amount_off):
        cid, c = self.spent_offline()[pick % len(self.spent_offline())]
        # Paid to Mallory's key: no transaction of the model ever does, so it is new.
        outputs = [coin(c.asset, c.amount + amount_off, MALLORY)]
        tx = self.transfer([(cid, spend_keys(c))], outputs)
        self.run_block([tx], ["offline.double_spend"])
        self.record_double_spend(cid, self.spent_by[cid], tx)

    @precondition(lambda self: self.offline())
    @rule(pick=picks, to=users)
    def offline_double_spend_in_one_block(self, pick, to):
        cid, c = self.offline()[pick % len(self.offline())]
        lock = c.lock
        assert isinstance(lock, OfflineLock)
        target = to if pub(to) not in self.barred else INDEX_OF[lock.owner]
        if pub(target) in self.barred:
            return
        paid = Coin(asset=c.asset, amount=c.amount, lock=offline_lock(target, lock.unlock_height))
        first = self.transfer([(cid, spend_keys(c))], [paid])
        second = self.transfer([(cid, spend_keys(c))], [coin(c.asset, c.amount, MALLORY)])
        self.run_block([first, second], ["ok", "offline.double_spend"])
        self.record_double_spend(cid, tx_id(first.body), second)

    # Invalid attempts

    @precondition(lambda self: self.spent_in_blocks)
    @rule(pick=picks)
    def double_spend(self, pick):
        spent = sorted(self.spent_in_blocks)
        cid = spent[pick % len(spent)]
        c = self.history[cid]
        witness = spend_keys(c) if isinstance(c.lock, KeyLock | MultiLock) else payee(BOB)
        tx = self.transfer([(cid, witness)], [coin(c.asset, c.amount, MALLORY)])
        self.run_block([tx], ["input.spent"])

    @precondition(lambda self: self.spendable())
    @rule(pick=picks, off=st.integers(min_value=-3, max_value=3).filter(bool))
    def unbalanced(self, pick, off):
        cid, c = self.spendable()[pick % len(self.spendable())]
        if c.amount + off < 1:
            off = -off
        tx = self.transfer([(cid, spend_keys(c))], [coin(c.asset, c.amount + off, MALLORY)])
        self.run_block([tx], ["value.unbalanced"])

    @precondition(lambda self: self.spendable())
    @rule(pick=picks)
    def wrong_key(self, pick):
        cid, c = self.spendable()[pick % len(self.spendable())]
        forged = tuple((signer, key(MALLORY)) for signer, _ in spend_keys(c))
        tx = self.transfer([(cid, forged)], [coin(c.asset, c.amount, MALLORY)])
        self.run_block([tx], ["sig.invalid"])

    @precondition(lambda self: self.escrows(expired=False))
    @rule(pick=picks)
    def early_reclaim(self, pick):
        cid, c = self.escrows(expired=False)[pick % len(self.escrows(expired=False))]
        lock = c.lock
        assert isinstance(lock, EscrowLock)
        back = Coin(asset=c.asset, amount=c.amount, lock=KeyLock(key=lock.payer))
        tx = self.transfer([(cid, payer(INDEX_OF[lock.payer]))], [back])
        self.run_block([tx], ["escrow.not_expired"])

    @precondition(lambda self: self.escrows(expired=False))
    @rule(pick=picks, extra=st.integers(min_value=1, max_value=10))
    def over_capture(self, pick, extra):
        cid, c = self.escrows(expired=False)[pick % len(self.escrows(expired=False))]
        lock = c.lock
        assert isinstance(lock, EscrowLock)
        tx = self.transfer(
            [(cid, payee(INDEX_OF[lock.payee]))], [coin(c.asset, c.amount + extra, BOB)]
        )
        self.run_block([tx], ["escrow.over_capture"])

    @precondition(lambda self: self.escrows(expired=True))
    @rule(pick=picks)
    def late_capture(self, pick):
        cid, c = self.escrows(expired=True)[pick % len(self.escrows(expired=True))]
        lock = c.lock
        assert isinstance(lock, EscrowLock)
        tx = self.transfer([(cid, payee(INDEX_OF[lock.payee]))], [coin(c.asset, c.amount, BOB)])
        self.run_block([tx], ["escrow.expired"])

    @precondition(lambda self: self.accepted)
    @rule(pick=picks)
    def replay(self, pick):
        tx = self.accepted[pick % len(self.accepted)]
        assert tx.body.valid_until >= self.next_height
        self.run_block([tx], ["tx.replayed"])

    # Invariants

    @invariant()
    def unspent_coins_are_the_models(self):
        expected = {cid: encode(c) for cid, c in self.coins.items()}
        for backend in self.backends:
            assert backend.unspent() == expected

    @invariant()
    def conservation_per_asset(self):
        for backend in self.backends:
            supplies = backend.supplies()
            unspent = [decode(data, Coin) for data in backend.unspent().values()]
            for asset in ASSETS:
                total = sum(c.amount for c in unspent if c.asset == asset)
                supply = supplies.get(asset, Supply(issued=0, redeemed=0))
                assert supply == Supply(issued=self.issued[asset], redeemed=self.redeemed[asset])
                assert total == supply.outstanding

    @invariant()
    def no_coin_is_spent_twice(self):
        assert all(count == 1 for count in self.spent_in_blocks.values())
        for backend in self.backends:
            assert not set(self.spent_in_blocks) & set(backend.unspent())

    @invariant()
    def every_offline_double_spend_is_recorded_with_a_proof(self):
        for backend in self.backends:
            assert backend.barred() == self.barred
            assert backend.double_spends() == self.double_spends

    @invariant()
    def running_commitment_equals_one_from_scratch(self):
        for backend in self.backends:
            scratch = commitment_from_scratch(
                backend.unspent().items(), backend.supplies().items(), backend.barred()
            )
            assert backend.running_commitment() == scratch
            backend.audit()


class LedgerStoreMemoryMachine(LedgerMachine):
    backend_factories = (LedgerStoreBackend.in_memory,)


class LedgerStoreLmdbMachine(LedgerMachine):
    backend_factories = (LedgerStoreBackend.in_lmdb,)


class DeterminismMachine(LedgerMachine):
    """The dict view leads; `LedgerStore` over memory and over LMDB follow every block."""

    backend_factories = (
        MemoryViewBackend,
        LedgerStoreBackend.in_memory,
        LedgerStoreBackend.in_lmdb,
    )


# `make test` runs the fast settings; `make test-slow` (TALLY_SLOW=1) runs 500 examples of
# 80 steps per machine, about four minutes in all.
SETTINGS = settings(
    max_examples=500 if os.environ.get("TALLY_SLOW") == "1" else 40,
    stateful_step_count=80 if os.environ.get("TALLY_SLOW") == "1" else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

MACHINES = [
    pytest.param(LedgerMachine, id="memory-view"),
    pytest.param(LedgerStoreMemoryMachine, id="ledger-store-memory"),
    pytest.param(LedgerStoreLmdbMachine, id="ledger-store-lmdb"),
    pytest.param(DeterminismMachine, id="determinism"),
]


@pytest.mark.parametrize("machine", MACHINES)
def test_ledger_keeps_its_invariants_under_random_blocks(machine):
    run_state_machine_as_test(machine, settings=SETTINGS)


def scripted_blocks() -> list[CommittedBlock]:
    """A fixed history on the dict view: issues, payments, escrow, refusals, a redemption."""
    ledger = Ledger()
    (a,) = ledger.fund(ALICE, "CNY", 100)
    (u,) = ledger.fund(BOB, "USD", 40)
    pay = make_transfer([(a, ((0, key(ALICE)),))], [coin("CNY", 60, BOB), coin("CNY", 40, ALICE)])
    theft = make_transfer([(u, ((0, key(MALLORY)),))], [coin("USD", 40, MALLORY)])
    ledger.commit(pay, theft, pay)
    bob_cny, alice_cny = (coin_id(tx_id(pay.body), i) for i in range(2))
    prepay = make_transfer(
        [(alice_cny, ((0, key(ALICE)),))], [coin("CNY", 40, escrow_lock(ALICE, CAROL, 5))]
    )
    ledger.commit(prepay)
    held = coin_id(tx_id(prepay.body), 0)
    ledger.commit(
        make_transfer([(held, payee(CAROL))], [coin("CNY", 25, CAROL), coin("CNY", 15, ALICE)]),
        make_redeem("CNY", [(bob_cny, ((0, key(BOB)),))]),
        make_redeem("CNY", [(bob_cny, ((0, key(BOB)),))], valid_until=499),
    )
    return ledger.blocks


def test_two_stores_fed_the_same_blocks_end_with_identical_receipts_and_commitments(tmp_path):
    blocks = scripted_blocks()
    codes = [b.codes for b in blocks]
    assert codes[2] == ["ok", "sig.invalid", "tx.replayed"]
    assert codes[4] == ["ok", "ok", "input.spent"]
    lmdb = store.LmdbStore(tmp_path / "ledger", map_size=16 * 1024 * 1024)
    backends = [LedgerStoreBackend(store.MemoryStore()), LedgerStoreBackend(lmdb)]
    try:
        for backend in backends:
            for committed in blocks:
                outcome = backend.follow(committed)
                assert outcome.receipts == committed.outcome.receipts
        first, second = (b.ledger for b in backends)
        assert first.tip() == second.tip() == (len(blocks), block_hash(blocks[-1].block.header))
        assert first.stored_commitment() == second.stored_commitment()
        assert first.stored_commitment() == blocks[-1].outcome.commitment
        assert first.recompute_commitment() == second.recompute_commitment()
        assert dict(first.unspent()) == dict(second.unspent())
        assert dict(first.supplies()) == dict(second.supplies())
        for committed in blocks:
            for txid, receipt in zip(committed.txids, committed.outcome.receipts, strict=True):
                assert first.tx(txid) == second.tx(txid)
                record = first.tx(txid)
                assert record is not None
                if receipt.accepted:
                    assert record.receipt == receipt
    finally:
        lmdb.close()
