"""Checks of a transaction that need no state: shape, counts, sums and windows.

They run before signature verification and before the mempool, so that cheap refusals come
first; `apply_block` runs them again, since a block may come from a faulty orderer.
"""

from __future__ import annotations

from tally.model.coin import Coin, InvalidAssetCodeError
from tally.model.lock import MultiLock
from tally.model.params import Params
from tally.model.tx import Govern, Issue, RegisterAsset, SignedTx, Transfer, TxBody
from tally.model.types import MAX_AMOUNT, CoinId, Height, is_valid_asset_code
from tally.rules.errors import (
    DuplicateInputError,
    InvalidLockError,
    IssueAssetMismatchError,
    NoInputsError,
    NoOutputsError,
    SumOverflowError,
    TooManyInputsError,
    TooManyOutputsError,
    WindowExpiredError,
    WindowTooFarError,
    WitnessCountError,
    WitnessOrderError,
)

__all__ = ["check_tx", "check_window", "MAX_MULTISIG_KEYS"]

MAX_MULTISIG_KEYS = 16
"""Most keys a `MultiLock` may name."""


def check_tx(tx: SignedTx, params: Params) -> None:
    """Check everything about `tx` that does not depend on state or height.

    Raises:
        WitnessCountError: the witness count does not fit the kind.
        InvalidAssetCodeError: an asset code named by the body is malformed.
        NoInputsError, TooManyInputsError: input count out of 1 … `max_inputs`.
        NoOutputsError, TooManyOutputsError: output count out of range.
        DuplicateInputError: a coin appears twice among the inputs.
        IssueAssetMismatchError: an issuance creates coins of another asset.
        SumOverflowError: outputs of one asset add up to more than 2^63-1.
        InvalidLockError: a multisig lock with a bad threshold, too many keys, or a key
            named twice (which would let one key count as several).
        WitnessOrderError: signer indices not strictly increasing.
    """
    body = tx.body
    inputs: tuple[CoinId, ...] = () if isinstance(body, Issue | Govern) else body.inputs
    outputs: tuple[Coin, ...] = body.outputs if isinstance(body, Issue | Transfer) else ()
    needed = 1 if isinstance(body, Issue | Govern) else len(inputs)
    if len(tx.witnesses) != needed:
        raise WitnessCountError(
            f"{type(body).__name__} needs {needed} witnesses, got {len(tx.witnesses)}",
            expected=needed,
            found=len(tx.witnesses),
        )
    if isinstance(body, Govern) and isinstance(body.action, RegisterAsset):
        _check_asset_code(body.action.asset)
    elif not isinstance(body, Govern | Transfer):
        _check_asset_code(body.asset)
    if not isinstance(body, Issue | Govern):
        _check_inputs(inputs, params)
    if isinstance(body, Issue | Transfer):
        _check_outputs(body, outputs, params)
    for witness in tx.witnesses:
        last = -1
        for signature in witness.signatures:
            if signature.signer <= last:
                raise WitnessOrderError(
                    "signer indices in a witness must be strictly increasing",
                    signer=signature.signer,
                )
            last = signature.signer


def _check_inputs(inputs: tuple[CoinId, ...], params: Params) -> None:
    if not inputs:
        raise NoInputsError("the transaction spends no coin")
    if len(inputs) > params.max_inputs:
        raise TooManyInputsError(
            f"{len(inputs)} inputs, at most {params.max_inputs} allowed",
            count=len(inputs),
            limit=params.max_inputs,
        )
    if len(set(inputs)) != len(inputs):
        seen: set[CoinId] = set()
        for coin_id in inputs:
            if coin_id in seen:
                raise DuplicateInputError(
                    f"coin {coin_id.hex()} is spent twice by one transaction",
                    coin_id=coin_id.hex(),
                )
            seen.add(coin_id)


def _check_outputs(body: Issue | Transfer, outputs: tuple[Coin, ...], params: Params) -> None:
    if not outputs:
        raise NoOutputsError("the transaction creates no coin")
    if len(outputs) > params.max_outputs:
        raise TooManyOutputsError(
            f"{len(outputs)} outputs, at most {params.max_outputs} allowed",
            count=len(outputs),
            limit=params.max_outputs,
        )
    sums: dict[str, int] = {}
    for index, output in enumerate(outputs):
        if isinstance(body, Issue) and output.asset != body.asset:
            raise IssueAssetMismatchError(
                f"issuance of {body.asset} creates output {index} of {output.asset}",
                index=index,
                expected=body.asset,
                found=output.asset,
            )
        total = sums.get(output.asset, 0) + output.amount
        if total > MAX_AMOUNT:
            raise SumOverflowError(
                f"outputs of {output.asset} add up to more than {MAX_AMOUNT}",
                asset=output.asset,
            )
        sums[output.asset] = total
        lock = output.lock
        if isinstance(lock, MultiLock):
            _check_multi_lock(lock, index)


def _check_multi_lock(lock: MultiLock, index: int) -> None:
    if not 1 <= lock.threshold <= len(lock.keys) <= MAX_MULTISIG_KEYS:
        raise InvalidLockError(
            f"multisig lock needs 1 ≤ threshold ≤ keys ≤ {MAX_MULTISIG_KEYS}, "
            f"got threshold {lock.threshold} of {len(lock.keys)} keys",
            index=index,
        )
    if len(set(lock.keys)) != len(lock.keys):
        # The threshold counts distinct keys: a repeated key would sign for several.
        raise InvalidLockError("a multisig lock names the same key twice", index=index)


def _check_asset_code(asset: str) -> None:
    if not is_valid_asset_code(asset):
        raise InvalidAssetCodeError(
            f"asset code must match [A-Z][A-Z0-9]{{1,11}}, got {asset!r}", asset=asset
        )


def check_window(body: TxBody, height: Height, params: Params) -> None:
    """Check that `body` may be committed at `height`.

    Raises:
        WindowExpiredError: `valid_until` is below `height`.
        WindowTooFarError: `valid_until` is more than `max_window` past `height`.
    """
    if body.valid_until < height:
        raise WindowExpiredError(
            f"valid until height {body.valid_until}, the block is at {height}",
            valid_until=body.valid_until,
            height=height,
        )
    if body.valid_until > height + params.max_window:
        raise WindowTooFarError(
            f"valid until height {body.valid_until}, at most {height + params.max_window} allowed",
            valid_until=body.valid_until,
            limit=height + params.max_window,
        )
