"""Trust chains: how a device checks, with no network, that offline money is good.

A chain starts from coins on the ledger, each proved by a `RootProof` (its transaction, the
Merkle proof under a header, and the header's commit certificate), and goes on through hops:
ordinary signed `Transfer`s between `OfflineLock` coins, made on the devices the money
passed through. `verify_chain` checks, in this order:

1. every root: the header is of the device's network, its certificate carries a quorum of
   the consortium members named in the genesis the device holds, the transaction and its
   receipt are under the header's transaction root, and the receipt is `ok`;
2. every hop, in order: it is a `Transfer` that spends only outputs of the roots or of
   earlier hops, each once (`offline.chain`); every coin it spends or creates is under an
   `OfflineLock`, and no output unlocks before an input does (`offline.lock`); its inputs
   and outputs balance per asset (`offline.amount`); each input's witness is one valid
   signature by that coin's owner (`offline.signature`);
3. that the chain holds nothing else: every root is spent by a hop, and every hop but the
   last feeds a later one.

`verify_payment` then checks a payment against the payee's own hello, the agreement, the
device's limits and its notion of the current height: protocol version, network, the nonce
binding, hops and amounts within the limits, the features used, the chain, the payment
output to the payee's key, the binding signature, and the margin left before any hop's
window closes or any coin it spends unlocks (`offline.expired`).

Everything here is pure: the caller passes the genesis, the limits and the heights.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tally.crypto.schnorr import verify as schnorr_verify
from tally.model.coin import Coin, coin_id
from tally.model.encoding import encode, tx_id
from tally.model.genesis import Genesis
from tally.model.lock import OfflineLock
from tally.model.offline import DoubleSpendProof
from tally.model.tx import Issue, SignedTx, Transfer, sighash
from tally.model.types import CoinId, PublicKey, TxId
from tally.rules.certificate import CertificateError, check_certificate
from tally.rules.errors import DoubleSpendProofError
from tally.rules.locks import Verifier
from tally.rules.offline import verify_double_spend_proof, verify_tx_inclusion
from tally.wallet.offline.errors import (
    OfflineAmountError,
    OfflineCertificateError,
    OfflineChainError,
    OfflineExpiredError,
    OfflineFeatureError,
    OfflineLockError,
    OfflineNetworkError,
    OfflinePayeeError,
    OfflinePayerBarredError,
    OfflineReplayError,
    OfflineRootError,
    OfflineSignatureError,
    OfflineVersionError,
)
from tally.wallet.offline.limits import OfflineLimits, check_amount_limits, check_hop_limit
from tally.wallet.offline.messages import (
    Agreement,
    Hello,
    OfflinePayment,
    RootProof,
    TrustChain,
    binding_message,
)
from tally.wallet.offline.negotiation import negotiate

__all__ = [
    "VerifiedChain",
    "ReceivedPayment",
    "root_outputs",
    "verify_root",
    "verify_chain",
    "verify_payment",
    "merge_chains",
    "prune_chain",
    "chain_deadline",
    "known_height_of",
    "find_double_spend",
]


@dataclass(frozen=True)
class VerifiedChain:
    """What a verified chain establishes."""

    coins: dict[CoinId, Coin]
    """Every coin the roots and hops create, by id."""
    unspent: dict[CoinId, Coin]
    """The hops' outputs that no later hop spends: what the chain hands on."""
    owners: frozenset[PublicKey]
    """Every key that signed a hop."""
    deadline: int | None
    """The last height at which every hop can still be settled before an input unlocks
    (None for a chain without hops)."""
    known_height: int
    """The highest block height among the roots' headers."""


@dataclass(frozen=True)
class ReceivedPayment:
    """A payment that passed every check, and what it gives the payee."""

    payment_id: TxId
    """The id of the payment's own hop (the last one)."""
    agreement: Agreement
    """What the two devices agreed."""
    asset: str
    """The asset paid."""
    amount: int
    """The amount paid, in minor units."""
    coin_id: CoinId
    """The coin the payee now holds offline."""
    coin: Coin
    """That coin: `OfflineLock(payee key, unlock_height)`."""
    payer: PublicKey
    """The key that signed the binding (the payer's key in the last hop)."""
    deadline: int
    """The last height at which the chain can be settled safely."""
    chain: TrustChain = field(repr=False)
    """The chain, to keep, settle, and pay onward."""


