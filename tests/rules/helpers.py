"""Fixed keys, a test genesis, transaction builders and a dict-based state view.

Everything here is deterministic: key `i` is the secret scalar `i + 1`, signatures use the
default all-zero auxiliary data, and block times derive from the height. Tests of the
rules build transactions with `make_issue`, `make_transfer`, `make_redeem` and
`make_govern`, and run them through a `Ledger`, a small driver that applies blocks with
`apply_block` on top of a `MemoryView` and writes back what they change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

import pytest

from tally.crypto import PrivateKey, StateCommitment, verify
from tally.model import (
    ESCROW_PAYEE,
    ESCROW_PAYER,
    AssetCode,
    AssetEntry,
    Block,
    BlockHash,
    Coin,
    CoinId,
    EscrowLock,
    Genesis,
    Govern,
    GovernAction,
    Hash32,
    Height,
    Issue,
    KeyLock,
    Lock,
    Member,
    MultiLock,
    OfflineLock,
    Params,
    PublicKey,
    Receipt,
    Redeem,
    Rejection,
    Signature,
    SignedTx,
    Transfer,
    TxBody,
    TxId,
    Witness,
    block_hash,
    coin_id,
    encode,
    genesis_hash,
    sighash,
    tx_id,
)
from tally.rules import (
    BlockContext,
    BlockOutcome,
    DoubleSpend,
    Governance,
    StateDelta,
    Supply,
    apply_block,
    build_header,
    commitment_from_scratch,
    governance_from_genesis,
    validate_tx,
)

CHAIN_ID = "tally-test"
HRP = "tly"
GENESIS_TIME_MS = 1_700_000_000_000
BLOCK_TIME_MS = 1_000

# Roles, by fixed key index.
ADMINS = (0, 1, 2)
ADMIN_THRESHOLD = 2
CNY_ISSUER = 10
USD_ISSUER = 11
MEMBER = 20
ALICE = 30
BOB = 31
CAROL = 32
DAVE = 33
MALLORY = 66

CNY = AssetCode("CNY")
USD = AssetCode("USD")
ISSUERS = {CNY: CNY_ISSUER, USD: USD_ISSUER}

VALID_UNTIL = Height(500)
"""A `valid_until` inside the default window for the first few hundred blocks."""
RESERVE_REF = Hash32(bytes(range(32)))

E = TypeVar("E", bound=Rejection)

SpendKeys = Sequence[tuple[int, PrivateKey]]
"""One witness as `(signer index, key)` pairs, in signer order."""


@cache
def key(index: int) -> PrivateKey:
    """The fixed key of index `index`: the secret scalar `index + 1`."""
    return PrivateKey.from_bytes((index + 1).to_bytes(32, "big"))


def pub(index: int) -> PublicKey:
    """The x-only public key of `key(index)`."""
    return PublicKey(key(index).public_key)


def key_lock(index: int) -> KeyLock:
    """A lock spendable by `key(index)` alone."""
    return KeyLock(key=pub(index))


def multi_lock(threshold: int, indices: Sequence[int]) -> MultiLock:
    """A `threshold`-of-n lock over the keys of `indices`, in that order."""
    return MultiLock(threshold=threshold, keys=tuple(pub(i) for i in indices))


def escrow_lock(payer: int, payee: int, expiry: int) -> EscrowLock:
    """An escrow from `payer` to `payee` that the payee may capture until `expiry`."""
    return EscrowLock(payer=pub(payer), payee=pub(payee), expiry=Height(expiry))


def offline_lock(owner_index: int, unlock_height: int) -> OfflineLock:
    """Offline money of `key(owner_index)`, spent online only after `unlock_height`."""
    return OfflineLock(owner=pub(owner_index), unlock_height=Height(unlock_height))


def coin(asset: str, amount: int, owner: int | Lock) -> Coin:
    """A coin of `amount` minor units locked to key index `owner` (or to a lock)."""
    lock = key_lock(owner) if isinstance(owner, int) else owner
    return Coin(asset=AssetCode(asset), amount=amount, lock=lock)


# Witnesses


def owner(index: int) -> SpendKeys:
    """The witness of a `KeyLock` held by `key(index)`: one signature as signer 0."""
    return ((0, key(index)),)


def payer(index: int) -> SpendKeys:
    """The witness of an escrow reclaim by its payer `key(index)`."""
    return ((ESCROW_PAYER, key(index)),)


def payee(index: int) -> SpendKeys:
    """The witness of an escrow capture by its payee `key(index)`."""
    return ((ESCROW_PAYEE, key(index)),)


def signers(*pairs: tuple[int, int]) -> SpendKeys:
    """A multisig witness from `(signer index, key index)` pairs."""
    return tuple((signer, key(index)) for signer, index in pairs)


def sign(body: TxBody, witnesses: Iterable[SpendKeys], *, chain_id: str = CHAIN_ID) -> SignedTx:
    """Sign `body`: each witness's keys sign `sighash(chain_id, tx_id(body))`."""
    msg = sighash(chain_id, tx_id(body))
    return SignedTx(
        body=body,
        witnesses=tuple(
            Witness(
                signatures=tuple(
                    Signature(signer=signer, sig=signing_key.sign(msg))
                    for signer, signing_key in witness
                )
            )
            for witness in witnesses
        ),
    )


