"""Moving a wallet to a new device: settle everything offline first, then sweep the coins.

`migrate_wallet` takes the old wallet's offline side and the new one's and:

1. settles every payment the old device made or received offline (`OfflineWallet.settle`),
   and stops, moving nothing, if any is still unsettled (the node was busy: try again);
2. copies to the new device what it must not lose: the trust anchor and limits, every
   payment record (double spends keep their proofs, the claim against the payer) and the
   keys known to be barred;
3. sweeps the old wallet's spendable coins to fresh keys of the new one, per asset, and its
   offline coins to `OfflineLock`s of fresh new keys with the same unlock height (the ledger
   lets an offline coin move before its unlock height only into offline locks that unlock
   no earlier), so that the new wallet holds them in its purse, with roots of their own;
4. syncs the new wallet.

Escrow coins stay with the old wallet, whose keys alone can capture or reclaim them; the
report lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from tally.model.coin import Coin
from tally.model.lock import KeyLock, Lock, OfflineLock
from tally.model.params import Params
from tally.model.types import Amount, AssetCode, Height, PublicKey
from tally.wallet.coinstore import StoredCoin
from tally.wallet.offline.device import OfflineWallet
from tally.wallet.offline.errors import OfflineSetupError, OfflineUnsettledError
from tally.wallet.offline.settlement import SettlementReport
from tally.wallet.offline.store import UNSETTLED

__all__ = ["MigrationReport", "migrate_wallet"]

_MAX_INPUTS: Final = Params().max_inputs

# Any: results as the node's JSON answers them.
Result = dict[str, Any]


@dataclass
class MigrationReport:
    """What a migration did."""

    settlement: SettlementReport
    """The settlement run before anything moved."""
    swept: list[Result] = field(default_factory=list)
    """One result per sweep transaction."""
    moved: dict[str, int] = field(default_factory=dict)
    """Minor units moved per asset, spendable and offline together."""
    payments_copied: int = 0
    """Payment records copied to the new device."""
    left: list[StoredCoin] = field(default_factory=list)
    """Coins the old wallet keeps: escrows, and coins in a send not yet settled."""

    def to_json(self) -> dict[str, Any]:
        """A JSON view."""
        return {
            "settlement": self.settlement.to_json(),
            "swept": self.swept,
            "moved": {asset: str(total) for asset, total in sorted(self.moved.items())},
            "payments_copied": self.payments_copied,
            "left": [coin.to_json() for coin in self.left],
        }


def _sweep(
    source: OfflineWallet,
    target: OfflineWallet,
    coins: list[StoredCoin],
    lock_for: Callable[[PublicKey], Lock],
    report: MigrationReport,
) -> None:
    for start in range(0, len(coins), _MAX_INPUTS):
        chunk = coins[start : start + _MAX_INPUTS]
        asset = chunk[0].coin.asset
        total = sum(coin.coin.amount for coin in chunk)
        key = PublicKey(target.wallet.new_receive_key().public_key)
        lock: Lock = lock_for(key)
        output = Coin(asset=AssetCode(asset), amount=Amount(total), lock=lock)
        kind = "offline_sweep" if isinstance(lock, OfflineLock) else "pay"
        report.swept.append(
            source.wallet.transfer_coins(chunk, [output], kind=kind, memo="migration")
        )
        report.moved[asset] = report.moved.get(asset, 0) + total


def _offline_lock_at(unlock: int) -> Callable[[PublicKey], Lock]:
    def lock_for(key: PublicKey) -> Lock:
        return OfflineLock(owner=key, unlock_height=Height(unlock))

    return lock_for


def migrate_wallet(source: OfflineWallet, target: OfflineWallet) -> MigrationReport:
    """Settle the old wallet's offline payments, then move all its coins to the new wallet.

    Args:
        source: The old wallet's offline side.
        target: The new wallet's offline side (a wallet on the same network).

    Returns:
        What was settled, copied and moved.

    Raises:
        OfflineSetupError: the wallets are on different networks.
        OfflineUnsettledError: a payment could not be settled yet; nothing was moved.
        NodeError: the node cannot be reached or refuses.
    """
    if source.wallet.chain_id != target.wallet.chain_id:
        raise OfflineSetupError(
            f"the new wallet is on {target.wallet.chain_id!r}, the old on "
            f"{source.wallet.chain_id!r}"
        )
    report = MigrationReport(settlement=source.settle())
    waiting = source.store.payments(status=UNSETTLED)
    if waiting:
        raise OfflineUnsettledError(
            f"{len(waiting)} offline payments are not settled yet; nothing was moved, try again",
            unsettled=[p.payment_id.hex() for p in waiting],
        )
    genesis = source.store.genesis()
    if genesis is not None and target.store.genesis() is None:
        target.setup(genesis, source.limits)
    for record in source.store.payments():
        target.store.import_payment(record)
        report.payments_copied += 1
    for owner, proof in source.store.barred().items():
        target.store.add_barred(owner, proof)

    source.wallet.sync(auto_reclaim=True, auto_merge=False)
    spent_offline = {c.coin_id for c in source.store.coins(unspent_only=False) if c.spent_by}
    own: dict[str, list[StoredCoin]] = {}
    offline: dict[tuple[str, int], list[StoredCoin]] = {}
    for stored in source.wallet.store.unspent():
        if stored.pending_txid is not None:
            report.left.append(stored)
        elif stored.role == "own":
            own.setdefault(stored.coin.asset, []).append(stored)
        elif stored.role == "offline" and stored.unlock_height is not None:
            if stored.coin_id in spent_offline:
                report.left.append(stored)
                continue
            offline.setdefault((stored.coin.asset, stored.unlock_height), []).append(stored)
        else:
            report.left.append(stored)
    for _, coins in sorted(own.items()):
        _sweep(source, target, coins, lambda key: KeyLock(key=key), report)
    for (_, unlock), coins in sorted(offline.items()):
        _sweep(source, target, coins, _offline_lock_at(unlock), report)
    target.wallet.sync(auto_merge=False)
    target.refresh()
    source.refresh()
    return report
