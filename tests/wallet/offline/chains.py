"""Trust chains built without a node: blocks with real certificates and Merkle proofs.

A root is an issuance into `OfflineLock` coins placed in a block of its own (or beside
other transactions), whose header carries a transaction root over the real leaves and a
commit certificate signed by the test genesis's member key. Hops are made with the wallet's
own `build_hop` and `make_payment`, so these tests check the code devices run.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from tally.crypto.schnorr import PrivateKey
from tally.model import (
    AssetCode,
    Coin,
    Genesis,
    Hash32,
    Header,
    Height,
    Issue,
    PublicKey,
    Receipt,
    SignedTx,
    Transfer,
    block_hash,
    coin_id,
    tx_id,
)
from tally.model.lock import OfflineLock
from tally.rules.block import tx_inclusion_proof, tx_root
from tally.rules.certificate import sign_certificate
from tally.wallet.offline.messages import Hello, OfflinePayment, RootProof, TrustChain
from tally.wallet.offline.negotiation import make_features, negotiate, new_hello
from tally.wallet.offline.purse import OfflineCoin, build_hop, make_payment
from tests.rules.helpers import (
    CHAIN_ID,
    CNY_ISSUER,
    MEMBER,
    RESERVE_REF,
    key,
    make_genesis,
    pub,
    sign,
)

GENESIS: Genesis = make_genesis()
ROOT_HEIGHT = 40
UNLOCK = 400
_nonces = itertools.count(1)


def outputs_of(tx: SignedTx) -> tuple[Coin, ...]:
    """The outputs of an issuance or a transfer."""
    body = tx.body
    assert isinstance(body, Issue | Transfer)
    return body.outputs


def owner_of(coin: Coin) -> PublicKey:
    """The owner of an offline coin."""
    assert isinstance(coin.lock, OfflineLock)
    return coin.lock.owner


def offline_coin_lock(owner: int, unlock: int = UNLOCK) -> OfflineLock:
    return OfflineLock(owner=pub(owner), unlock_height=Height(unlock))


def issue_offline(owner: int, amounts: Sequence[int], unlock: int = UNLOCK) -> SignedTx:
    body = Issue(
        asset=AssetCode("CNY"),
        issuer=pub(CNY_ISSUER),
        outputs=tuple(
            Coin(asset=AssetCode("CNY"), amount=a, lock=offline_coin_lock(owner, unlock))
            for a in amounts
        ),
        reserve_ref=RESERVE_REF,
        nonce=next(_nonces),
        valid_until=Height(ROOT_HEIGHT),
    )
    return sign(body, [((0, key(CNY_ISSUER)),)])


def roots_in_block(
    txs: Sequence[SignedTx],
    *,
    height: int = ROOT_HEIGHT,
    signers: Sequence[tuple[int, PrivateKey]] = ((0, key(MEMBER)),),
    chain_id: str = CHAIN_ID,
) -> list[RootProof]:
    """One block holding `txs`, all accepted; the root proof of each."""
    txids = [tx_id(tx.body) for tx in txs]
    receipts = [Receipt(code="ok")] * len(txs)
    header = Header(
        chain_id=chain_id,
        height=Height(height),
        prev_hash=Hash32(bytes(32)),
        time_ms=1_700_000_000_000 + height,
        tx_count=len(txs),
        tx_root=tx_root(txids, receipts),
        state_root=Hash32(bytes(32)),
    )
    certificate = sign_certificate(chain_id, Height(height), block_hash(header), 0, signers)
    return [
        RootProof(
            tx=tx,
            index=index,
            receipt=receipts[index],
            proof=tx_inclusion_proof(txids, receipts, index),
            header=header,
            certificate=certificate,
        )
        for index, tx in enumerate(txs)
    ]


def purse(owner: int, amounts: Sequence[int], unlock: int = UNLOCK) -> list[OfflineCoin]:
    """Purse coins of `owner` (key index), each proved by a root of its own block."""
    tx = issue_offline(owner, amounts, unlock)
    [root] = roots_in_block([tx])
    txid = tx_id(tx.body)
    chain = TrustChain(roots=(root,), hops=())
    return [
        OfflineCoin(coin_id=coin_id(txid, i), coin=c, key_index=owner, chain=chain)
        for i, c in enumerate(outputs_of(tx))
    ]


def hello(role: str, *, owner: int | None = None, split=True, multi_hop=True, max_amount=10**9):
    features = make_features(
        split=split, multi_hop=multi_hop, assets=["CNY"], max_amount=max_amount
    )
    receive = pub(owner) if owner is not None else None
    return new_hello(role, CHAIN_ID, features, receive_key=receive)


@dataclass
class Paid:
    payment: OfflinePayment
    payee_hello: Hello
    received: OfflineCoin
    change: OfflineCoin | None


def pay(
    coins: Sequence[OfflineCoin],
    payer: int,
    payee: int,
    amount: int,
    *,
    change_to: int | None = None,
    payee_hello: Hello | None = None,
    payer_hello: Hello | None = None,
) -> Paid:
    """`payer` (key index owning every coin) pays `payee` offline; change to `change_to`."""
    payee_hello = payee_hello or hello("payee", owner=payee)
    payer_hello = payer_hello or hello("payer")
    agreement = negotiate(payer_hello, payee_hello)
    change_key = pub(change_to if change_to is not None else payer)
    hop = build_hop(
        [(c, key(payer)) for c in coins], agreement.payee, "CNY", amount, change_key, CHAIN_ID
    )
    payment = make_payment(agreement, payer_hello, coins, hop, key(payer))
    txid = tx_id(hop.body)
    outputs = outputs_of(hop)
    received = OfflineCoin(
        coin_id=coin_id(txid, 0), coin=outputs[0], key_index=payee, chain=payment.chain
    )
    change = (
        OfflineCoin(coin_id=coin_id(txid, 1), coin=outputs[1], key_index=payer, chain=payment.chain)
        if len(outputs) > 1
        else None
    )
    return Paid(payment=payment, payee_hello=payee_hello, received=received, change=change)
