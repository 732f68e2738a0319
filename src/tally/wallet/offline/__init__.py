"""Offline payments: an offline purse, trust chains between devices, settlement, migration.

Two devices with no connection to any node pay each other with hops (signed transfers
between `OfflineLock` coins) and hand the payee the whole trust chain, which it checks with
nothing but the genesis it holds. Back online, either device settles what it holds; a payer
that signed the same coin away twice is caught with a `DoubleSpendProof`.

- `messages`: the wire messages (`Hello`, `OfflinePayment`, `TrustChain`, `RootProof`).
- `negotiation`: hellos and the `Agreement` both devices derive.
- `chain`: verifying chains and payments offline.
- `limits`: a device's offline limits.
- `purse`: denominations, and building a hop and a payment.
- `store`: what a device keeps (`offline.sqlite`).
- `settlement`: submitting chains and collecting double-spend proofs.
- `device`: `OfflineWallet`, a wallet's offline side.
- `migration`: settling, then sweeping a wallet to a new one.
"""

from tally.wallet.offline.chain import (
    ReceivedPayment,
    VerifiedChain,
    merge_chains,
    prune_chain,
    verify_chain,
    verify_payment,
    verify_root,
)
from tally.wallet.offline.device import DEFAULT_UNLOCK_IN, OfflineWallet
from tally.wallet.offline.errors import *  # noqa: F403 - the offline errors are public API
from tally.wallet.offline.errors import __all__ as _error_names
from tally.wallet.offline.limits import DEFAULT_LIMITS, OfflineLimits
from tally.wallet.offline.messages import (
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    Agreement,
    Features,
    Hello,
    OfflinePayment,
    RootProof,
    TrustChain,
    decode_hello,
    decode_message,
    decode_payment,
    encode_message,
)
from tally.wallet.offline.migration import MigrationReport, migrate_wallet
from tally.wallet.offline.negotiation import negotiate, new_hello
from tally.wallet.offline.purse import OfflineCoin, build_hop, choose_denominations, make_payment
from tally.wallet.offline.settlement import SettlementReport, settle_payments

__all__ = [
    "OfflineWallet",
    "DEFAULT_UNLOCK_IN",
    "OfflineLimits",
    "DEFAULT_LIMITS",
    "Hello",
    "Features",
    "Agreement",
    "OfflinePayment",
    "TrustChain",
    "RootProof",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "encode_message",
    "decode_message",
    "decode_hello",
    "decode_payment",
    "new_hello",
    "negotiate",
    "verify_root",
    "verify_chain",
    "verify_payment",
    "merge_chains",
    "prune_chain",
    "VerifiedChain",
    "ReceivedPayment",
    "OfflineCoin",
    "choose_denominations",
    "build_hop",
    "make_payment",
    "SettlementReport",
    "settle_payments",
    "MigrationReport",
    "migrate_wallet",
    *_error_names,
]
