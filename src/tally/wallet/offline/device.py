"""A wallet's offline side: its purse, hellos, payments made and received, and settlement.

`OfflineWallet` wraps an open `Wallet` and the device's `OfflineStore`. What it does falls in
two groups:

- online (the node is needed): `fund` (coins into the purse), `settle` (every chain the
  device holds, then sync), `unlock_expired` (purse coins past their unlock height back into
  ordinary coins);
- offline (no node is contacted, not even to read the height): `hello`, `pay`, `receive`,
  `refresh`, `status`. They read the wallet's coin store, keys and last synced height, and
  the genesis kept in the offline store as the trust anchor.

A device that has never been online for offline payments must first be given the network's
genesis (`setup`): the certificates of every chain it receives are checked against the
consortium members listed there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from tally.model.coin import Coin, coin_id
from tally.model.encoding import encode, tx_id
from tally.model.genesis import Genesis
from tally.model.lock import KeyLock, OfflineLock
from tally.model.params import Params
from tally.model.tx import Transfer
from tally.model.types import Amount, AssetCode, PublicKey
from tally.wallet.coinstore import StoredCoin
from tally.wallet.offline.chain import (
    ReceivedPayment,
    chain_deadline,
    find_double_spend,
    prune_chain,
    verify_payment,
)
from tally.wallet.offline.errors import (
    OfflineConflictError,
    OfflineFeatureError,
    OfflineReplayError,
    OfflineSetupError,
)
from tally.wallet.offline.limits import OfflineLimits, check_amount_limits
from tally.wallet.offline.messages import (
    ROLE_PAYEE,
    ROLE_PAYER,
    Features,
    Hello,
    OfflinePayment,
    TrustChain,
    decode_hello,
    decode_root,
    encode_message,
)
from tally.wallet.offline.negotiation import make_features, negotiate, new_hello
from tally.wallet.offline.purse import OfflineCoin, build_hop, choose_denominations, make_payment
from tally.wallet.offline.settlement import (
    DOUBLE_SPEND_CODE,
    TRANSIENT_CODES,
    SettlementReport,
    settle_payments,
)
from tally.wallet.offline.store import (
    OFFLINE_FILE,
    ORIGIN_PURSE,
    RECEIVED,
    SENT,
    UNSETTLED,
    HelloRecord,
    OfflineStore,
    StoredOfflineCoin,
)
from tally.wallet.selection import BadAmountError, select_coins

if TYPE_CHECKING:
    from tally.crypto.schnorr import PrivateKey
    from tally.wallet.wallet import Wallet

__all__ = ["DEFAULT_UNLOCK_IN", "OfflineWallet"]

DEFAULT_UNLOCK_IN: Final = 500
"""Blocks a funded purse stays offline-only (at most the node's `max_window`)."""
_MAX_INPUTS: Final = Params().max_inputs

# Any: results and views as JSON documents.
Result = dict[str, Any]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class OfflineWallet:
    """A wallet's offline purse and payments; make one with `OfflineWallet.open(wallet)`.

    Closing it closes the offline store, not the wallet.
    """

    def __init__(
        self, wallet: Wallet, store: OfflineStore, *, clock: Callable[[], int] = _now_ms
    ) -> None:
        self.wallet = wallet
        self.store = store
        self._clock = clock

    @classmethod
    def open(cls, wallet: Wallet) -> OfflineWallet:
        """Open (creating if needed) the offline store in the wallet's directory."""
        return cls(wallet, OfflineStore.open(wallet.directory / OFFLINE_FILE))

    def close(self) -> None:
        """Close the offline store."""
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- setup -------------------------------------------------------------------------------

    def setup(self, genesis: Genesis, limits: OfflineLimits | None = None) -> None:
        """Keep the network's genesis as trust anchor, and the device's limits if given.

        Raises:
            OfflineSetupError: the genesis is of another chain than the wallet's.
        """
        if genesis.chain_id != self.wallet.chain_id:
            raise OfflineSetupError(
                f"the genesis is of chain {genesis.chain_id!r}; the wallet is on "
                f"{self.wallet.chain_id!r}",
                chain_id=genesis.chain_id,
            )
        self.store.set_genesis(genesis)
        if limits is not None:
            self.store.set_limits(limits)

    @property
    def genesis(self) -> Genesis:
        """The trust anchor.

        Raises:
            OfflineSetupError: none was given (`setup`).
        """
        genesis = self.store.genesis()
        if genesis is None:
            raise OfflineSetupError(
                "this wallet holds no genesis to check offline payments against; set it up "
                "with the network's genesis first"
            )
        return genesis

    @property
    def limits(self) -> OfflineLimits:
        """The device's offline limits."""
        return self.store.limits()

    def set_limits(self, limits: OfflineLimits) -> None:
        """Replace the device's offline limits."""
        self.store.set_limits(limits)

    # -- online ------------------------------------------------------------------------------

    def fund(
        self,
        asset: str,
        amount: int | None = None,
        *,
        denominations: Sequence[int] | None = None,
        unlock_in: int = DEFAULT_UNLOCK_IN,
        owner_index: int | None = None,
    ) -> Result:
        """Move `amount` of the wallet's coins into the purse (online).

        Args:
            asset: The asset.
            amount: How much; split by `choose_denominations` unless `denominations` is given.
            denominations: The purse coins to make, exactly.
            unlock_in: Blocks before the owner may spend them online (see `Wallet.fund_offline`).
            owner_index: Lock every coin to this wallet key instead of fresh ones.

        Returns:
            `Wallet.fund_offline`'s result.

        Raises:
            BadAmountError: neither or both of `amount` and `denominations`, or a bad amount.
            Rejection, NodeError: as `Wallet.fund_offline`.
        """
        if (amount is None) == (denominations is None):
            raise BadAmountError("give the amount or the denominations, not both or neither")
        coins = (
            list(denominations) if denominations is not None else choose_denominations(amount or 0)
        )
        result = self.wallet.fund_offline(asset, coins, unlock_in, owner_index=owner_index)
        self.wallet.fetch_missing_roots()
        self.refresh()
        return result

    def settle(self) -> SettlementReport:
        """Submit every unsettled chain the device holds, in order, then sync (online).

        Payments that settled, were double spends (with the ledger's proof, checked here) or
        failed are recorded; coins whose chain can no longer settle are written off; coins
        that reached the ledger get a root of their own (a shorter chain).

        Raises:
            NodeUnreachable: the node stopped answering; what was settled is recorded.
        """
        payments = self.store.payments(status=UNSETTLED)
        report = settle_payments(self.wallet.client, self.store, payments, self._clock)
        dead = {
            txid
            for txid, outcome in report.hops.items()
            if outcome.code not in ("ok", *TRANSIENT_CODES)
        }
        if dead:
            for stored in self.store.coins():
                hops = {tx_id(hop.body) for hop in stored.offline.chain.hops}
                for txid in sorted(hops & dead):
                    self.store.mark_spent(stored.coin_id, txid)
                    break
        self.wallet.sync()
        self.wallet.fetch_missing_roots()
        self.refresh()
        return report

    def unlock_expired(self) -> list[Result]:
        """Move purse coins past their unlock height back into ordinary coins (online).

        Coins spent offline are left alone: their hop may still be settled, and spending
        them online too would be a double spend.

        Returns:
            One result per transaction sent.
        """
        self.refresh()
        height = self.wallet.sync()
        spent_offline = {c.coin_id for c in self.store.coins(unspent_only=False) if c.spent_by}
        groups: dict[str, list[StoredCoin]] = {}
        for stored in self.wallet.store.offline_coins():
            unlock = stored.unlock_height
            if (
                stored.pending_txid is not None
                or stored.coin_id in spent_offline
                or unlock is None
                or height < unlock
            ):
                continue
            groups.setdefault(stored.coin.asset, []).append(stored)
        results = []
        for asset, coins in sorted(groups.items()):
            for start in range(0, len(coins), _MAX_INPUTS):
                chunk = coins[start : start + _MAX_INPUTS]
                total = sum(c.coin.amount for c in chunk)
                target = KeyLock(key=PublicKey(self.wallet.new_receive_key().public_key))
                output = Coin(asset=AssetCode(asset), amount=Amount(total), lock=target)
                results.append(self.wallet.transfer_coins(chunk, [output], kind="offline_unlock"))
        self.refresh()
        return results

    # -- offline -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Bring the offline store in line with the wallet's coin store, with no node.

        Purse coins the wallet synced (with their roots) become spendable offline; a coin
        received offline that has reached the ledger gets its root as a shorter chain; a coin
        the ledger shows spent is marked spent.
        """
        now = self._clock()
        for stored in self.wallet.store.offline_coins():
            raw = self.wallet.store.root(stored.created_txid)
            if raw is None or stored.key_index is None:
                continue
            chain = TrustChain(roots=(decode_root(raw),), hops=())
            known = self.store.coin(stored.coin_id)
            if known is None:
                offline = OfflineCoin(
                    coin_id=stored.coin_id,
                    coin=stored.coin,
                    key_index=stored.key_index,
                    chain=chain,
                )
                self.store.add_coin(offline, ORIGIN_PURSE, now)
            elif known.spent_by is None and known.offline.chain.hops:
                self.store.replace_chain(stored.coin_id, chain, ORIGIN_PURSE)
        for held in self.store.coins():
            ledger = self.wallet.store.coin(held.coin_id)
            if ledger is not None and ledger.spent_txid is not None:
                self.store.mark_spent(held.coin_id, ledger.spent_txid)

    def spendable(self, asset: str | None = None) -> list[OfflineCoin]:
        """The coins the device may pay offline, largest first (no node)."""
        coins = []
        for held in self.store.coins():
            if asset is not None and held.offline.coin.asset != asset:
                continue
            ledger = self.wallet.store.coin(held.coin_id)
            if ledger is not None and ledger.pending_txid is not None:
                continue
            coins.append(held.offline)
        return coins

    def balance(self) -> dict[str, int]:
        """What the device may pay offline, per asset (no node)."""
        totals: dict[str, int] = {}
        for coin in self.spendable():
            totals[coin.coin.asset] = totals.get(coin.coin.asset, 0) + coin.coin.amount
        return totals

    def features(
        self,
        *,
        assets: Iterable[str] | None = None,
        split: bool = True,
        multi_hop: bool = True,
        max_amount: int | None = None,
    ) -> Features:
        """This device's features: the genesis's assets unless given, its payment limit."""
        limit = self.limits.max_payment
        return make_features(
            split=split,
            multi_hop=multi_hop,
            assets=assets if assets is not None else [a.asset for a in self.genesis.assets],
            max_amount=min(max_amount, limit) if max_amount is not None else limit,
        )

    def _new_key(self) -> tuple[int, PrivateKey]:
        key = self.wallet.new_receive_key()
        return self.wallet.store.keys()[PublicKey(key.public_key)], key

    def hello(
        self,
        *,
        assets: Iterable[str] | None = None,
        split: bool = True,
        multi_hop: bool = True,
        max_amount: int | None = None,
    ) -> Hello:
        """A payee's hello with a fresh nonce and a fresh key to be paid to (no node).

        The device remembers it, to check the payment that answers it and to refuse a
        second one.

        Raises:
            OfflineSetupError: no genesis was set up.
        """
        features = self.features(
            assets=assets, split=split, multi_hop=multi_hop, max_amount=max_amount
        )
        index, key = self._new_key()
        hello = new_hello(
            ROLE_PAYEE, self.wallet.chain_id, features, receive_key=PublicKey(key.public_key)
        )
        record = HelloRecord(
            nonce=hello.nonce,
            role=ROLE_PAYEE,
            key_index=index,
            raw=encode_message(hello),
            used_by=None,
        )
        self.store.add_hello(record, self._clock())
        return hello

    def pay(
        self,
        payee_hello: Hello,
        asset: str,
        amount: int,
        *,
        split: bool = True,
        multi_hop: bool = True,
    ) -> OfflinePayment:
        """Pay `amount` of `asset` to the device that wrote `payee_hello` (no node).

        Chooses purse and received coins whose chains the payee will accept (hops within
        the limits, settleable beyond the expiry margin), signs the hop and the binding, and
        records the payment, the coins spent and the change, together.

        Args:
            payee_hello: The payee's hello.
            asset: The asset.
            amount: The amount, in minor units.
            split: Whether this device pays with change.
            multi_hop: Whether this device pays onward coins received offline.

        Returns:
            The payment to hand to the payee.

        Raises:
            OfflineSetupError: no genesis was set up.
            OfflineMessageError, OfflineNetworkError, OfflineVersionError,
                OfflineFeatureError: the hellos do not agree, or the payment needs a feature
                not agreed.
            OfflineLimitError: over this device's or the agreed limits.
            InsufficientFundsError, TooManyInputsError: the suitable coins are short.
        """
        genesis = self.genesis
        limits = self.limits
        self.refresh()
        features = self.features(split=split, multi_hop=multi_hop)
        payer_hello = new_hello(ROLE_PAYER, genesis.chain_id, features)
        agreement = negotiate(payer_hello, payee_hello)
        if asset not in agreement.features.assets:
            raise OfflineFeatureError(
                f"the payee takes {', '.join(agreement.features.assets)}, not {asset}",
                asset=asset,
            )
        check_amount_limits(
            amount, self.store.unsettled_total(SENT), limits, agreement.features.max_amount
        )
        hops_allowed = limits.max_hops if agreement.features.multi_hop else 1
        floor = self.wallet.height + limits.expiry_margin
        candidates: dict[bytes, OfflineCoin] = {}
        for coin in self.spendable(asset):
            previous = chain_deadline(coin.chain)
            deadline = coin.unlock_height if previous is None else min(previous, coin.unlock_height)
            if coin.hops + 1 <= hops_allowed and deadline >= floor:
                candidates[coin.coin_id] = coin
        # `select_coins` chooses among `KeyLock` coins by asset and amount; offline coins are
        # shown to it under their owner's key, and mapped back by id.
        shown = [
            (
                c.coin_id,
                Coin(asset=c.coin.asset, amount=c.coin.amount, lock=KeyLock(key=_owner(c))),
            )
            for c in candidates.values()
        ]
        selection = select_coins(shown, asset, amount, max_inputs=_MAX_INPUTS)
        if selection.change and not agreement.features.split:
            raise OfflineFeatureError(
                f"no coins make exactly {amount}, and the payee takes no change",
                amount=amount,
            )
        inputs = [candidates[cid] for cid, _ in selection.inputs]
        change_index: int | None = None
        change_key: PublicKey | None = None
        if selection.change:
            change_index, key = self._new_key()
            change_key = PublicKey(key.public_key)
        signers = [(coin, self.wallet.key(coin.key_index)) for coin in inputs]
        hop = build_hop(signers, agreement.payee, asset, amount, change_key, genesis.chain_id)
        payment = make_payment(agreement, payer_hello, inputs, hop, signers[0][1])
        body = hop.body
        if not isinstance(body, Transfer):  # build_hop makes transfers; this narrows the type
            raise OfflineFeatureError("a hop is a Transfer")
        txid = tx_id(body)
        change: OfflineCoin | None = None
        if change_index is not None:
            change_id = coin_id(txid, 1)
            change = OfflineCoin(
                coin_id=change_id,
                coin=body.outputs[1],
                key_index=change_index,
                chain=prune_chain(payment.chain, [change_id]),
            )
        record = HelloRecord(
            nonce=payer_hello.nonce,
            role=ROLE_PAYER,
            key_index=None,
            raw=encode_message(payer_hello),
            used_by=txid,
        )
        payment_deadline = chain_deadline(payment.chain)
        self.store.record_sent(
            payment,
            txid,
            [coin.coin_id for coin in inputs],
            change,
            record,
            payment_deadline if payment_deadline is not None else floor,
            self._clock(),
        )
        return payment

    def receive(self, payment: OfflinePayment) -> ReceivedPayment:
        """Check a payment offline and keep the coin it pays this device (no node).

        Raises:
            OfflineSetupError: no genesis was set up.
            OfflineReplayError: the payment answers no hello of this device, or one already
                answered.
            OfflineConflictError: the payment spends a coin that a chain this device holds
                spends otherwise (the proof is kept, the payer's key marked barred).
            Rejection: whatever `verify_payment` refuses, with the check's own code.
        """
        genesis = self.genesis
        hello = self.store.hello(payment.payee_nonce)
        if hello is None or hello.role != ROLE_PAYEE:
            raise OfflineReplayError(
                "the payment answers no hello of this device: it was made for another one",
                nonce=payment.payee_nonce.hex(),
            )
        if hello.used_by is not None:
            raise OfflineReplayError(
                f"this device's hello was already answered by payment {hello.used_by.hex()}",
                nonce=payment.payee_nonce.hex(),
            )
        received = verify_payment(
            payment,
            decode_hello(hello.raw),
            genesis,
            self.limits,
            known_height=self.wallet.height,
            unsettled=self.store.unsettled_total(RECEIVED),
            barred=self.store.barred(),
        )
        if hello.key_index is None:
            raise OfflineSetupError("the hello answered names no key of this wallet")
        held = [record.payment.chain for record in self.store.payments()]
        held.extend(coin.offline.chain for coin in self.store.coins(unspent_only=False))
        proof = find_double_spend(payment.chain, held, genesis.chain_id)
        if proof is not None:
            self.store.add_barred(proof.owner, encode(proof))
            raise OfflineConflictError(
                f"the payer signed coin {proof.coin_id.hex()} away twice: this device holds "
                "both signatures, kept as a proof",
                owner=proof.owner.hex(),
                coin_id=proof.coin_id.hex(),
                proof=encode(proof).hex(),
            )
        coin = OfflineCoin(
            coin_id=received.coin_id,
            coin=received.coin,
            key_index=hello.key_index,
            chain=prune_chain(payment.chain, [received.coin_id]),
        )
        self.store.record_received(
            payment,
            received.payment_id,
            coin,
            received.payer,
            hello.nonce,
            received.deadline,
            self._clock(),
        )
        return received

    def status(self) -> Result:
        """The purse, the payments and their settlement, as a JSON document (no node)."""
        genesis = self.store.genesis()
        limits = self.limits
        held: list[StoredOfflineCoin] = self.store.coins()
        payments = self.store.payments()
        return {
            "height": self.wallet.height,
            "chain_id": genesis.chain_id if genesis is not None else None,
            "limits": {
                "max_payment": limits.max_payment,
                "max_unsettled": limits.max_unsettled,
                "max_hops": limits.max_hops,
                "expiry_margin": limits.expiry_margin,
            },
            "balance": {asset: str(total) for asset, total in sorted(self.balance().items())},
            "unsettled": {
                "sent": self.store.unsettled_total(SENT),
                "received": self.store.unsettled_total(RECEIVED),
            },
            "coins": [coin.to_json() for coin in held],
            "payments": [payment.to_json() for payment in payments],
            "double_spends": [p.payment_id.hex() for p in payments if p.code == DOUBLE_SPEND_CODE],
            "barred": sorted(owner.hex() for owner in self.store.barred()),
        }


def _owner(coin: OfflineCoin) -> PublicKey:
    lock = coin.coin.lock
    if not isinstance(lock, OfflineLock):
        raise OfflineFeatureError(f"coin {coin.coin_id.hex()} is not under an offline lock")
    return lock.owner
