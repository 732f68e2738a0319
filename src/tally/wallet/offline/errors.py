"""Why a device refuses an offline message, a payment or an offline operation.

Each refusal has its own stable code, so that a payer's device can tell its user exactly
which check failed on the payee's side. A wrong Merkle inclusion proof is refused by the
ledger's own check (`tally.rules.offline.InclusionProofError`, `offline.inclusion`); every
other code is declared here.
"""

from __future__ import annotations

from tally.wallet.errors import WalletError

__all__ = [
    "OfflineError",
    "OfflineMessageError",
    "OfflineVersionError",
    "OfflineNetworkError",
    "OfflineFeatureError",
    "OfflineReplayError",
    "OfflineLimitError",
    "OfflineCertificateError",
    "OfflineRootError",
    "OfflineChainError",
    "OfflineLockError",
    "OfflineAmountError",
    "OfflineSignatureError",
    "OfflineExpiredError",
    "OfflinePayeeError",
    "OfflineSetupError",
    "OfflinePayerBarredError",
    "OfflineUnsettledError",
    "OfflineConflictError",
]


class OfflineError(WalletError):
    """An offline message or operation is refused (a grouping class)."""


class OfflineMessageError(OfflineError):
    """Bytes that are not an offline message of the kind expected (magic, kind or shape)."""

    code = "offline.message"


class OfflineVersionError(OfflineError):
    """A message of a protocol version this device does not speak, or no version in common."""

    code = "offline.version"


class OfflineNetworkError(OfflineError):
    """A message or a chain of another network than the device's."""

    code = "offline.network"


class OfflineFeatureError(OfflineError):
    """The payment uses a feature or an asset that the two devices did not agree on."""

    code = "offline.feature"


class OfflineReplayError(OfflineError):
    """The payment is not bound to this device's fresh nonce: replayed, or its binding is forged."""

    code = "offline.replay"


class OfflineLimitError(OfflineError):
    """A payment or chain over the device's limits: amount, total unsettled, or hops."""

    code = "offline.limit"
    http_status = 422


class OfflineCertificateError(OfflineError):
    """A root's commit certificate is not a quorum of the consortium's members over its block."""

    code = "offline.certificate"


class OfflineRootError(OfflineError):
    """A root transaction was not accepted by its block, or creates no coin the chain spends."""

    code = "offline.root"


class OfflineChainError(OfflineError):
    """The hops do not form a chain: a hop is not a transfer, or spends a coin it cannot."""

    code = "offline.chain"


class OfflineLockError(OfflineError):
    """A coin in the chain is not under an `OfflineLock`, or a hop lowers the unlock height."""

    code = "offline.lock"


class OfflineAmountError(OfflineError):
    """A hop's inputs and outputs differ for some asset, or the payment's amount is not paid."""

    code = "offline.amount"


class OfflineSignatureError(OfflineError):
    """A hop's witness is not one valid signature by the owner of the coin it spends."""

    code = "offline.signature"


class OfflineExpiredError(OfflineError):
    """The chain can no longer be settled safely: an unlock height or window is too close."""

    code = "offline.expired"


class OfflinePayeeError(OfflineError):
    """The payment does not pay this device's key, or pays it in more than the one coin asked."""

    code = "offline.payee"


class OfflineSetupError(OfflineError):
    """The device holds no trust anchor (genesis) for offline payments, or one of another chain."""

    code = "offline.setup"


class OfflinePayerBarredError(OfflineError):
    """The chain holds a hop by a key this device knows to be barred for a double spend."""

    code = "offline.payer_barred"


class OfflineUnsettledError(OfflineError):
    """Offline payments are still unsettled, so the wallet cannot be moved yet; nothing moved."""

    code = "offline.unsettled"
    http_status = 409


class OfflineConflictError(OfflineError):
    """The payment spends a coin that a chain this device already holds spends otherwise.

    The payer signed the same coin away twice, and this device holds both signatures: it
    keeps the double-spend proof and the payer's key as barred, and refuses the payment.
    """

    code = "offline.conflict"
    http_status = 409
