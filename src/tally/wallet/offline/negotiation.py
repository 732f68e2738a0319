"""Capability negotiation: each device says what it can do, both derive the same agreement.

`new_hello` makes a device's hello with a fresh nonce. `negotiate` is a pure function of the
two hellos, so the payer (before it pays) and the payee (when it checks the payment) arrive
at the same `Agreement` without another round trip: the highest version both speak, split
and multi-hop only if both allow them, the assets both take, and the smaller maximum.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from tally.model.types import AssetCode, PublicKey
from tally.wallet.offline.errors import (
    OfflineFeatureError,
    OfflineMessageError,
    OfflineNetworkError,
    OfflineReplayError,
    OfflineVersionError,
)
from tally.wallet.offline.messages import (
    NONCE_SIZE,
    ROLE_PAYEE,
    ROLE_PAYER,
    SUPPORTED_VERSIONS,
    Agreement,
    Features,
    Hello,
)

__all__ = ["new_nonce", "make_features", "new_hello", "negotiate"]


def new_nonce() -> bytes:
    """16 fresh random bytes from the operating system."""
    return secrets.token_bytes(NONCE_SIZE)


def make_features(
    *, split: bool, multi_hop: bool, assets: Iterable[str], max_amount: int
) -> Features:
    """Features with the assets sorted and without duplicates."""
    return Features(
        split=split,
        multi_hop=multi_hop,
        assets=tuple(AssetCode(a) for a in sorted(set(assets))),
        max_amount=max_amount,
    )


def new_hello(
    role: str,
    chain_id: str,
    features: Features,
    *,
    receive_key: PublicKey | None = None,
    versions: Iterable[int] = SUPPORTED_VERSIONS,
    nonce: bytes | None = None,
) -> Hello:
    """A hello with a fresh nonce.

    Args:
        role: `payer` or `payee`.
        chain_id: The device's network.
        features: What the device can do.
        receive_key: The payee's fresh key to be paid to (a payee's hello needs one).
        versions: The protocol versions the device speaks.
        nonce: The nonce; fresh random bytes unless given (tests).

    Raises:
        OfflineMessageError: a payee without a receive key, or a payer with one.
    """
    if role not in (ROLE_PAYER, ROLE_PAYEE):
        raise OfflineMessageError(f"a hello's role is payer or payee, got {role!r}")
    if (role == ROLE_PAYEE) != (receive_key is not None):
        raise OfflineMessageError("a payee's hello names the key to pay; a payer's names none")
    return Hello(
        role=ROLE_PAYER if role == ROLE_PAYER else ROLE_PAYEE,
        chain_id=chain_id,
        versions=tuple(sorted(set(versions))),
        features=features,
        nonce=new_nonce() if nonce is None else nonce,
        receive_key=receive_key,
    )


def negotiate(payer: Hello, payee: Hello) -> Agreement:
    """What the two hellos agree on.

    Args:
        payer: The payer's hello.
        payee: The payee's hello.

    Returns:
        The agreement both devices derive.

    Raises:
        OfflineMessageError: the roles are not a payer's and a payee's hello, or the
            payee names no key.
        OfflineNetworkError: the hellos name different networks.
        OfflineVersionError: no protocol version that both and this device speak.
        OfflineReplayError: both hellos carry the same nonce (one was copied).
        OfflineFeatureError: no asset both take.
    """
    if payer.role != ROLE_PAYER or payee.role != ROLE_PAYEE:
        raise OfflineMessageError(
            f"negotiation takes a payer's and a payee's hello, got {payer.role} and {payee.role}"
        )
    if payee.receive_key is None:
        raise OfflineMessageError("the payee's hello names no key to pay")
    if payer.chain_id != payee.chain_id:
        raise OfflineNetworkError(
            f"the payer is on {payer.chain_id!r}, the payee on {payee.chain_id!r}",
            payer=payer.chain_id,
            payee=payee.chain_id,
        )
    common = set(payer.versions) & set(payee.versions) & set(SUPPORTED_VERSIONS)
    if not common:
        raise OfflineVersionError(
            f"no protocol version in common: the payer speaks {list(payer.versions)}, the "
            f"payee {list(payee.versions)}, this device {list(SUPPORTED_VERSIONS)}",
            payer=list(payer.versions),
            payee=list(payee.versions),
        )
    if payer.nonce == payee.nonce:
        raise OfflineReplayError("the two hellos carry the same nonce")
    assets = sorted(set(payer.features.assets) & set(payee.features.assets))
    if not assets:
        raise OfflineFeatureError(
            f"no asset in common: the payer pays {list(payer.features.assets)}, the payee "
            f"takes {list(payee.features.assets)}"
        )
    features = Features(
        split=payer.features.split and payee.features.split,
        multi_hop=payer.features.multi_hop and payee.features.multi_hop,
        assets=tuple(assets),
        max_amount=min(payer.features.max_amount, payee.features.max_amount),
    )
    return Agreement(
        version=max(common),
        chain_id=payer.chain_id,
        payer_nonce=payer.nonce,
        payee_nonce=payee.nonce,
        payee=payee.receive_key,
        features=features,
    )
