"""Transaction builders: make and sign each transaction kind, with no I/O.

Every builder returns a `SignedTx` ready for `NodeClient.submit`. Signatures sign
`sighash(chain_id, tx_id(body))`, so the body is built first and signed as a whole; a
witness lists its signatures in increasing signer order, as the rules demand. Outputs may be
given as a `Lock` or as a bare 32-byte public key, which stands for `KeyLock(key)`.

The builders check what they can know without the ledger (a payee key that is not the
escrow's payee, a capture larger than the escrowed amount) and raise `BuilderError`, so that a
mistake is caught before a transaction is signed; everything that needs the ledger is left to
the node.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TypeAlias

from tally.crypto.schnorr import PrivateKey, is_valid_public_key
from tally.model.coin import Coin
from tally.model.encoding import tx_id
from tally.model.lock import (
    ESCROW_PAYEE,
    ESCROW_PAYER,
    EscrowLock,
    KeyLock,
    Lock,
    MultiLock,
    OfflineLock,
)
from tally.model.tx import (
    Govern,
    GovernAction,
    Issue,
    Redeem,
    Signature,
    SignedTx,
    Transfer,
    TxBody,
    Witness,
    sighash,
)
from tally.model.types import (
    Amount,
    AssetCode,
    CoinId,
    Hash32,
    Height,
    PublicKey,
    SignatureBytes,
)

__all__ = [
    "BuilderError",
    "LockLike",
    "Signers",
    "IssueOutput",
    "TransferOutput",
    "to_lock",
    "sign_inputs",
    "make_issue",
    "make_transfer",
    "make_redeem",
    "make_govern",
    "make_escrow_capture",
    "make_escrow_reclaim",
]

LockLike: TypeAlias = KeyLock | MultiLock | EscrowLock | OfflineLock | bytes
"""A lock, or a 32-byte x-only public key standing for `KeyLock(key)`."""

Signers: TypeAlias = PrivateKey | Sequence[tuple[int, PrivateKey]]
"""Who signs one witness: a single key (signer index 0, as for a `KeyLock`) or
`(signer index, key)` pairs (a `MultiLock`, an escrow, admins of a `Govern`)."""

IssueOutput: TypeAlias = tuple[LockLike, int]
"""An output of an issuance: the lock (or public key) and the amount in minor units."""

TransferOutput: TypeAlias = Coin | tuple[LockLike, str, int]
"""An output of a transfer: a `Coin`, or `(lock or public key, asset, amount)`."""

_KEY_SIZE = 32
_HASH_SIZE = 32


class BuilderError(ValueError):
    """The arguments cannot make a valid transaction; nothing was signed."""


def to_lock(lock_or_key: LockLike) -> Lock:
    """The lock an output is given as: a `Lock` as it is, a 32-byte public key as `KeyLock`.

    Raises:
        BuilderError: a byte string that is not a valid 32-byte x-only public key.
    """
    if isinstance(lock_or_key, KeyLock | MultiLock | EscrowLock | OfflineLock):
        return lock_or_key
    key = bytes(lock_or_key)
    if len(key) != _KEY_SIZE or not is_valid_public_key(key):
        raise BuilderError(
            f"an output is a lock or a 32-byte x-only public key, got {len(key)} bytes"
            + ("" if len(key) != _KEY_SIZE else " that are not a point on secp256k1")
        )
    return KeyLock(key=PublicKey(key))


def _signer_pairs(signers: Signers) -> list[tuple[int, PrivateKey]]:
    pairs = [(0, signers)] if isinstance(signers, PrivateKey) else list(signers)
    if not pairs:
        raise BuilderError("a witness needs at least one signer")
    pairs.sort(key=lambda pair: pair[0])
    for (first, _), (second, _) in itertools.pairwise(pairs):
        if first == second:
            raise BuilderError(f"signer index {first} appears twice in one witness")
    if pairs[0][0] < 0:
        raise BuilderError(f"signer indices are non-negative, got {pairs[0][0]}")
    return pairs


def _witness(message: Hash32, signers: Signers) -> Witness:
    return Witness(
        signatures=tuple(
            Signature(signer=index, sig=SignatureBytes(key.sign(message)))
            for index, key in _signer_pairs(signers)
        )
    )


def sign_inputs(body: TxBody, signers_per_input: Sequence[Signers], chain_id: str) -> SignedTx:
    """Sign `body` with one witness per entry of `signers_per_input`.

    For a `Transfer` or `Redeem` the entries correspond to the inputs, in order; for an
    `Issue` or `Govern` there is exactly one entry (the issuer, or the admins).

    Args:
        body: The transaction body.
        signers_per_input: For each witness, a key (signer 0) or `(signer index, key)` pairs.
        chain_id: The network's chain id.

    Returns:
        The signed transaction.

    Raises:
        BuilderError: the number of witnesses does not fit the body, or a witness's signers
            are malformed.
    """
    needed = len(body.inputs) if isinstance(body, Transfer | Redeem) else 1
    if len(signers_per_input) != needed:
        raise BuilderError(
            f"{type(body).__name__} needs {needed} witnesses, got signers for "
            f"{len(signers_per_input)}"
        )
    message = sighash(chain_id, tx_id(body))
    witnesses = tuple(_witness(message, signers) for signers in signers_per_input)
    return SignedTx(body=body, witnesses=witnesses)


def _transfer_output(output: TransferOutput) -> Coin:
    if isinstance(output, Coin):
        return output
    lock, asset, amount = output
    return Coin(asset=AssetCode(asset), amount=Amount(amount), lock=to_lock(lock))


def _hash32(value: bytes, what: str) -> Hash32:
    if len(value) != _HASH_SIZE:
        raise BuilderError(f"{what} is 32 bytes, got {len(value)}")
    return Hash32(bytes(value))


def make_issue(
    asset: str,
    issuer_key: PrivateKey,
    outputs: Sequence[IssueOutput],
    reserve_ref: bytes,
    nonce: int,
    valid_until: int,
    chain_id: str,
) -> SignedTx:
    """An issuance of `asset` by its registered issuer, signed by `issuer_key`.

    Args:
        asset: The asset's code, such as `CNY`.
        issuer_key: The key registered to issue `asset`.
        outputs: `(lock or public key, amount)` for each new coin.
        reserve_ref: The 32-byte hash of the reserve's freeze certificate.
        nonce: Makes otherwise identical issuances distinct; choose a fresh one each time.
        valid_until: Last height at which the issuance may be committed.
        chain_id: The network's chain id.

    Returns:
        The signed issuance.

    Raises:
        BuilderError: `reserve_ref` is not 32 bytes, or an output lock is malformed.
        Rejection: an amount out of range or a malformed asset code (from `Coin`).
    """
    code = AssetCode(asset)
    body = Issue(
        asset=code,
        issuer=PublicKey(issuer_key.public_key),
        outputs=tuple(
            Coin(asset=code, amount=Amount(amount), lock=to_lock(lock)) for lock, amount in outputs
        ),
        reserve_ref=_hash32(reserve_ref, "reserve_ref"),
        nonce=nonce,
        valid_until=Height(valid_until),
    )
    return sign_inputs(body, [issuer_key], chain_id)


def make_transfer(
    inputs: Sequence[tuple[CoinId | bytes, Signers]],
    outputs: Sequence[TransferOutput],
    valid_until: int,
    chain_id: str,
) -> SignedTx:
    """A transfer spending `inputs` into `outputs`.

    The builder does not know the input coins, so it cannot check that the values balance;
    the node refuses an unbalanced transfer with `value.unbalanced`.

    Args:
        inputs: `(coin id, signers)` per input; signers is the owner's key for a `KeyLock`
            or `OfflineLock` coin, or `(signer index, key)` pairs for a `MultiLock` or
            escrow coin.
        outputs: The coins to create: `Coin`s or `(lock or public key, asset, amount)`.
        valid_until: Last height at which the transfer may be committed.
        chain_id: The network's chain id.

    Returns:
        The signed transfer.

    Raises:
        BuilderError: a coin id is not 32 bytes, or an output lock or signer is malformed.
        Rejection: an amount out of range or a malformed asset code (from `Coin`).
    """
    body = Transfer(
        inputs=tuple(CoinId(_hash32(cid, "a coin id")) for cid, _ in inputs),
        outputs=tuple(_transfer_output(output) for output in outputs),
        valid_until=Height(valid_until),
    )
    return sign_inputs(body, [signers for _, signers in inputs], chain_id)


def make_redeem(
    asset: str,
    inputs: Sequence[tuple[CoinId | bytes, Signers]],
    account: bytes,
    valid_until: int,
    chain_id: str,
) -> SignedTx:
    """A redemption handing coins of `asset` back to the issuer.

    Args:
        asset: The asset redeemed; every input must be of it.
        inputs: `(coin id, signers)` per coin destroyed.
        account: The reserve account at the issuer to credit, at most 64 bytes.
        valid_until: Last height at which the redemption may be committed.
        chain_id: The network's chain id.

    Returns:
        The signed redemption.

    Raises:
        BuilderError: a coin id is not 32 bytes, `account` is over 64 bytes, or a signer is
            malformed.
    """
    if len(account) > 64:
        raise BuilderError(f"the account is at most 64 bytes, got {len(account)}")
    body = Redeem(
        asset=AssetCode(asset),
        inputs=tuple(CoinId(_hash32(cid, "a coin id")) for cid, _ in inputs),
        account=bytes(account),
        valid_until=Height(valid_until),
    )
    return sign_inputs(body, [signers for _, signers in inputs], chain_id)


def make_govern(
    action: GovernAction,
    admin_keys: Sequence[tuple[int, PrivateKey]],
    nonce: int,
    valid_until: int,
    chain_id: str,
) -> SignedTx:
    """A governance transaction signed by admins.

    Args:
        action: What changes (`RegisterAsset`, `AddMember`, `RevokeMember`, `SetParams`).
        admin_keys: `(index in genesis's admin list, key)` of each signing admin; at least
            the admin threshold of them.
        nonce: Makes otherwise identical actions distinct.
        valid_until: Last height at which the action may be committed.
        chain_id: The network's chain id.

    Returns:
        The signed governance transaction.

    Raises:
        BuilderError: no admin, or an admin index given twice.
    """
    body = Govern(action=action, nonce=nonce, valid_until=Height(valid_until))
    return sign_inputs(body, [list(admin_keys)], chain_id)


def _escrow_lock(escrow_coin: Coin) -> EscrowLock:
    lock = escrow_coin.lock
    if not isinstance(lock, EscrowLock):
        raise BuilderError(f"the coin is not in escrow: its lock is a {type(lock).__name__}")
    return lock


def make_escrow_capture(
    escrow_coin_id: CoinId | bytes,
    escrow_coin: Coin,
    payee_key: PrivateKey,
    amount: int,
    pay_to: LockLike,
    chain_id: str,
    valid_until: int,
) -> SignedTx:
    """The payee captures `amount` of an escrow coin; the rest goes back to the payer.

    Follows the capture rule of `tally.rules.locks.check_escrow_spend`: a `Transfer` that
    spends the escrow coin alone, output 0 pays `amount` to `pay_to`, and, if `amount` is
    less than the escrowed amount, output 1 refunds exactly the rest to `KeyLock(payer)`.
    It must be committed at or before the lock's expiry.

    Args:
        escrow_coin_id: The escrow coin's id.
        escrow_coin: The escrow coin (as the node returns it).
        payee_key: The payee's key, named by the lock.
        amount: How much to capture, 1 … the escrowed amount.
        pay_to: Where the captured amount goes (a lock or a public key).
        chain_id: The network's chain id.
        valid_until: Last height at which the capture may be committed; at most the expiry
            for it to be accepted.

    Returns:
        The signed capture.

    Raises:
        BuilderError: the coin is not in escrow, `payee_key` is not its payee, or `amount`
            is more than the escrowed amount.
    """
    lock = _escrow_lock(escrow_coin)
    if payee_key.public_key != lock.payee:
        raise BuilderError(
            f"key {payee_key.public_key.hex()} is not the escrow's payee {lock.payee.hex()}"
        )
    if amount > escrow_coin.amount:
        raise BuilderError(f"cannot capture {amount}: the escrow holds {escrow_coin.amount}")
    outputs = [Coin(asset=escrow_coin.asset, amount=Amount(amount), lock=to_lock(pay_to))]
    rest = escrow_coin.amount - amount
    if rest > 0:
        outputs.append(
            Coin(asset=escrow_coin.asset, amount=Amount(rest), lock=KeyLock(key=lock.payer))
        )
    return make_transfer(
        [(escrow_coin_id, [(ESCROW_PAYEE, payee_key)])], outputs, valid_until, chain_id
    )


def make_escrow_reclaim(
    escrow_coin_id: CoinId | bytes,
    escrow_coin: Coin,
    payer_key: PrivateKey,
    chain_id: str,
    valid_until: int,
    pay_to: LockLike | None = None,
) -> SignedTx:
    """The payer takes an expired escrow coin back, whole.

    Accepted only in a block after the lock's expiry.

    Args:
        escrow_coin_id: The escrow coin's id.
        escrow_coin: The escrow coin.
        payer_key: The payer's key, named by the lock.
        chain_id: The network's chain id.
        valid_until: Last height at which the reclaim may be committed.
        pay_to: Where the coin goes; the payer's own `KeyLock` by default.

    Returns:
        The signed reclaim.

    Raises:
        BuilderError: the coin is not in escrow, or `payer_key` is not its payer.
    """
    lock = _escrow_lock(escrow_coin)
    if payer_key.public_key != lock.payer:
        raise BuilderError(
            f"key {payer_key.public_key.hex()} is not the escrow's payer {lock.payer.hex()}"
        )
    target = to_lock(pay_to) if pay_to is not None else KeyLock(key=lock.payer)
    output = Coin(asset=escrow_coin.asset, amount=escrow_coin.amount, lock=target)
    return make_transfer(
        [(escrow_coin_id, [(ESCROW_PAYER, payer_key)])], [output], valid_until, chain_id
    )
