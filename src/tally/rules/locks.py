"""One function per lock kind that decides whether a witness may spend a coin."""

from __future__ import annotations

from collections.abc import Callable

from tally.model.coin import Coin
from tally.model.lock import (
    ESCROW_PAYEE,
    ESCROW_PAYER,
    OFFLINE_OWNER,
    EscrowLock,
    KeyLock,
    MultiLock,
    OfflineLock,
)
from tally.model.tx import Signature, Transfer, TxBody, Witness
from tally.model.types import Amount, Hash32, Height, PublicKey
from tally.rules.errors import (
    EscrowCaptureKindError,
    EscrowCaptureShapeError,
    EscrowExpiredError,
    EscrowNotExpiredError,
    EscrowOverCaptureError,
    EscrowRefundError,
    InvalidSignatureError,
    OfflineLockedError,
    OfflineRedeemError,
    SignerIndexError,
    ThresholdError,
)

__all__ = [
    "Verifier",
    "check_spend",
    "check_signature",
    "check_key_spend",
    "check_multi_spend",
    "check_escrow_spend",
    "check_offline_spend",
    "is_offline_hop",
    "is_owner_signature",
]

Verifier = Callable[[bytes, bytes, bytes], bool]
"""`verify(public_key, msg32, signature) -> bool`: pure, so results may be cached anywhere."""


def check_signature(key: PublicKey, msg: Hash32, signature: Signature, verify: Verifier) -> None:
    """Check one signature against one key.

    Raises:
        InvalidSignatureError: it does not verify.
    """
    if not verify(key, msg, signature.sig):
        raise InvalidSignatureError(
            f"signature by key {key.hex()} does not verify for this transaction",
            key=key.hex(),
            signer=signature.signer,
        )


def _single(witness: Witness, allowed: tuple[int, ...]) -> Signature:
    if len(witness.signatures) != 1 or witness.signatures[0].signer not in allowed:
        raise SignerIndexError(
            f"this lock takes exactly one signature by signer {' or '.join(map(str, allowed))}",
            signers=[s.signer for s in witness.signatures],
        )
    return witness.signatures[0]


def check_key_spend(lock: KeyLock, witness: Witness, msg: Hash32, verify: Verifier) -> None:
    """A `KeyLock` is spent by one signature of its key, as signer 0."""
    check_signature(lock.key, msg, _single(witness, (0,)), verify)


def check_multi_spend(lock: MultiLock, witness: Witness, msg: Hash32, verify: Verifier) -> None:
    """A `MultiLock` is spent by valid signatures of at least `threshold` of its keys.

    Raises:
        SignerIndexError: a signer index is not one of the lock's keys.
        ThresholdError: fewer signatures than the threshold.
        InvalidSignatureError: a signature does not verify.
    """
    for signature in witness.signatures:
        if not 0 <= signature.signer < len(lock.keys):
            raise SignerIndexError(
                f"signer {signature.signer} is not one of the lock's {len(lock.keys)} keys",
                signer=signature.signer,
            )
    if len(witness.signatures) < lock.threshold:
        raise ThresholdError(
            f"{len(witness.signatures)} signatures, the lock needs {lock.threshold}",
            found=len(witness.signatures),
            threshold=lock.threshold,
        )
    for signature in witness.signatures:
        check_signature(lock.keys[signature.signer], msg, signature, verify)