def root_outputs(root: RootProof) -> dict[CoinId, Coin]:
    """The coins a root's transaction creates, by id (none for kinds that create none)."""
    body = root.tx.body
    if not isinstance(body, Issue | Transfer):
        return {}
    txid = tx_id(body)
    return {coin_id(txid, index): coin for index, coin in enumerate(body.outputs)}


def known_height_of(chain: TrustChain) -> int:
    """The highest block height among the chain's roots (0 without roots)."""
    return max((root.header.height for root in chain.roots), default=0)


def verify_root(root: RootProof, genesis: Genesis, verify: Verifier = schnorr_verify) -> None:
    """Check that a root's transaction is accepted in a block the consortium committed.

    Raises:
        OfflineNetworkError: the header is of another chain.
        OfflineCertificateError: the certificate is not a quorum of genesis members over
            the header.
        InclusionProofError: the transaction and receipt are not under the header's root
            at the index given (`offline.inclusion`, from `tally.rules.offline`).
        OfflineRootError: the receipt is a rejection, or the transaction creates no coins.
    """
    header = root.header
    if header.chain_id != genesis.chain_id:
        raise OfflineNetworkError(
            f"a root's block is of chain {header.chain_id!r}; this device is on "
            f"{genesis.chain_id!r}",
            chain_id=header.chain_id,
        )
    try:
        check_certificate(root.certificate, header, genesis.members, verify)
    except CertificateError as exc:
        raise OfflineCertificateError(
            f"the certificate of block {header.height} does not prove it final: {exc.message}",
            height=header.height,
            **exc.detail,
        ) from None
    verify_tx_inclusion(header, root.tx, root.receipt, root.index, root.proof)
    if not root.receipt.accepted:
        raise OfflineRootError(
            f"root transaction {tx_id(root.tx.body).hex()} was rejected with {root.receipt.code}",
            txid=tx_id(root.tx.body).hex(),
            code=root.receipt.code,
        )
    if not isinstance(root.tx.body, Issue | Transfer):
        raise OfflineRootError(
            f"a root must create coins; a {type(root.tx.body).__name__} creates none"
        )


def _offline_lock(coin: Coin, what: str, hop: int) -> OfflineLock:
    lock = coin.lock
    if not isinstance(lock, OfflineLock):
        raise OfflineLockError(
            f"hop {hop} {what} a coin under a {type(lock).__name__}, not an offline lock",
            hop=hop,
        )
    return lock


def _check_hop_shape(hop_index: int, tx: SignedTx, genesis: Genesis) -> Transfer:
    body = tx.body
    if not isinstance(body, Transfer):
        raise OfflineChainError(
            f"hop {hop_index} is a {type(body).__name__}; a hop is a Transfer", hop=hop_index
        )
    params = genesis.params
    if not body.inputs or len(body.inputs) > params.max_inputs:
        raise OfflineChainError(
            f"hop {hop_index} spends {len(body.inputs)} coins; 1 … {params.max_inputs} allowed",
            hop=hop_index,
        )
    if not body.outputs or len(body.outputs) > params.max_outputs:
        raise OfflineChainError(
            f"hop {hop_index} creates {len(body.outputs)} coins; 1 … {params.max_outputs} allowed",
            hop=hop_index,
        )
    if len(encode(tx)) > params.max_tx_bytes:
        raise OfflineChainError(
            f"hop {hop_index} is over the network's {params.max_tx_bytes} bytes", hop=hop_index
        )
    return body


