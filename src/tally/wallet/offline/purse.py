"""The offline purse: which coins to fund it with, and how a payment's hop is made from it.

A wallet funds its purse online with a `Transfer` into `OfflineLock(owner, unlock_height)`
coins (`Wallet.fund_offline`). `choose_denominations` splits the amount into coins of the
1-2-5 series (5000 → one 50.00 coin; 12345 → 100.00, 20.00, 2.00, 1.00, 0.20, 0.20, 0.05):
a payee that does not accept change can then often be paid an exact combination, and a
payee that does is paid from one coin with little change.

Paying offline spends purse coins (or coins received offline) in a hop: a `Transfer` whose
output 0 is the payment `OfflineLock(payee, unlock)` and output 1, if any, the change
`OfflineLock(change key, unlock)`, where `unlock` is the latest unlock height among the
inputs (the ledger requires no output of an offline hop to unlock before its inputs) and
the hop's `valid_until` the earliest (after it the payer could spend an input online, so a
payee must have settled by then anyway). `make_payment` wraps the hop, the chain that leads
to it and the binding signature into the `OfflinePayment` the payee receives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from tally.client.builders import make_transfer
from tally.crypto.schnorr import PrivateKey
from tally.model.coin import Coin, coin_id
from tally.model.encoding import tx_id
from tally.model.lock import OfflineLock
from tally.model.tx import SignedTx, Transfer
from tally.model.types import Amount, AssetCode, CoinId, Height, PublicKey, SignatureBytes
from tally.wallet.offline.chain import merge_chains, prune_chain
from tally.wallet.offline.errors import OfflineChainError, OfflineLockError
from tally.wallet.offline.messages import (
    Agreement,
    Hello,
    OfflinePayment,
    TrustChain,
    binding_message,
)
from tally.wallet.selection import BadAmountError

__all__ = [
    "DEFAULT_MAX_COINS",
    "OfflineCoin",
    "choose_denominations",
    "hop_unlock_height",
    "build_hop",
    "make_payment",
]

DEFAULT_MAX_COINS: Final = 16
"""The most coins `choose_denominations` makes of one funding."""
_SERIES: Final = (5, 2, 1)


@dataclass(frozen=True)
class OfflineCoin:
    """A coin a device may spend offline, with the chain that proves it."""

    coin_id: CoinId
    """The coin's id."""
    coin: Coin
    """The coin, under an `OfflineLock` of one of the wallet's keys."""
    key_index: int
    """The wallet key that owns it."""
    chain: TrustChain = field(repr=False)
    """Its proof: the root that created it (a purse coin) or the chain ending in the hop that
    did (a coin received offline)."""

    @property
    def unlock_height(self) -> int:
        """The coin's unlock height."""
        lock = self.coin.lock
        if not isinstance(lock, OfflineLock):
            raise OfflineLockError(f"coin {self.coin_id.hex()} is not under an offline lock")
        return int(lock.unlock_height)

    @property
    def hops(self) -> int:
        """How many hops its chain has."""
        return len(self.chain.hops)


def choose_denominations(amount: int, *, max_coins: int = DEFAULT_MAX_COINS) -> list[int]:
    """Coins of the 1-2-5 series that add up to `amount`, largest first.

    Greedy over 5, 2 and 1 times the powers of ten; when that takes more than `max_coins`
    coins, the smallest are merged until it does not.

    Args:
        amount: The total, in minor units, at least 1.
        max_coins: The most coins to make, at least 1.

    Raises:
        BadAmountError: `amount` is not an integer of at least 1.
        ValueError: `max_coins` is below 1.
    """
    if type(amount) is not int or amount < 1:
        raise BadAmountError(f"a purse holds at least 1, got {amount!r}")
    if max_coins < 1:
        raise ValueError(f"max_coins is at least 1, got {max_coins}")
    coins: list[int] = []
    scale = 10 ** (len(str(amount)) - 1)
    remaining = amount
    while remaining:
        for digit in _SERIES:
            value = digit * scale
            while value <= remaining:
                coins.append(value)
                remaining -= value
        scale //= 10
    while len(coins) > max_coins:
        smallest, second = coins.pop(), coins.pop()
        coins.append(smallest + second)
        coins.sort(reverse=True)
    return coins


