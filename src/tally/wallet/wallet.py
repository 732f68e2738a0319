"""A wallet: keys from one seed, coins kept in step with a node, payments and pre-payments.

A wallet lives in a directory of its own:

    wallet.json    the seed and settings, encrypted under the password (`tally.wallet.vault`)
    coins.sqlite   coins, keys, history, sync cursor and sent transactions (`coinstore`)

Every coin a wallet receives goes to a fresh key (`new_receive_key`); change goes to a fresh
key too. Payments are `Transfer`s built from the coins `select_coins` picks: an exact match
when there is one, else the fewest inputs, with change. A pre-payment locks coins in an
`EscrowLock(payer, payee, expiry)`: the payee's wallet captures any part of it until the
expiry (the rest returns to the payer in the same transaction), and after the expiry the
payer's wallet takes it back by itself when it syncs. When a wallet holds many small coins of
an asset it merges the smallest into one, also when it syncs.

The offline purse: `fund_offline` moves coins into `OfflineLock(fresh key, unlock_height)`
coins, which sync keeps with role `offline` together with the inclusion proof of the
transaction that made them; `tally.wallet.offline` pays them offline, settles what was paid
and received, and sweeps a wallet to a new one (`transfer_coins`).

Inputs of a transaction the wallet sends are marked pending until a block settles it; a
transaction the node refuses releases them at once. A transaction whose fate is unknown (the
node could not be reached) keeps them pending until its window has passed, as it may still
be committed until then.

Node refusals propagate as the client's `NodeRejection`, carrying the node's code; a
transaction the node ordered but rejected in its block is reported the same way, with the
code of its receipt. A `Wallet` may be shared between threads: one lock serialises its
operations.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import msgspec

from tally.client.builders import (
    BuilderError,
    make_escrow_capture,
    make_escrow_reclaim,
    make_transfer,
    to_lock,
)
from tally.client.errors import NodeRejection, NodeResponseError
from tally.client.node_client import DEFAULT_TIMEOUT, NodeClient
from tally.crypto.schnorr import PrivateKey
from tally.model.address import address_of
from tally.model.coin import Coin, coin_id
from tally.model.encoding import encode, tx_id
from tally.model.lock import EscrowLock, KeyLock, Lock, MultiLock, OfflineLock
from tally.model.params import Params
from tally.model.tx import SignedTx
from tally.model.types import Amount, AssetCode, CoinId, Height, PublicKey
from tally.wallet.coinstore import (
    COINS_FILE,
    ROLE_ESCROW_PAYEE,
    ROLE_ESCROW_PAYER,
    ROLE_OFFLINE,
    ROLE_OWN,
    CoinStore,
    CoinUnavailableError,
    HistoryEntry,
    PendingTx,
    StoredCoin,
)
from tally.wallet.errors import LimitExceededError, WalletError
from tally.wallet.keys import derive_key, identity_key, new_seed
from tally.wallet.selection import (
    DEFAULT_MERGE_THRESHOLD,
    BadAmountError,
    Selection,
    plan_merge,
    select_coins,
)
from tally.wallet.sync import Syncer
from tally.wallet.vault import DEFAULT_SCRYPT_N, Vault, WalletFileError, WalletSecret

__all__ = [
    "WALLET_FILE",
    "DEFAULT_HRP",
    "DEFAULT_VALID_FOR",
    "DEFAULT_MERGE_MAX_INPUTS",
    "BadExpiryError",
    "Wallet",
]

log = logging.getLogger(__name__)

WALLET_FILE: Final = "wallet.json"
"""The encrypted wallet file's name in the wallet directory."""
DEFAULT_HRP: Final = "tly"
"""The address prefix assumed when a node's status does not give one."""
DEFAULT_VALID_FOR: Final = 100
"""Blocks past the tip a transaction the wallet makes stays valid (within `max_window`)."""
DEFAULT_MERGE_MAX_INPUTS: Final = 32
"""The most coins one merge spends."""
_MAX_INPUTS: Final = Params().max_inputs
_MAX_OUTPUTS: Final = Params().max_outputs

# Any: results as the node's JSON answers them.
Result = dict[str, Any]
PayTo = PublicKey | bytes | KeyLock | MultiLock | EscrowLock