def check_escrow_spend(
    lock: EscrowLock,
    coin: Coin,
    witness: Witness,
    body: TxBody,
    msg: Hash32,
    height: Height,
    verify: Verifier,
) -> None:
    """An `EscrowLock` is captured by the payee until expiry or reclaimed by the payer after.

    A capture is a `Transfer` that spends the escrow coin alone; output 0 is the payment (any
    lock, at most the escrowed amount) and, if it is less, output 1 refunds exactly the rest
    to `KeyLock(payer)`. A reclaim is any spend signed by the payer after expiry.

    Raises:
        SignerIndexError: not exactly one signature by payer (0) or payee (1).
        EscrowNotExpiredError: the payer reclaims at or before expiry.
        EscrowExpiredError: the payee captures after expiry.
        EscrowCaptureKindError: a capture that is not a `Transfer`.
        EscrowCaptureShapeError: a capture with other inputs or the wrong number of outputs.
        EscrowOverCaptureError: the payment exceeds the escrowed amount.
        EscrowRefundError: the refund to the payer is missing or wrong.
        InvalidSignatureError: the signature does not verify.
    """
    signature = _single(witness, (ESCROW_PAYER, ESCROW_PAYEE))
    if signature.signer == ESCROW_PAYER:
        if height <= lock.expiry:
            raise EscrowNotExpiredError(
                f"the payer may reclaim after height {lock.expiry}; the block is at {height}",
                expiry=lock.expiry,
                height=height,
            )
        check_signature(lock.payer, msg, signature, verify)
        return
    if height > lock.expiry:
        raise EscrowExpiredError(
            f"the payee could capture until height {lock.expiry}; the block is at {height}",
            expiry=lock.expiry,
            height=height,
        )
    if not isinstance(body, Transfer):
        raise EscrowCaptureKindError(
            f"an escrow capture must be a Transfer, not {type(body).__name__}"
        )
    if len(body.inputs) != 1 or not 1 <= len(body.outputs) <= 2:
        raise EscrowCaptureShapeError(
            "a capture spends the escrow coin alone and has one payment and at most one refund",
            inputs=len(body.inputs),
            outputs=len(body.outputs),
        )
    payment = body.outputs[0]
    if payment.asset == coin.asset and payment.amount > coin.amount:
        raise EscrowOverCaptureError(
            f"capture of {payment.amount} exceeds the escrowed {coin.amount}",
            captured=payment.amount,
            escrowed=coin.amount,
        )
    rest = coin.amount - payment.amount
    expected_refund = (
        Coin(asset=coin.asset, amount=Amount(rest), lock=KeyLock(key=lock.payer))
        if rest > 0
        else None
    )
    found_refund = body.outputs[1] if len(body.outputs) == 2 else None
    if payment.asset != coin.asset or found_refund != expected_refund:
        raise EscrowRefundError(
            f"a capture of {payment.amount} must refund exactly {rest} {coin.asset} "
            "to the payer's key in output 1",
            rest=rest,
        )
    check_signature(lock.payee, msg, signature, verify)


def is_offline_hop(body: Transfer, unlock_height: Height) -> bool:
    """Whether `body` is an offline hop: every output an `OfflineLock` unlocking no earlier.

    That is, every output's `unlock_height` is at least `unlock_height`, the input's.
    """
    return all(
        isinstance(output.lock, OfflineLock) and output.lock.unlock_height >= unlock_height
        for output in body.outputs
    )


def check_offline_spend(
    lock: OfflineLock,
    witness: Witness,
    body: TxBody,
    msg: Hash32,
    height: Height,
    verify: Verifier,
) -> None:
    """An `OfflineLock` is spent by its owner: by an offline hop at any height, else after unlock.

    The spend is a `Transfer` with one signature by the owner as signer 0. At heights up to
    `unlock_height` every output must itself be an `OfflineLock` unlocking no earlier than
    this one (`is_offline_hop`); from the next height any transfer is allowed.

    Raises:
        SignerIndexError: not exactly one signature, by signer 0.
        OfflineRedeemError: the spend is not a `Transfer` (offline money is not redeemed).
        OfflineLockedError: at or before `unlock_height`, an output that is not an offline
            lock unlocking at least as late.
        InvalidSignatureError: the signature does not verify.
    """
    signature = _single(witness, (OFFLINE_OWNER,))
    if not isinstance(body, Transfer):
        raise OfflineRedeemError(
            f"an offline coin is spent only by a Transfer, not by a {type(body).__name__}",
            kind=type(body).__name__,
        )
    if height <= lock.unlock_height and not is_offline_hop(body, lock.unlock_height):
        raise OfflineLockedError(
            f"the coin is locked offline until height {lock.unlock_height} (the block is at "
            f"{height}): until then it may only move into offline locks unlocking at or after "
            f"{lock.unlock_height}",
            unlock_height=lock.unlock_height,
            height=height,
        )
    check_signature(lock.owner, msg, signature, verify)


def is_owner_signature(lock: OfflineLock, witness: Witness, msg: Hash32, verify: Verifier) -> bool:
    """Whether `witness` is exactly one valid signature by the lock's owner (signer 0) of `msg`.

    What makes a second spend of an offline coin a double spend by its owner rather than a
    forgery by someone else.
    """
    signatures = witness.signatures
    return (
        len(signatures) == 1
        and signatures[0].signer == OFFLINE_OWNER
        and verify(lock.owner, msg, signatures[0].sig)
    )


def check_spend(
    coin: Coin, witness: Witness, body: TxBody, msg: Hash32, height: Height, verify: Verifier
) -> None:
    """Check that `witness` may spend `coin` in `body` at `height` (dispatch on the lock kind)."""
    lock = coin.lock
    if isinstance(lock, KeyLock):
        check_key_spend(lock, witness, msg, verify)
    elif isinstance(lock, MultiLock):
        check_multi_spend(lock, witness, msg, verify)
    elif isinstance(lock, EscrowLock):
        check_escrow_spend(lock, coin, witness, body, msg, height, verify)
    else:
        check_offline_spend(lock, witness, body, msg, height, verify)