def _check_balance(hop_index: int, inputs: Sequence[Coin], outputs: Sequence[Coin]) -> None:
    totals: dict[str, int] = {}
    for coin in inputs:
        totals[coin.asset] = totals.get(coin.asset, 0) + coin.amount
    for coin in outputs:
        totals[coin.asset] = totals.get(coin.asset, 0) - coin.amount
    for asset, difference in sorted(totals.items()):
        if difference != 0:
            raise OfflineAmountError(
                f"hop {hop_index} spends {'more' if difference > 0 else 'less'} {asset} than "
                f"it creates (by {abs(difference)})",
                hop=hop_index,
                asset=asset,
                difference=difference,
            )


def _check_witnesses(
    hop_index: int, tx: SignedTx, owners: Sequence[PublicKey], chain_id: str, verify: Verifier
) -> None:
    if len(tx.witnesses) != len(owners):
        raise OfflineSignatureError(
            f"hop {hop_index} has {len(tx.witnesses)} witnesses for {len(owners)} inputs",
            hop=hop_index,
        )
    message = sighash(chain_id, tx_id(tx.body))
    for position, (witness, owner) in enumerate(zip(tx.witnesses, owners, strict=True)):
        signatures = witness.signatures
        if (
            len(signatures) != 1
            or signatures[0].signer != 0
            or not verify(owner, message, signatures[0].sig)
        ):
            raise OfflineSignatureError(
                f"input {position} of hop {hop_index} is not signed by its owner {owner.hex()}",
                hop=hop_index,
                input=position,
                owner=owner.hex(),
            )


def verify_chain(
    chain: TrustChain, genesis: Genesis, verify: Verifier = schnorr_verify
) -> VerifiedChain:
    """Check a trust chain with no network: roots, then every hop in order.

    Args:
        chain: The chain.
        genesis: The network's genesis the device holds: chain id, members, parameters.
        verify: The Schnorr verifier.

    Returns:
        The coins it establishes and when it must be settled.

    Raises:
        OfflineNetworkError, OfflineCertificateError, InclusionProofError, OfflineRootError:
            a root is not proved (see `verify_root`).
        OfflineChainError: a root given twice or unused, a hop that is not a transfer,
            spends a coin the chain did not create or already spent, or leads nowhere.
        OfflineLockError: a coin spent or created by a hop is not under an offline lock, or
            an output unlocks before an input.
        OfflineAmountError: a hop does not balance.
        OfflineSignatureError: a witness is not its coin owner's signature.
    """
    coins: dict[CoinId, Coin] = {}
    origin: dict[CoinId, int] = {}
    """Where each coin comes from: -1 - root position, or the hop's position."""
    seen_roots: set[TxId] = set()
    for position, root in enumerate(chain.roots):
        txid = tx_id(root.tx.body)
        if txid in seen_roots:
            raise OfflineChainError(f"root {txid.hex()} is given twice", txid=txid.hex())
        seen_roots.add(txid)
        verify_root(root, genesis, verify)
        for cid, coin in root_outputs(root).items():
            coins[cid] = coin
            origin[cid] = -1 - position
    spent: set[CoinId] = set()
    used_roots: set[int] = set()
    fed_hops: set[int] = set()
    owners: set[PublicKey] = set()
    deadline: int | None = None
    for hop_index, tx in enumerate(chain.hops):
        body = _check_hop_shape(hop_index, tx, genesis)
        inputs: list[Coin] = []
        for cid in body.inputs:
            if cid not in coins:
                raise OfflineChainError(
                    f"hop {hop_index} spends coin {cid.hex()}, which no root or earlier hop "
                    "creates",
                    hop=hop_index,
                    coin_id=cid.hex(),
                )
            if cid in spent:
                raise OfflineChainError(
                    f"hop {hop_index} spends coin {cid.hex()}, already spent in the chain",
                    hop=hop_index,
                    coin_id=cid.hex(),
                )
            spent.add(cid)
            source = origin[cid]
            if source < 0:
                used_roots.add(-1 - source)
            else:
                fed_hops.add(source)
            inputs.append(coins[cid])
        input_locks = [_offline_lock(coin, "spends", hop_index) for coin in inputs]
        floor = max(lock.unlock_height for lock in input_locks)
        for output in body.outputs:
            lock = _offline_lock(output, "creates", hop_index)
            if lock.unlock_height < floor:
                raise OfflineLockError(
                    f"hop {hop_index} creates a coin that unlocks at {lock.unlock_height}, "
                    f"before its input that unlocks at {floor}",
                    hop=hop_index,
                    unlock_height=lock.unlock_height,
                    floor=floor,
                )
        _check_balance(hop_index, inputs, body.outputs)
        hop_owners = [lock.owner for lock in input_locks]
        _check_witnesses(hop_index, tx, hop_owners, genesis.chain_id, verify)
        owners.update(hop_owners)
        hop_deadline = min(body.valid_until, min(lock.unlock_height for lock in input_locks))
        deadline = hop_deadline if deadline is None else min(deadline, hop_deadline)
        txid = tx_id(body)
        for index, output in enumerate(body.outputs):
            cid = coin_id(txid, index)
            coins[cid] = output
            origin[cid] = hop_index
    for position, root in enumerate(chain.roots):
        if position not in used_roots:
            raise OfflineChainError(
                f"root {tx_id(root.tx.body).hex()} is not spent by any hop",
                txid=tx_id(root.tx.body).hex(),
            )
    for hop_index in range(len(chain.hops) - 1):
        if hop_index not in fed_hops:
            raise OfflineChainError(
                f"hop {hop_index} feeds no later hop; a chain holds only what leads to its end",
                hop=hop_index,
            )
    unspent = {cid: coin for cid, coin in coins.items() if origin[cid] >= 0 and cid not in spent}
    return VerifiedChain(
        coins=coins,
        unspent=unspent,
        owners=frozenset(owners),
        deadline=deadline,
        known_height=known_height_of(chain),
    )