# Transaction builders


def make_issue(
    asset: str,
    outputs: Sequence[Coin],
    *,
    issuer: int | None = None,
    signed_by: SpendKeys | None = None,
    nonce: int = 0,
    valid_until: int = VALID_UNTIL,
    reserve_ref: bytes = RESERVE_REF,
) -> SignedTx:
    """An issuance of `outputs` by key index `issuer` (the registered issuer by default)."""
    issuer_index = ISSUERS[AssetCode(asset)] if issuer is None else issuer
    body = Issue(
        asset=AssetCode(asset),
        issuer=pub(issuer_index),
        outputs=tuple(outputs),
        reserve_ref=Hash32(reserve_ref),
        nonce=nonce,
        valid_until=Height(valid_until),
    )
    return sign(body, [owner(issuer_index) if signed_by is None else signed_by])


def make_transfer(
    inputs: Sequence[tuple[CoinId, SpendKeys]],
    outputs: Sequence[Coin],
    *,
    valid_until: int = VALID_UNTIL,
) -> SignedTx:
    """A transfer spending each input with its witness keys and creating `outputs`."""
    body = Transfer(
        inputs=tuple(cid for cid, _ in inputs),
        outputs=tuple(outputs),
        valid_until=Height(valid_until),
    )
    return sign(body, [keys for _, keys in inputs])


def make_redeem(
    asset: str,
    inputs: Sequence[tuple[CoinId, SpendKeys]],
    *,
    account: bytes = b"reserve-account-1",
    valid_until: int = VALID_UNTIL,
) -> SignedTx:
    """A redemption of the input coins of `asset` into the issuer's `account`."""
    body = Redeem(
        asset=AssetCode(asset),
        inputs=tuple(cid for cid, _ in inputs),
        account=account,
        valid_until=Height(valid_until),
    )
    return sign(body, [keys for _, keys in inputs])


def make_govern(
    action: GovernAction,
    *,
    admins: Sequence[int] = (0, 1),
    nonce: int = 0,
    valid_until: int = VALID_UNTIL,
) -> SignedTx:
    """A governance action signed by the admins at positions `admins` of `ADMINS`."""
    body = Govern(action=action, nonce=nonce, valid_until=Height(valid_until))
    return sign(body, [[(position, key(ADMINS[position])) for position in admins]])


def with_witnesses(tx: SignedTx, witnesses: Sequence[Witness]) -> SignedTx:
    """`tx` with its witnesses replaced (the id stays the same)."""
    return SignedTx(body=tx.body, witnesses=tuple(witnesses))


def outputs_of(tx: SignedTx) -> list[CoinId]:
    """The ids of the coins `tx` creates, in output order."""
    body = tx.body
    assert isinstance(body, Issue | Transfer)
    txid = tx_id(body)
    return [coin_id(txid, index) for index in range(len(body.outputs))]


# Genesis


