"""Fixed keys, a test genesis, and helpers that build signed transactions and blocks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tally.crypto.schnorr import PrivateKey, verify
from tally.model import (
    AddMember,
    AssetCode,
    AssetEntry,
    Block,
    CoinId,
    CommitCertificate,
    Genesis,
    Govern,
    GovernAction,
    Hash32,
    Height,
    Issue,
    KeyLock,
    Member,
    Params,
    PublicKey,
    Redeem,
    RegisterAsset,
    Signature,
    SignatureBytes,
    SignedTx,
    Transfer,
    TxBody,
    TxId,
    Witness,
    block_hash,
    sighash,
    tx_id,
)
from tally.model.coin import Coin
from tally.model.types import Amount
from tally.rules import BlockContext, BlockOutcome, apply_block, build_header, sign_certificate
from tally.store import LedgerStore

CHAIN_ID = "tally-test"
CNY = AssetCode("CNY")
USD = AssetCode("USD")


def key(n: int) -> PrivateKey:
    """A fixed key per small integer, so every run signs the same bytes."""
    return PrivateKey.from_bytes(n.to_bytes(32, "big"))


ISSUER = key(1)
ADMIN = key(2)
NODE = key(3)
ALICE = key(10)
BOB = key(11)
CAROL = key(12)
OWNERS = (ALICE, BOB, CAROL)
KEYS = {k.public_key: k for k in (ISSUER, ADMIN, NODE, *OWNERS)}


def make_genesis(params: Params | None = None) -> Genesis:
    return Genesis(
        chain_id=CHAIN_ID,
        hrp="tly",
        time_ms=0,
        params=params or Params(),
        admins=(PublicKey(ADMIN.public_key),),
        admin_threshold=1,
        assets=(AssetEntry(asset=CNY, issuer=PublicKey(ISSUER.public_key)),),
        members=(Member(name="node0", key=PublicKey(NODE.public_key)),),
    )


def lock_of(owner: PrivateKey) -> KeyLock:
    return KeyLock(key=PublicKey(owner.public_key))


def coin(amount: int, owner: PrivateKey, asset: AssetCode = CNY) -> Coin:
    return Coin(asset=asset, amount=Amount(amount), lock=lock_of(owner))


def sign(body: TxBody, signers: Sequence[PrivateKey]) -> SignedTx:
    """One witness per signer, each a single signature as signer 0."""
    msg = sighash(CHAIN_ID, tx_id(body))
    return SignedTx(
        body=body,
        witnesses=tuple(
            Witness(signatures=(Signature(signer=0, sig=SignatureBytes(k.sign(msg))),))
            for k in signers
        ),
    )


def issue(
    amounts: Sequence[int],
    owner: PrivateKey,
    *,
    nonce: int = 0,
    valid_until: int = 100,
    asset: AssetCode = CNY,
    issuer: PrivateKey = ISSUER,
) -> SignedTx:
    body = Issue(
        asset=asset,
        issuer=PublicKey(issuer.public_key),
        outputs=tuple(coin(a, owner, asset) for a in amounts),
        reserve_ref=Hash32(bytes(32)),
        nonce=nonce,
        valid_until=Height(valid_until),
    )
    return sign(body, [issuer])


def transfer(
    inputs: Sequence[tuple[CoinId, Coin]], outputs: Sequence[Coin], *, valid_until: int = 100
) -> SignedTx:
    body = Transfer(
        inputs=tuple(cid for cid, _ in inputs),
        outputs=tuple(outputs),
        valid_until=Height(valid_until),
    )
    return sign(body, [owner_key(c) for _, c in inputs])


def redeem(
    inputs: Sequence[tuple[CoinId, Coin]], *, asset: AssetCode = CNY, valid_until: int = 100
) -> SignedTx:
    body = Redeem(
        asset=asset,
        inputs=tuple(cid for cid, _ in inputs),
        account=b"reserve-account",
        valid_until=Height(valid_until),
    )
    return sign(body, [owner_key(c) for _, c in inputs])


def govern(action: GovernAction, *, nonce: int = 0, valid_until: int = 100) -> SignedTx:
    return sign(Govern(action=action, nonce=nonce, valid_until=Height(valid_until)), [ADMIN])


def register_asset(asset: AssetCode, issuer: PrivateKey, *, nonce: int = 0) -> SignedTx:
    return govern(RegisterAsset(asset=asset, issuer=PublicKey(issuer.public_key)), nonce=nonce)


def add_member(name: str, member: PrivateKey, *, nonce: int = 0) -> SignedTx:
    return govern(AddMember(name=name, key=PublicKey(member.public_key)), nonce=nonce)


def owner_key(c: Coin) -> PrivateKey:
    assert isinstance(c.lock, KeyLock)
    return KEYS[c.lock.key]


@dataclass
class PreparedBlock:
    """A block executed on top of a ledger, ready for `commit_block`."""

    block: Block
    certificate: CommitCertificate
    txids: list[TxId]
    outcome: BlockOutcome

    def commit_to(self, ledger: LedgerStore) -> None:
        ledger.commit_block(self.block, self.certificate, self.txids, self.outcome)


def prepare_block(
    ledger: LedgerStore,
    txs: Sequence[SignedTx],
    *,
    height: int | None = None,
    prev_hash: bytes | None = None,
) -> PreparedBlock:
    tip_height, tip_hash = ledger.tip()
    ctx = BlockContext(
        chain_id=CHAIN_ID,
        height=Height(tip_height + 1 if height is None else height),
        time_ms=1_000 * (tip_height + 1),
    )
    txids = [tx_id(tx.body) for tx in txs]
    outcome = apply_block(ledger, txs, ctx, verify, txids)
    header = build_header(ctx, Hash32(tip_hash if prev_hash is None else prev_hash), txids, outcome)
    block = Block(header=header, txs=tuple(txs), receipts=tuple(outcome.receipts))
    certificate = sign_certificate(CHAIN_ID, header.height, block_hash(header), 0, [(0, NODE)])
    return PreparedBlock(block=block, certificate=certificate, txids=txids, outcome=outcome)


def commit(ledger: LedgerStore, txs: Sequence[SignedTx]) -> PreparedBlock:
    prepared = prepare_block(ledger, txs)
    prepared.commit_to(ledger)
    return prepared