def chain_deadline(chain: TrustChain) -> int | None:
    """The last height at which every hop of `chain` can still be settled safely.

    The smallest, over the hops, of each hop's `valid_until` and its inputs' unlock
    heights; None for a chain without hops (a coin on the ledger: its own unlock height
    is then what counts). Unverified: use it on chains the device built or checked.
    """
    coins: dict[CoinId, Coin] = {}
    for root in chain.roots:
        coins.update(root_outputs(root))
    deadline: int | None = None
    for tx in chain.hops:
        body = tx.body
        if not isinstance(body, Transfer):
            continue
        limit = int(body.valid_until)
        for cid in body.inputs:
            coin = coins.get(cid)
            if coin is not None and isinstance(coin.lock, OfflineLock):
                limit = min(limit, int(coin.lock.unlock_height))
        deadline = limit if deadline is None else min(deadline, limit)
        txid = tx_id(body)
        for index, output in enumerate(body.outputs):
            coins[coin_id(txid, index)] = output
    return deadline


def verify_payment(
    payment: OfflinePayment,
    payee_hello: Hello,
    genesis: Genesis,
    limits: OfflineLimits,
    *,
    known_height: int,
    unsettled: int,
    barred: Iterable[PublicKey] = (),
    verify: Verifier = schnorr_verify,
) -> ReceivedPayment:
    """Check a payment received offline, as its payee, with no network.

    Args:
        payment: The payment.
        payee_hello: The hello this device sent for it (the caller finds it by
            `payment.payee_nonce` and refuses a nonce it never issued or already used).
        genesis: The network's genesis the device holds.
        limits: The device's limits.
        known_height: The newest block height the device knows (its last sync); the
            chain's own headers may show a newer one.
        unsettled: What the device holds in received payments not yet settled.
        barred: Keys the device knows to be barred for a double spend.
        verify: The Schnorr verifier.

    Returns:
        The payment's details and the coin it gives.

    Raises:
        OfflineVersionError: the payment's version is not the agreed one.
        OfflineNetworkError: another network.
        OfflineReplayError: the payment answers another hello, or its binding signature
            does not verify.
        OfflineLimitError: over the device's or the agreed limits.
        OfflineFeatureError: a feature or asset not agreed (multi-hop, split, asset).
        OfflinePayerBarredError: a hop signed by a barred key.
        OfflinePayeeError: the last hop does not pay this device's key exactly once.
        OfflineAmountError: the coin paid is not the payment's amount and asset.
        OfflineExpiredError: the chain must be settled sooner than the margin allows.
        Rejection: whatever `verify_chain` raises for the chain.
    """
    agreement = negotiate(payment.payer_hello, payee_hello)
    if payment.version != agreement.version:
        raise OfflineVersionError(
            f"the payment is of version {payment.version}; the hellos agree on {agreement.version}",
            version=payment.version,
            agreed=agreement.version,
        )
    if agreement.chain_id != genesis.chain_id:
        raise OfflineNetworkError(
            f"the payment is on {agreement.chain_id!r}; this device is on {genesis.chain_id!r}",
            chain_id=agreement.chain_id,
        )
    if payment.payee_nonce != payee_hello.nonce or payment.payee != agreement.payee:
        raise OfflineReplayError(
            "the payment answers another device's hello, not this one",
            nonce=payment.payee_nonce.hex(),
        )
    chain = payment.chain
    if not chain.hops:
        raise OfflineChainError("a payment's chain ends with the payment's hop; it has none")
    check_hop_limit(len(chain.hops), len(chain.roots), limits)
    check_amount_limits(payment.amount, unsettled, limits, agreement.features.max_amount)
    features = agreement.features
    if len(chain.hops) > 1 and not features.multi_hop:
        raise OfflineFeatureError(
            f"a chain of {len(chain.hops)} hops, but the devices did not agree on multi-hop",
            hops=len(chain.hops),
        )
    if payment.asset not in features.assets:
        raise OfflineFeatureError(
            f"the payment is in {payment.asset}; the devices agreed on "
            f"{', '.join(features.assets)}",
            asset=payment.asset,
        )
    verified = verify_chain(chain, genesis, verify)
    offenders = sorted(verified.owners.intersection(barred))
    if offenders:
        raise OfflinePayerBarredError(
            f"the chain holds a hop signed by {offenders[0].hex()}, barred for a double spend",
            owner=offenders[0].hex(),
        )
    body = _check_hop_shape(len(chain.hops) - 1, chain.hops[-1], genesis)
    last_txid = tx_id(body)
    paid = [
        (index, coin)
        for index, coin in enumerate(body.outputs)
        if isinstance(coin.lock, OfflineLock) and coin.lock.owner == agreement.payee
    ]
    if len(paid) != 1:
        raise OfflinePayeeError(
            f"the last hop pays this device's key in {len(paid)} coins; one is expected",
            coins=len(paid),
        )
    index, coin = paid[0]
    if coin.asset != payment.asset or coin.amount != payment.amount:
        raise OfflineAmountError(
            f"the payment says {payment.amount} {payment.asset}; the hop pays "
            f"{coin.amount} {coin.asset}",
            amount=payment.amount,
            paid=coin.amount,
        )
    if len(body.outputs) > 1 and not features.split:
        raise OfflineFeatureError(
            "the last hop has change, but the devices did not agree on split",
            outputs=len(body.outputs),
        )
    binder_coin = verified.coins[body.inputs[0]]
    binder = _offline_lock(binder_coin, "spends", len(chain.hops) - 1).owner
    message = binding_message(
        payment.version,
        agreement.chain_id,
        last_txid,
        agreement.payer_nonce,
        agreement.payee_nonce,
    )
    if not verify(binder, message, payment.binding):
        raise OfflineReplayError(
            "the payment's binding to the two hellos is not signed by the payer",
            payer=binder.hex(),
        )
    known = max(known_height, verified.known_height)
    deadline = verified.deadline if verified.deadline is not None else known
    if deadline < known + limits.expiry_margin:
        raise OfflineExpiredError(
            f"the chain must be settled by height {deadline}; the device knows height {known} "
            f"and wants {limits.expiry_margin} blocks of margin",
            deadline=deadline,
            known_height=known,
            margin=limits.expiry_margin,
        )
    return ReceivedPayment(
        payment_id=last_txid,
        agreement=agreement,
        asset=payment.asset,
        amount=payment.amount,
        coin_id=coin_id(last_txid, index),
        coin=coin,
        payer=binder,
        deadline=deadline,
        chain=chain,
    )