def make_genesis(
    *,
    params: Params | None = None,
    admins: Sequence[int] = ADMINS,
    admin_threshold: int = ADMIN_THRESHOLD,
    members: Sequence[tuple[str, int]] = (("member-0", MEMBER),),
) -> Genesis:
    """The test network: chain `tally-test`, prefix `tly`, assets CNY and USD, one member."""
    return Genesis(
        chain_id=CHAIN_ID,
        hrp=HRP,
        time_ms=GENESIS_TIME_MS,
        params=params if params is not None else Params(),
        admins=tuple(pub(i) for i in admins),
        admin_threshold=admin_threshold,
        assets=tuple(AssetEntry(asset=asset, issuer=pub(i)) for asset, i in ISSUERS.items()),
        members=tuple(Member(name=name, key=pub(i)) for name, i in members),
    )


def context(height: int, *, chain_id: str = CHAIN_ID) -> BlockContext:
    """The context of a block at `height` (its time derives from the height)."""
    return BlockContext(
        chain_id=chain_id, height=Height(height), time_ms=GENESIS_TIME_MS + height * BLOCK_TIME_MS
    )


# A state view in dictionaries


@dataclass
class MemoryView:
    """A `StateView` in plain dictionaries, for pure tests of the rules.

    `apply` writes a block's `StateDelta` and commitment the way a store would: spent coins
    leave the unspent set and are remembered with their spender, created coins join it,
    and idempotency entries are dropped once no later block may commit them.
    """

    genesis: Genesis
    coins: dict[CoinId, Coin] = field(default_factory=dict)
    spenders: dict[CoinId, TxId] = field(default_factory=dict)
    spent_coins: dict[CoinId, Coin] = field(default_factory=dict)
    barred: set[PublicKey] = field(default_factory=set)
    double_spends: list[DoubleSpend] = field(default_factory=list)
    supplies: dict[AssetCode, Supply] = field(default_factory=dict)
    issuers: dict[AssetCode, PublicKey] = field(default_factory=dict)
    committed: dict[TxId, Height] = field(default_factory=dict)
    height: int = 0
    _governance: Governance | None = None
    _commitment: StateCommitment = field(default_factory=StateCommitment)

    def __post_init__(self) -> None:
        if not self.issuers:
            self.issuers = {entry.asset: entry.issuer for entry in self.genesis.assets}
        if self._governance is None:
            self._governance = governance_from_genesis(self.genesis)

    # StateView

    def coin(self, coin_id: CoinId) -> Coin | None:
        return self.coins.get(coin_id)

    def spender(self, coin_id: CoinId) -> TxId | None:
        return self.spenders.get(coin_id)

    def spent(self, coin_id: CoinId) -> tuple[TxId, Coin] | None:
        spender = self.spenders.get(coin_id)
        return None if spender is None else (spender, self.spent_coins[coin_id])

    def is_barred(self, owner: PublicKey) -> bool:
        return owner in self.barred

    def supply(self, asset: AssetCode) -> Supply | None:
        return self.supplies.get(asset)

    def issuer(self, asset: AssetCode) -> PublicKey | None:
        return self.issuers.get(asset)

    def is_committed(self, txid: TxId) -> bool:
        return txid in self.committed

    def governance(self) -> Governance:
        assert self._governance is not None
        return self._governance

    def commitment(self) -> StateCommitment:
        return self._commitment.copy()

    # Writing

    def apply(self, delta: StateDelta, commitment: StateCommitment, height: int) -> None:
        """Write one block's delta and commitment; `height` is the block's height."""
        for cid, (spender, spent_coin) in delta.spent.items():
            self.coins.pop(cid, None)
            self.spenders[cid] = spender
            self.spent_coins[cid] = spent_coin
        self.coins.update(delta.created)
        self.supplies.update(delta.supply)
        self.issuers.update(delta.issuers)
        if delta.governance is not None:
            self._governance = delta.governance
        self.committed.update(delta.committed)
        assert not self.barred & set(delta.barred), "a key is barred once"
        self.barred.update(delta.barred)
        self.double_spends.extend(delta.double_spends)
        # An id whose window ends at this height can never be committed again.
        self.committed = {t: until for t, until in self.committed.items() if until > height}
        self._commitment = commitment.copy()
        self.height = height

    def unspent(self) -> dict[CoinId, Coin]:
        """Every unspent coin by id."""
        return dict(self.coins)

    def recompute_commitment(self) -> StateCommitment:
        """The commitment of the current unspent set, supply table and barred keys, from scratch."""
        return recompute(self.coins, self.supplies, self.barred)


