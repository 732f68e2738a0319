"""One rejection class per ledger rule, each with its stable code (see docs/rejections.md)."""

from __future__ import annotations

from tally.model.rejection import Rejection

__all__ = [
    "WitnessCountError",
    "NoInputsError",
    "TooManyInputsError",
    "NoOutputsError",
    "TooManyOutputsError",
    "DuplicateInputError",
    "SumOverflowError",
    "IssueAssetMismatchError",
    "InvalidLockError",
    "WitnessOrderError",
    "WindowExpiredError",
    "WindowTooFarError",
    "ReplayedError",
    "UnknownInputError",
    "SpentInputError",
    "UnknownAssetError",
    "UnbalancedError",
    "UnauthorizedIssuerError",
    "SupplyOverflowError",
    "RedeemAssetMismatchError",
    "SignerIndexError",
    "ThresholdError",
    "InvalidSignatureError",
    "EscrowNotExpiredError",
    "EscrowExpiredError",
    "EscrowCaptureKindError",
    "EscrowCaptureShapeError",
    "EscrowOverCaptureError",
    "EscrowRefundError",
    "OfflineLockedError",
    "OfflineRedeemError",
    "OfflineBarredError",
    "DoubleSpendError",
    "DoubleSpendProofError",
    "InclusionProofError",
    "GovernThresholdError",
    "MemberExistsError",
    "MemberUnknownError",
    "LastMemberError",
    "InvalidParamsError",
    "BlockTooLargeError",
    "BlockTxTooLargeError",
]


class WitnessCountError(Rejection):
    """The number of witnesses does not match what the transaction kind needs."""

    code = "witness.count"


class NoInputsError(Rejection):
    """A transfer or redemption spends no coin."""

    code = "tx.no_inputs"


class TooManyInputsError(Rejection):
    """More inputs than `params.max_inputs`."""

    code = "tx.too_many_inputs"


class NoOutputsError(Rejection):
    """A transfer or issuance creates no coin."""

    code = "tx.no_outputs"


class TooManyOutputsError(Rejection):
    """More outputs than `params.max_outputs`."""

    code = "tx.too_many_outputs"


class DuplicateInputError(Rejection):
    """The same coin appears twice among one transaction's inputs."""

    code = "input.duplicate"


class SumOverflowError(Rejection):
    """The outputs of one asset add up to more than 2^63-1."""

    code = "amount.sum_overflow"


class IssueAssetMismatchError(Rejection):
    """An issuance creates a coin of another asset than the one it names."""

    code = "issue.asset_mismatch"


class InvalidLockError(Rejection):
    """An output's lock is malformed (a multisig threshold out of range, too many keys)."""

    code = "lock.invalid"


class WitnessOrderError(Rejection):
    """A witness's signer indices are not strictly increasing."""

    code = "witness.order"


class WindowExpiredError(Rejection):
    """The transaction's `valid_until` is below the height it would be committed at."""

    code = "window.expired"


class WindowTooFarError(Rejection):
    """The transaction's `valid_until` lies more than `max_window` blocks ahead."""

    code = "window.too_far"


class ReplayedError(Rejection):
    """The transaction was already committed."""

    code = "tx.replayed"
    http_status = 409


class UnknownInputError(Rejection):
    """An input coin was never created."""

    code = "input.unknown"


class SpentInputError(Rejection):
    """An input coin is already spent."""

    code = "input.spent"
    http_status = 409


class UnknownAssetError(Rejection):
    """An asset is not registered on this network."""

    code = "asset.unknown"


class UnbalancedError(Rejection):
    """Inputs and outputs of a transfer differ for some asset."""

    code = "value.unbalanced"


class UnauthorizedIssuerError(Rejection):
    """An issuance names a key other than the one registered for the asset."""

    code = "issue.unauthorized"
    http_status = 403


class SupplyOverflowError(Rejection):
    """An issuance would lift the asset's issued total over 2^63-1."""

    code = "supply.overflow"


class RedeemAssetMismatchError(Rejection):
    """A redemption spends a coin of another asset than the one it names."""

    code = "redeem.asset_mismatch"


class SignerIndexError(Rejection):
    """A witness names a signer the lock does not have."""

    code = "witness.signer"


class ThresholdError(Rejection):
    """A multisig witness has fewer signatures than the lock's threshold."""

    code = "witness.threshold"


class InvalidSignatureError(Rejection):
    """A signature does not verify: wrong key, another transaction, or garbage."""

    code = "sig.invalid"


class EscrowNotExpiredError(Rejection):
    """The payer tried to reclaim an escrow coin at or before its expiry."""

    code = "escrow.not_expired"


class EscrowExpiredError(Rejection):
    """The payee tried to capture an escrow coin after its expiry."""

    code = "escrow.expired"


class EscrowCaptureKindError(Rejection):
    """An escrow capture must be a `Transfer`."""

    code = "escrow.capture_kind"


class EscrowCaptureShapeError(Rejection):
    """A capture must spend the escrow coin alone, with one payment and at most one refund."""

    code = "escrow.capture_shape"


class EscrowOverCaptureError(Rejection):
    """A capture pays out more than the escrowed amount."""

    code = "escrow.over_capture"


class EscrowRefundError(Rejection):
    """A capture's refund is wrong.

    It is missing or not exactly the rest to the payer's key, present after a full capture,
    or the payment is in another asset than the escrowed coin.
    """

    code = "escrow.refund_missing"


class OfflineLockedError(Rejection):
    """An offline coin is spent online before its unlock height other than by an offline hop.

    Up to its `unlock_height` an `OfflineLock` coin may only move by a `Transfer` whose every
    output is again an `OfflineLock` with an unlock height at least the input's.
    """

    code = "offline.locked"


class OfflineRedeemError(Rejection):
    """An offline coin is spent by something other than a `Transfer` (a redemption).

    Offline money goes back to the issuer only after it has been settled and moved out of
    its `OfflineLock`.
    """

    code = "offline.redeem"


class OfflineBarredError(Rejection):
    """An output is an `OfflineLock` for a key barred after it signed a coin away twice."""

    code = "offline.barred"
    http_status = 403


class DoubleSpendError(Rejection):
    """The receipt of a transfer whose owner had already signed its offline coin away.

    Not a refusal at admission: the transfer is ordered and recorded with this code, it is not
    applied, and the owner's key is barred from offline locks, with the two transfers kept as
    a `DoubleSpendProof`.
    """

    code = "offline.double_spend"
    http_status = 409


class DoubleSpendProofError(Rejection):
    """A double-spend proof does not show two different spends of one coin signed by its owner."""

    code = "offline.proof_invalid"


class InclusionProofError(Rejection):
    """An inclusion proof does not lead from the transaction and receipt to the header."""

    code = "offline.inclusion"


class GovernThresholdError(Rejection):
    """A governance transaction has fewer valid admin signatures than the threshold."""

    code = "govern.threshold"
    http_status = 403


class MemberExistsError(Rejection):
    """A member with this key or name already exists."""

    code = "govern.member_exists"


class MemberUnknownError(Rejection):
    """No member has this key."""

    code = "govern.member_unknown"


class LastMemberError(Rejection):
    """Revoking this member would leave the consortium empty."""

    code = "govern.last_member"


class InvalidParamsError(Rejection):
    """New parameters are out of their sane ranges."""

    code = "govern.params_invalid"


class BlockTxTooLargeError(Rejection):
    """A received block holds a transaction over `params.max_tx_bytes`."""

    code = "block.tx_too_large"


class BlockTooLargeError(Rejection):
    """A block orders more transactions than `params.max_block_txs`."""

    code = "block.too_many_txs"