def merge_chains(chains: Iterable[TrustChain]) -> TrustChain:
    """One chain holding the roots and hops of several, each once, in an order that settles.

    Each chain lists its hops in an order that settles; keeping the first occurrence of
    every hop keeps each before the hops that spend its outputs.
    """
    roots: dict[TxId, RootProof] = {}
    hops: dict[TxId, SignedTx] = {}
    for chain in chains:
        for root in chain.roots:
            roots.setdefault(tx_id(root.tx.body), root)
        for hop in chain.hops:
            hops.setdefault(tx_id(hop.body), hop)
    return TrustChain(roots=tuple(roots.values()), hops=tuple(hops.values()))


def prune_chain(chain: TrustChain, wanted: Iterable[CoinId]) -> TrustChain:
    """The part of `chain` that leads to the coins `wanted`: their hops and roots only.

    Args:
        chain: A chain.
        wanted: Coins created by its roots or hops.

    Returns:
        The roots and hops they descend from, in the chain's order.
    """
    needed_coins = set(wanted)
    needed_hops: set[int] = set()
    for position in range(len(chain.hops) - 1, -1, -1):
        body = chain.hops[position].body
        if not isinstance(body, Transfer):
            continue
        txid = tx_id(body)
        if any(coin_id(txid, i) in needed_coins for i in range(len(body.outputs))):
            needed_hops.add(position)
            needed_coins.update(body.inputs)
    roots = tuple(root for root in chain.roots if needed_coins.intersection(root_outputs(root)))
    hops = tuple(hop for position, hop in enumerate(chain.hops) if position in needed_hops)
    return TrustChain(roots=roots, hops=hops)