def recompute(
    coins: dict[CoinId, Coin],
    supplies: dict[AssetCode, Supply],
    barred: Iterable[PublicKey] = (),
) -> StateCommitment:
    """`commitment_from_scratch` over coins, supplies and barred keys held in collections."""
    return commitment_from_scratch(
        ((cid, encode(c)) for cid, c in coins.items()), supplies.items(), barred
    )


@dataclass
class CommittedBlock:
    """A block the `Ledger` committed, with the ids and outcome that go with it."""

    block: Block
    txids: list[TxId]
    outcome: BlockOutcome

    @property
    def codes(self) -> list[str]:
        """The receipt codes, in order."""
        return [receipt.code for receipt in self.outcome.receipts]


class Ledger:
    """Applies blocks of transactions to a `MemoryView`, one height after another."""

    def __init__(self, genesis: Genesis | None = None) -> None:
        self.genesis = genesis if genesis is not None else make_genesis()
        self.view = MemoryView(self.genesis)
        self.tip: Hash32 | BlockHash = genesis_hash(self.genesis)
        self.blocks: list[CommittedBlock] = []
        self._nonce = 0

    @property
    def height(self) -> int:
        """The height of the last committed block (0 at genesis)."""
        return self.view.height

    @property
    def next_context(self) -> BlockContext:
        """The context the next block is applied in."""
        return context(self.height + 1, chain_id=self.genesis.chain_id)

    def validate(self, tx: SignedTx) -> None:
        """`validate_tx` as if `tx` were alone in the next block."""
        validate_tx(self.view, tx, self.next_context, verify)

    def dry_run(self, *txs: SignedTx) -> BlockOutcome:
        """Apply `txs` as the next block without writing anything."""
        return apply_block(self.view, txs, self.next_context, verify)

    def commit(self, *txs: SignedTx) -> CommittedBlock:
        """Apply `txs` as the next block and write the outcome."""
        ctx = self.next_context
        txids = [tx_id(tx.body) for tx in txs]
        outcome = apply_block(self.view, txs, ctx, verify, txids)
        header = build_header(ctx, self.tip, txids, outcome)
        block = Block(header=header, txs=tuple(txs), receipts=tuple(outcome.receipts))
        self.view.apply(outcome.delta, outcome.commitment, ctx.height)
        self.tip = block_hash(header)
        committed = CommittedBlock(block=block, txids=txids, outcome=outcome)
        self.blocks.append(committed)
        return committed

    def advance_to(self, height: int) -> None:
        """Commit empty blocks until the last committed block is at `height`."""
        while self.height < height:
            self.commit()

    def next_nonce(self) -> int:
        """A fresh issuance nonce, so equal issuances are distinct transactions."""
        self._nonce += 1
        return self._nonce

    def fund(self, owner_index: int | Lock, asset: str, *amounts: int) -> list[CoinId]:
        """Issue coins of `amounts` to `owner_index` in one block; their ids."""
        tx = make_issue(
            asset, [coin(asset, a, owner_index) for a in amounts], nonce=self.next_nonce()
        )
        committed = self.commit(tx)
        assert committed.codes == ["ok"], committed.codes
        return outputs_of(tx)

    def balance(self, asset: str) -> int:
        """Sum of the unspent coins of `asset`."""
        return sum(c.amount for c in self.view.coins.values() if c.asset == asset)


def expect_rejection(ledger: Ledger, tx: SignedTx, expected: type[E]) -> E:
    """Check that the next block refuses `tx` with exactly `expected`, changing nothing.

    `validate_tx` must raise `expected` itself (not a subclass or parent), and `apply_block`
    must record its code in the receipt and leave the delta empty and the commitment as it
    was. Returns the error so that the caller can check its fields.
    """
    with pytest.raises(expected) as info:
        ledger.validate(tx)
    error = info.value
    assert type(error) is expected
    assert error.code == expected.code
    outcome = ledger.dry_run(tx)
    assert outcome.receipts == [Receipt(code=expected.code)]
    assert outcome.delta == StateDelta()
    assert outcome.commitment == ledger.view.commitment()
    return error