class BadExpiryError(WalletError):
    """A pre-payment's expiry height is not after the current height: it could never be captured."""

    code = "wallet.expiry"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Wallet:
    """A wallet directory, opened: vault, coin store and node client.

    Make one with `Wallet.create` or `Wallet.open`; close it with `close()` or use it as a
    context manager.

    Attributes:
        valid_for: Blocks past the tip its transactions stay valid (never more than the
            node's `max_window`, when its status reports one).
        merge_threshold: Spendable coins of one asset it keeps before merging on sync.
        merge_max_inputs: The most coins one merge spends.
    """

    def __init__(
        self,
        directory: Path,
        vault: Vault,
        store: CoinStore,
        client: NodeClient,
        *,
        valid_for: int = DEFAULT_VALID_FOR,
    ) -> None:
        self.directory = directory
        self._vault = vault
        self._store = store
        self._client = client
        self._syncer = Syncer(client, store, vault.secret.chain_id)
        self._lock = threading.RLock()
        self._keys: dict[int, PrivateKey] = {}
        self._identity = identity_key(vault.secret.seed)
        self.valid_for = valid_for
        self.merge_threshold = DEFAULT_MERGE_THRESHOLD
        self.merge_max_inputs = DEFAULT_MERGE_MAX_INPUTS

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path,
        password: str,
        node_url: str,
        *,
        scrypt_n: int = DEFAULT_SCRYPT_N,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Wallet:
        """Make a new wallet in `directory` for the network of the node at `node_url`.

        The chain id and address prefix come from the node's status; the wallet starts
        following the chain at the node's current height (a new wallet has no coins before).

        Args:
            directory: The wallet's directory; created if missing, must hold no wallet.
            password: The password that will open the wallet.
            node_url: The node's API, such as `http://127.0.0.1:7545`.
            scrypt_n: scrypt's cost for the wallet file (tests lower it to 2^10).
            timeout: Seconds each call to the node may take.

        Returns:
            The open wallet.

        Raises:
            WalletFileError: the directory already holds a wallet or a coin store.
            NodeError: the node cannot be reached or answers badly.
        """
        wallet_path = directory / WALLET_FILE
        coins_path = directory / COINS_FILE
        for path in (wallet_path, coins_path):
            if path.exists():
                raise WalletFileError(f"{path} already exists; open that wallet", path=str(path))
        client = NodeClient(node_url, timeout)
        try:
            status = client.status()
            chain_id = status.get("chain_id")
            height = status.get("height")
            if not isinstance(chain_id, str) or not isinstance(height, int):
                raise NodeResponseError(
                    f"the node at {node_url} reports no chain id or height", 200
                )
            hrp = status.get("hrp")
            tip_hash = status.get("block_hash")
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            secret = WalletSecret(
                seed=new_seed(),
                chain_id=chain_id,
                hrp=hrp if isinstance(hrp, str) and hrp else DEFAULT_HRP,
                node_url=node_url,
                next_index=0,
                created_ms=_now_ms(),
            )
            vault = Vault.create(wallet_path, password, secret, scrypt_n=scrypt_n)
            store = CoinStore.open(coins_path)
            store.set_cursor(height, bytes.fromhex(tip_hash) if isinstance(tip_hash, str) else None)
        except BaseException:
            client.close()
            raise
        return cls(directory, vault, store, client)

    @classmethod
    def open(
        cls,
        directory: Path,
        password: str,
        *,
        node_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Wallet:
        """Open the wallet in `directory`. Contacts no node: balances and history work offline.

        Args:
            directory: The wallet's directory.
            password: Its password.
            node_url: Talk to this node instead of the one the wallet was made with.
            timeout: Seconds each call to the node may take.

        Returns:
            The open wallet.

        Raises:
            WalletFileError: no wallet file there, or not a wallet file.
            WalletPasswordError: the password is wrong (or the file was tampered with).
        """
        vault = Vault.open(directory / WALLET_FILE, password)
        coins_path = directory / COINS_FILE
        if not coins_path.exists():
            raise WalletFileError(
                f"the wallet's coin store {coins_path} is missing", path=str(coins_path)
            )
        store = CoinStore.open(coins_path)
        client = NodeClient(node_url or vault.secret.node_url, timeout)
        return cls(directory, vault, store, client)

    def close(self) -> None:
        """Close the coin store and the node client."""
        with self._lock:
            self._client.close()
            self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- properties ----------------------------------------------------------------------------

    @property
    def chain_id(self) -> str:
        """The network's chain id."""
        return self._vault.secret.chain_id

    @property
    def hrp(self) -> str:
        """The network's address prefix."""
        return self._vault.secret.hrp

    @property
    def client(self) -> NodeClient:
        """The node client the wallet talks through."""
        return self._client

    @property
    def store(self) -> CoinStore:
        """The wallet's coin store."""
        return self._store

    @property
    def identity_key(self) -> PrivateKey:
        """The key that authenticates the wallet to its operator; it never holds coins."""
        return self._identity

    @property
    def height(self) -> int:
        """The height the wallet has synced to."""
        return self._store.cursor()[0]

    # -- keys and addresses --------------------------------------------------------------------

    def new_receive_key(self) -> PrivateKey:
        """Derive the next receive key and remember it, so that sync sees coins paid to it.

        Returns:
            A key the wallet never handed out before.
        """
        with self._lock:
            secret = self._vault.secret
            index = max(secret.next_index, self._store.next_key_index())
            key = self.key(index)
            # The vault first: a crash in between skips an index rather than reusing one.
            self._vault.save(msgspec.structs.replace(secret, next_index=index + 1))
            self._store.add_key(index, key.public_key)
            return key

    def key(self, index: int) -> PrivateKey:
        """The receive key number `index` (derived from the seed, cached).

        Raises:
            KeyIndexError: `index` is out of range.
        """
        key = self._keys.get(index)
        if key is None:
            key = self._keys[index] = derive_key(self._vault.secret.seed, index)
        return key

    def address(self, key: PrivateKey | PublicKey | bytes | Lock) -> str:
        """The address of a key (its `KeyLock`) or of a lock, on this wallet's network.

        Raises:
            BuilderError: a byte string that is not a valid public key.
        """
        if isinstance(key, PrivateKey):
            lock: Lock = KeyLock(key=PublicKey(key.public_key))
        else:
            lock = to_lock(key)
        return address_of(lock, self.hrp)

    # -- state ---------------------------------------------------------------------------------

    def sync(self, *, auto_reclaim: bool = True, auto_merge: bool = True) -> int:
        """Catch up with the node's tip, then reclaim expired pre-payments and merge coins.

        Args:
            auto_reclaim: Take back this wallet's pre-payments whose expiry has passed.
            auto_merge: Merge the smallest coins of an asset held in more than
                `merge_threshold` coins.

        Returns:
            The height the wallet is at.

        Raises:
            NodeError: the node cannot be reached or refuses.
            WalletChainError: the node serves another chain.
        """
        with self._lock:
            self._syncer.sync()
            if auto_reclaim:
                self.reclaim_expired()
            if auto_merge:
                self._merge_where_needed()
            return self.height

    def wait_for_tx(self, txid: bytes | str, timeout: float = DEFAULT_TIMEOUT) -> Result:
        """Wait until `txid` is in a block and sync to it; `{"txid", "height", "code"}`.

        Raises:
            TimeoutError: not committed within `timeout` seconds.
        """
        raw = bytes.fromhex(txid) if isinstance(txid, str) else bytes(txid)
        with self._lock:
            return self._syncer.wait_for_tx(raw, timeout)

    def balance(self, asset: str | None = None) -> dict[str, int]:
        """The spendable balance per asset: own coins, not pending. Works offline.

        Args:
            asset: Only this asset (reported as 0 when the wallet holds none).
        """
        totals = self._store.balances()
        if asset is not None:
            return {asset: totals.get(asset, 0)}
        return totals

    def coins(self, asset: str | None = None) -> list[StoredCoin]:
        """Every unspent coin the wallet holds or has in escrow (pending ones included)."""
        return self._store.unspent(asset)

    def escrows(self) -> list[StoredCoin]:
        """Unspent escrow coins: pre-payments made (payer) and received (payee)."""
        return [
            coin
            for coin in self._store.unspent()
            if coin.role in (ROLE_ESCROW_PAYER, ROLE_ESCROW_PAYEE)
        ]

    def history(self, limit: int | None = None, asset: str | None = None) -> list[HistoryEntry]:
        """The wallet's history, newest first."""
        return self._store.history(limit, asset)

    # -- payments ------------------------------------------------------------------------------

    def build_payment(self, pay_to: PayTo, asset: str, amount: int, *, memo: str = "") -> SignedTx:
        """Choose coins, and sign a transfer of `amount` to `pay_to` with change to a fresh key.

        The inputs are marked pending (they count in no balance and are not chosen again)
        until a block settles the transaction or its window passes. Output 0 is the payment,
        output 1 the change, if any.

        Args:
            pay_to: The payee's public key, or a lock.
            asset: The asset.
            amount: Minor units, at least 1.
            memo: A note kept in the wallet's history.

        Returns:
            The signed transaction, ready for `NodeClient.submit`.

        Raises:
            BadAmountError: `amount` is below 1.
            InsufficientFundsError: the spendable coins are short.
            TooManyInputsError: paying takes more coins than one transaction may spend.
            BuilderError: `pay_to` is not a valid key or lock.
        """
        with self._lock:
            lock = to_lock(pay_to)
            height = self._syncer.sync()
            selection = self._select(asset, amount)
            outputs = [Coin(asset=AssetCode(asset), amount=Amount(amount), lock=lock)]
            return self._sign_and_record(selection, asset, outputs, height, "pay", memo)

    def pay(
        self,
        pay_to: PayTo,
        asset: str,
        amount: int,
        *,
        memo: str = "",
        per_payment_limit: int | None = None,
    ) -> Result:
        """Pay `amount` of `asset` to `pay_to`, wait for the commit and sync.

        Args:
            pay_to: The payee's public key, or a lock.
            asset: The asset.
            amount: Minor units, at least 1.
            memo: A note kept in the wallet's history.
            per_payment_limit: The most one payment may be; checked before anything is signed.

        Returns:
            `{"txid", "height", "code"}`.

        Raises:
            LimitExceededError: `amount` is over `per_payment_limit`; nothing was signed.
            BadAmountError, InsufficientFundsError, TooManyInputsError, BuilderError: as
                `build_payment`.
            NodeRejection: the node refused the transaction (its inputs are released).
            NodeUnreachable: no answer; the transaction may still be committed, so its
                inputs stay pending until its window passes.
        """
        if per_payment_limit is not None and amount > per_payment_limit:
            raise LimitExceededError(
                f"a payment of {amount} {asset} is over the limit of {per_payment_limit} "
                "per payment",
                amount=amount,
                limit=per_payment_limit,
                asset=asset,
            )
        with self._lock:
            return self._send(self.build_payment(pay_to, asset, amount, memo=memo))

    def split(self, asset: str, amounts: Sequence[int], *, memo: str = "") -> Result:
        """Split coins into new coins of `amounts` (each to a fresh key), with change.

        Useful to hold the exact amounts of payments to come.

        Returns:
            `{"txid", "height", "code", "coin_ids"}`: the new coins in the order of `amounts`.

        Raises:
            BadAmountError: an amount is below 1, or there is none.
            InsufficientFundsError: the spendable coins are short.
        """
        if not amounts or len(amounts) >= _MAX_OUTPUTS:
            raise BadAmountError(
                f"a split makes 1 … {_MAX_OUTPUTS - 1} coins, got {len(amounts)}",
                count=len(amounts),
            )
        for amount in amounts:
            if type(amount) is not int or amount < 1:
                raise BadAmountError(f"each amount is at least 1, got {amount!r}")
        with self._lock:
            height = self._syncer.sync()
            selection = self._select(asset, sum(amounts))
            outputs = [
                Coin(
                    asset=AssetCode(asset),
                    amount=Amount(amount),
                    lock=KeyLock(key=PublicKey(self.new_receive_key().public_key)),
                )
                for amount in amounts
            ]
            tx = self._sign_and_record(selection, asset, outputs, height, "split", memo)
            result = self._send(tx)
            txid = tx_id(tx.body)
            result["coin_ids"] = [coin_id(txid, i).hex() for i in range(len(amounts))]
            return result

    def merge(self, asset: str, max_inputs: int = DEFAULT_MERGE_MAX_INPUTS) -> Result | None:
        """Merge up to `max_inputs` of the smallest spendable coins of `asset` into one.

        Returns:
            `{"txid", "height", "code", "merged", "coin_id"}`, or None when the wallet holds
            fewer than two coins of `asset`.
        """
        with self._lock:
            height = self._syncer.sync()
            return self._merge(asset, min(max_inputs, _MAX_INPUTS), 1, height)

    def _merge(self, asset: str, max_inputs: int, threshold: int, height: int) -> Result | None:
        candidates = [(c.coin_id, c.coin) for c in self._store.spendable(asset)]
        plan = plan_merge(candidates, asset, max_inputs, threshold=threshold)
        if plan is None:
            return None
        total = sum(coin.amount for _, coin in plan)
        selection = Selection(inputs=plan, change=0)
        target = KeyLock(key=PublicKey(self.new_receive_key().public_key))
        outputs = [Coin(asset=AssetCode(asset), amount=Amount(total), lock=target)]
        tx = self._sign_and_record(selection, asset, outputs, height, "merge", "")
        result = self._send(tx)
        result["merged"] = len(plan)
        result["coin_id"] = coin_id(tx_id(tx.body), 0).hex()
        return result

    def _merge_where_needed(self) -> list[Result]:
        results = []
        for asset in sorted(self._store.balances()):
            # A few rounds at most per sync; each leaves max_inputs - 1 coins fewer.
            for _ in range(4):
                result = self._merge(
                    asset,
                    min(self.merge_max_inputs, _MAX_INPUTS),
                    self.merge_threshold,
                    self.height,
                )
                if result is None:
                    break
                results.append(result)
        return results

    # -- pre-payment (escrow) ------------------------------------------------------------------

    def preauth(
        self,
        payee: PublicKey | bytes,
        asset: str,
        amount: int,
        expiry_height: int,
        *,
        memo: str = "",
    ) -> Result:
        """Pre-authorise `amount` to `payee` until `expiry_height`: coins into an escrow.

        The escrow names a fresh key of this wallet as payer. The payee may capture up to
        `amount` until `expiry_height`; from the next height this wallet may reclaim it, and
        does so by itself when it syncs.

        Returns:
            `{"txid", "height", "code", "escrow_coin_id", "expiry"}`.

        Raises:
            BadExpiryError: `expiry_height` is not after the current height.
            BadAmountError, InsufficientFundsError, TooManyInputsError: as `build_payment`.
            BuilderError: `payee` is not a valid public key.
            NodeRejection: the node refused (the inputs are released).
        """
        with self._lock:
            payee_lock = to_lock(payee)
            if not isinstance(payee_lock, KeyLock):
                raise BuilderError("the payee of a pre-payment is a public key")
            height = self._syncer.sync()
            if type(expiry_height) is not int or expiry_height <= height:
                raise BadExpiryError(
                    f"the expiry height must be after the current height {height}, "
                    f"got {expiry_height!r}",
                    height=height,
                    expiry=str(expiry_height),
                )
            selection = self._select(asset, amount)
            escrow = EscrowLock(
                payer=PublicKey(self.new_receive_key().public_key),
                payee=payee_lock.key,
                expiry=Height(expiry_height),
            )
            outputs = [Coin(asset=AssetCode(asset), amount=Amount(amount), lock=escrow)]
            tx = self._sign_and_record(selection, asset, outputs, height, "preauth", memo)
            result = self._send(tx)
            result["escrow_coin_id"] = coin_id(tx_id(tx.body), 0).hex()
            result["expiry"] = expiry_height
            return result

    def _escrow_coin(self, escrow_coin_id: bytes | str, role: str) -> StoredCoin:
        cid = bytes.fromhex(escrow_coin_id) if isinstance(escrow_coin_id, str) else escrow_coin_id
        stored = self._store.coin(cid)
        if stored is None or stored.role != role:
            who = "payee" if role == ROLE_ESCROW_PAYEE else "payer"
            raise CoinUnavailableError(
                f"coin {cid.hex()} is not an escrow this wallet is the {who} of",
                coin_id=cid.hex(),
                state="unknown",
            )
        if stored.spent_txid is not None:
            raise CoinUnavailableError(
                f"escrow {cid.hex()} was already settled by {stored.spent_txid.hex()}",
                coin_id=cid.hex(),
                state="spent",
            )
        return stored

    def capture(self, escrow_coin_id: bytes | str, amount: int, *, memo: str = "") -> Result:
        """Capture `amount` of a pre-payment made to this wallet; the rest goes to the payer.

        One transaction: output 0 pays `amount` to a fresh key of this wallet, output 1
        refunds the rest to the payer. The node accepts it only up to the escrow's expiry.

        Returns:
            `{"txid", "height", "code", "captured", "refunded"}`.

        Raises:
            CoinUnavailableError: the coin is not an unspent escrow payable to this wallet.
            BadAmountError: `amount` is below 1.
            BuilderError: `amount` is more than the escrowed amount.
            NodeRejection: the node refused, such as `escrow.expired` after the expiry.
        """
        if type(amount) is not int or amount < 1:
            raise BadAmountError(f"a capture is at least 1, got {amount!r}", amount=str(amount))
        with self._lock:
            height = self._syncer.sync()
            stored = self._escrow_coin(escrow_coin_id, ROLE_ESCROW_PAYEE)
            if amount > stored.coin.amount:
                raise BuilderError(
                    f"cannot capture {amount}: the escrow holds {stored.coin.amount}"
                )
            payee_key = self.key(self._key_index(stored))
            tx = make_escrow_capture(
                stored.coin_id,
                stored.coin,
                payee_key,
                amount,
                self.new_receive_key().public_key,
                self.chain_id,
                self._valid_until(height),
            )
            self._record(tx, [stored.coin_id], "capture", memo)
            result = self._send(tx)
            result["captured"] = amount
            result["refunded"] = stored.coin.amount - amount
            return result

    def reclaim(self, escrow_coin_id: bytes | str) -> Result:
        """Take back a pre-payment this wallet made, whole; the node allows it after expiry.

        Returns:
            `{"txid", "height", "code", "reclaimed"}`.

        Raises:
            CoinUnavailableError: the coin is not an unspent escrow this wallet paid.
            NodeRejection: the node refused, such as `escrow.not_expired` before the expiry.
        """
        with self._lock:
            height = self._syncer.sync()
            stored = self._escrow_coin(escrow_coin_id, ROLE_ESCROW_PAYER)
            return self._reclaim(stored, height)

    def _reclaim(self, stored: StoredCoin, height: int) -> Result:
        payer_key = self.key(self._key_index(stored))
        tx = make_escrow_reclaim(
            stored.coin_id,
            stored.coin,
            payer_key,
            self.chain_id,
            self._valid_until(height),
            pay_to=self.new_receive_key().public_key,
        )
        self._record(tx, [stored.coin_id], "reclaim", "")
        result = self._send(tx)
        result["reclaimed"] = stored.coin.amount
        result["escrow_coin_id"] = stored.coin_id.hex()
        return result

    def reclaim_expired(self) -> list[Result]:
        """Reclaim every pre-payment this wallet made whose expiry has passed.

        Escrows already in a pending transaction are left alone; a reclaim the node
        refuses (the payee captured in a block not read yet) is logged and skipped.

        Returns:
            One result per reclaim that was committed.
        """
        results = []
        with self._lock:
            height = self.height
            for stored in self._store.unspent(role=ROLE_ESCROW_PAYER):
                expiry = stored.expiry
                # The next block (height + 1) is after the expiry once height >= expiry.
                if stored.pending_txid is not None or expiry is None or height < expiry:
                    continue
                try:
                    results.append(self._reclaim(stored, height))
                except NodeRejection as rejection:
                    log.warning("reclaim of escrow %s refused: %s", stored.coin_id.hex(), rejection)
        return results

    # -- offline purse -------------------------------------------------------------------------

    def fund_offline(
        self,
        asset: str,
        amounts: Sequence[int],
        unlock_in: int,
        *,
        owner_index: int | None = None,
        memo: str = "",
    ) -> Result:
        """Move spendable coins into offline coins of `amounts`, for paying offline.

        Each new coin is `OfflineLock(owner, tip + unlock_in)` with a fresh key of this wallet
        as owner (or key `owner_index` for all of them); change goes to a fresh `KeyLock`. Once
        committed, sync keeps the new coins with role `offline` and the funding transaction's
        inclusion proof, the root of their trust chain.

        Args:
            asset: The asset.
            amounts: The offline coins to make, each at least 1.
            unlock_in: Blocks past the tip before the owner may spend the coins online; at
                most the node's `max_window`, so that hops made offline stay within the
                window when they are settled.
            owner_index: Lock every coin to this wallet key instead of fresh ones.
            memo: A note kept in the wallet's history.

        Returns:
            `{"txid", "height", "code", "coin_ids", "unlock_height"}`.

        Raises:
            BadAmountError: no amount, too many, or one below 1.
            BadExpiryError: `unlock_in` is below 1 or over the node's `max_window`.
            InsufficientFundsError: the spendable coins are short.
            NodeRejection: the node refused, such as `offline.barred` for a barred owner key.
        """
        if not amounts or len(amounts) >= _MAX_OUTPUTS:
            raise BadAmountError(
                f"a purse funding makes 1 … {_MAX_OUTPUTS - 1} coins, got {len(amounts)}",
                count=len(amounts),
            )
        for amount in amounts:
            if type(amount) is not int or amount < 1:
                raise BadAmountError(f"each amount is at least 1, got {amount!r}")
        with self._lock:
            height = self._syncer.sync()
            window = self._syncer.max_window
            if (
                type(unlock_in) is not int
                or unlock_in < 1
                or (window is not None and unlock_in > window)
            ):
                raise BadExpiryError(
                    f"offline coins unlock 1 … {window or 'max_window'} blocks ahead, "
                    f"got {unlock_in!r}",
                    height=height,
                    expiry=str(unlock_in),
                )
            unlock = Height(height + unlock_in)
            selection = self._select(asset, sum(amounts))
            fixed = self.key(owner_index).public_key if owner_index is not None else None
            outputs = [
                Coin(
                    asset=AssetCode(asset),
                    amount=Amount(amount),
                    lock=OfflineLock(
                        owner=PublicKey(fixed or self.new_receive_key().public_key),
                        unlock_height=unlock,
                    ),
                )
                for amount in amounts
            ]
            tx = self._sign_and_record(selection, asset, outputs, height, "offline_fund", memo)
            result = self._send(tx)
            txid = tx_id(tx.body)
            result["coin_ids"] = [coin_id(txid, i).hex() for i in range(len(amounts))]
            result["unlock_height"] = unlock
            return result

    def fetch_missing_roots(self) -> int:
        """Fetch the inclusion proofs that sync could not get yet for the offline coins.

        Returns:
            How many were fetched (a transaction the node has no proof for yet is skipped).

        Raises:
            NodeError: the node cannot be reached or refuses otherwise.
        """
        with self._lock:
            missing = sorted(
                {
                    stored.created_txid
                    for stored in self._store.offline_coins()
                    if self._store.root(stored.created_txid) is None
                }
            )
            roots = self._syncer.fetch_roots(missing)
            for txid, root in roots:
                self._store.add_root(txid, root)
            return len(roots)

    def transfer_coins(
        self, coins: Sequence[StoredCoin], outputs: Sequence[Coin], *, kind: str, memo: str = ""
    ) -> Result:
        """Spend exactly `coins` into `outputs`: sign each with its key, mark pending, send.

        For moves the caller plans itself (a sweep to another wallet, offline coins back to
        own ones); the outputs must balance the inputs, or the node refuses.

        Args:
            coins: Unspent coins of this wallet under a `KeyLock` (`own`) or an
                `OfflineLock` (`offline`) of its keys.
            outputs: The coins to create.
            kind: The history kind to record.
            memo: A note kept in the wallet's history.

        Returns:
            `{"txid", "height", "code"}`.

        Raises:
            CoinUnavailableError: a coin is not the wallet's own or offline coin, or is
                spent or pending.
            NodeRejection: the node refused (the inputs are released).
        """
        with self._lock:
            height = self._syncer.sync()
            inputs: list[tuple[CoinId | bytes, PrivateKey]] = []
            for coin in coins:
                if coin.role not in (ROLE_OWN, ROLE_OFFLINE):
                    raise CoinUnavailableError(
                        f"coin {coin.coin_id.hex()} is a {coin.role} coin; only own and "
                        "offline coins move this way",
                        coin_id=coin.coin_id.hex(),
                        state=coin.role,
                    )
                inputs.append((coin.coin_id, self.key(self._key_index(coin))))
            tx = make_transfer(inputs, list(outputs), self._valid_until(height), self.chain_id)
            self._record(tx, [coin.coin_id for coin in coins], kind, memo)
            return self._send(tx)

    # -- building and sending ------------------------------------------------------------------

    def _valid_until(self, height: int) -> int:
        """The last height a transaction made at `height` may be committed at."""
        window = self.valid_for
        if self._syncer.max_window is not None:
            window = min(window, self._syncer.max_window)
        return height + max(window, 1)

    def _key_index(self, stored: StoredCoin) -> int:
        if stored.key_index is None:
            raise CoinUnavailableError(
                f"coin {stored.coin_id.hex()} has no key of this wallet",
                coin_id=stored.coin_id.hex(),
                state="foreign",
            )
        return stored.key_index

    def _select(self, asset: str, amount: int) -> Selection:
        candidates = [(c.coin_id, c.coin) for c in self._store.spendable(asset)]
        return select_coins(candidates, asset, amount, max_inputs=_MAX_INPUTS)

    def _sign_and_record(
        self,
        selection: Selection,
        asset: str,
        outputs: list[Coin],
        height: int,
        kind: str,
        memo: str,
    ) -> SignedTx:
        """Sign a transfer of the selection into `outputs` plus change; mark inputs pending."""
        if selection.change > 0:
            change_key = PublicKey(self.new_receive_key().public_key)
            outputs = [
                *outputs,
                Coin(
                    asset=AssetCode(asset),
                    amount=Amount(selection.change),
                    lock=KeyLock(key=change_key),
                ),
            ]
        indices = {c.coin_id: self._key_index(c) for c in self._store.spendable(asset)}
        inputs: list[tuple[CoinId | bytes, PrivateKey]] = []
        for cid, _ in selection.inputs:
            if cid not in indices:
                raise CoinUnavailableError(
                    f"coin {cid.hex()} is not spendable by this wallet",
                    coin_id=cid.hex(),
                    state="unknown",
                )
            inputs.append((cid, self.key(indices[cid])))
        tx = make_transfer(inputs, outputs, self._valid_until(height), self.chain_id)
        self._record(tx, [cid for cid, _ in selection.inputs], kind, memo)
        return tx

    def _record(self, tx: SignedTx, inputs: Sequence[CoinId], kind: str, memo: str) -> None:
        body = tx.body
        pending = PendingTx(
            txid=tx_id(body),
            raw=encode(tx),
            kind=kind,
            memo=memo,
            valid_until=body.valid_until,
            created_ms=_now_ms(),
        )
        self._store.add_pending(pending, inputs)

    def _send(self, tx: SignedTx) -> Result:
        """Submit `tx`, wait for its block, sync; release its inputs if the node refuses it."""
        txid = tx_id(tx.body)
        try:
            answer = self._client.submit(tx, wait=True)
        except NodeRejection:
            self._store.release_pending(txid)
            raise
        status = answer.get("status")
        receipt = answer.get("receipt") or {}
        code = receipt.get("code")
        height = answer.get("height")
        if status == "pending":
            return self._syncer.wait_for_tx(txid, self._client.timeout)
        if status != "committed":
            self._store.release_pending(txid)
            raise NodeRejection(
                str(code),
                f"the node ordered transaction {txid.hex()} in block {height} but rejected it: "
                f"{code}",
                {"txid": txid.hex(), "height": height},
                409,
            )
        self._syncer.sync()
        return {"txid": txid.hex(), "height": height, "code": code}