def _chain_coins(chain: TrustChain) -> dict[CoinId, Coin]:
    coins: dict[CoinId, Coin] = {}
    for root in chain.roots:
        coins.update(root_outputs(root))
    for hop in chain.hops:
        body = hop.body
        if isinstance(body, Transfer):
            txid = tx_id(body)
            for index, output in enumerate(body.outputs):
                coins[coin_id(txid, index)] = output
    return coins


def find_double_spend(
    chain: TrustChain,
    known: Iterable[TrustChain],
    chain_id: str,
    verify: Verifier = schnorr_verify,
) -> DoubleSpendProof | None:
    """A double spend between `chain` and chains the device already holds, if there is one.

    Two different hops that spend the same offline coin, each signed by its owner, prove
    that the owner signed the coin away twice: the device can tell, offline, as soon as it
    holds both.

    Args:
        chain: The chain just received (verified).
        known: Chains the device holds already.
        chain_id: The network.
        verify: The Schnorr verifier.

    Returns:
        A proof that verifies (`tally.rules.offline.verify_double_spend_proof`), with the
        hop held before as `first`; None when the chains agree.
    """
    spends: dict[CoinId, SignedTx] = {}
    for other in known:
        for hop in other.hops:
            body = hop.body
            if isinstance(body, Transfer):
                for cid in body.inputs:
                    spends.setdefault(cid, hop)
    coins = _chain_coins(chain)
    for hop in chain.hops:
        body = hop.body
        if not isinstance(body, Transfer):
            continue
        txid = tx_id(body)
        for cid in body.inputs:
            earlier = spends.get(cid)
            coin = coins.get(cid)
            if earlier is None or tx_id(earlier.body) == txid or coin is None:
                continue
            if not isinstance(coin.lock, OfflineLock):
                continue
            proof = DoubleSpendProof(
                chain_id=chain_id, coin_id=cid, owner=coin.lock.owner, first=earlier, second=hop
            )
            try:
                verify_double_spend_proof(proof, verify)
            except DoubleSpendProofError:
                continue
            return proof
    return None