def hop_unlock_height(inputs: Sequence[OfflineCoin]) -> tuple[int, int]:
    """`(unlock height of the hop's outputs, the hop's valid_until)` for these inputs."""
    heights = [coin.unlock_height for coin in inputs]
    return max(heights), min(heights)


def build_hop(
    inputs: Sequence[tuple[OfflineCoin, PrivateKey]],
    payee: PublicKey,
    asset: str,
    amount: int,
    change_to: PublicKey | None,
    chain_id: str,
) -> SignedTx:
    """The signed hop paying `amount` of `asset` to `payee` from `inputs`, change to `change_to`.

    Args:
        inputs: The coins spent and each one's owner key.
        payee: The payee's key: output 0 is `OfflineLock(payee, unlock)`.
        asset: The asset.
        amount: The payment.
        change_to: The key of the change output, needed when the inputs exceed `amount`.
        chain_id: The network.

    Raises:
        OfflineChainError: no inputs, mixed assets, too little, or change without a key.
        OfflineLockError: an input not under an offline lock, or signed by another key.
    """
    if not inputs:
        raise OfflineChainError("a hop spends at least one coin")
    for coin, key in inputs:
        lock = coin.coin.lock
        if not isinstance(lock, OfflineLock) or lock.owner != key.public_key:
            raise OfflineLockError(f"coin {coin.coin_id.hex()} is not locked to the key given")
        if coin.coin.asset != asset:
            raise OfflineChainError(f"coin {coin.coin_id.hex()} is {coin.coin.asset}, not {asset}")
    total = sum(coin.coin.amount for coin, _ in inputs)
    if total < amount:
        raise OfflineChainError(f"the inputs hold {total}, less than the {amount} to pay")
    unlock, valid_until = hop_unlock_height([coin for coin, _ in inputs])
    code = AssetCode(asset)
    outputs = [
        Coin(
            asset=code,
            amount=Amount(amount),
            lock=OfflineLock(owner=payee, unlock_height=Height(unlock)),
        )
    ]
    if total > amount:
        if change_to is None:
            raise OfflineChainError(f"{total - amount} of change needs a key to go to")
        outputs.append(
            Coin(
                asset=code,
                amount=Amount(total - amount),
                lock=OfflineLock(owner=change_to, unlock_height=Height(unlock)),
            )
        )
    return make_transfer(
        [(coin.coin_id, key) for coin, key in inputs], outputs, valid_until, chain_id
    )


def make_payment(
    agreement: Agreement,
    payer_hello: Hello,
    inputs: Sequence[OfflineCoin],
    hop: SignedTx,
    binder: PrivateKey,
) -> OfflinePayment:
    """The payment message: the hop, the chain that leads to it, and the binding signature.

    Args:
        agreement: What the two hellos agree on.
        payer_hello: The payer's hello (the payee derives the agreement from it).
        inputs: The coins the hop spends, with their chains.
        hop: The hop (`build_hop`); its output 0 pays the payee.
        binder: The key of the hop's first input, which signs the binding.
    """
    body = hop.body
    if not isinstance(body, Transfer):
        raise OfflineChainError("a hop is a Transfer")
    merged = merge_chains(coin.chain for coin in inputs)
    txid = tx_id(body)
    chain = prune_chain(
        TrustChain(roots=merged.roots, hops=(*merged.hops, hop)),
        [coin_id(txid, index) for index in range(len(body.outputs))],
    )
    payment_coin = body.outputs[0]
    message = binding_message(
        agreement.version,
        agreement.chain_id,
        txid,
        agreement.payer_nonce,
        agreement.payee_nonce,
    )
    return OfflinePayment(
        version=agreement.version,
        payer_hello=payer_hello,
        payee_nonce=agreement.payee_nonce,
        payee=agreement.payee,
        asset=payment_coin.asset,
        amount=payment_coin.amount,
        chain=chain,
        binding=SignatureBytes(binder.sign(message)),
    )
