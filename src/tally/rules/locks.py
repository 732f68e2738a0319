"""One function per lock kind that decides whether a witness may spend a coin."""

from __future__ import annotations

from collections.abc import Callable

from tally.model.coin import Coin
from tally.model.lock import ESCROW_PAYEE, ESCROW_PAYER, EscrowLock, KeyLock, MultiLock
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
    SignerIndexError,
    ThresholdError,
)

__all__ = ["Verifier", "check_spend", "check_signature"]

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


def check_spend(
    coin: Coin, witness: Witness, body: TxBody, msg: Hash32, height: Height, verify: Verifier
) -> None:
    """Check that `witness` may spend `coin` in `body` at `height` (dispatch on the lock kind)."""
    lock = coin.lock
    if isinstance(lock, KeyLock):
        check_key_spend(lock, witness, msg, verify)
    elif isinstance(lock, MultiLock):
        check_multi_spend(lock, witness, msg, verify)
    else:
        check_escrow_spend(lock, coin, witness, body, msg, height, verify)
