"""Applying transactions and blocks to a state view: the ledger's state transition.

`apply_block` runs every transaction of a block in order against an overlay of the state
view, records a receipt for each (accepted, or the code of the first rule it broke), and
returns the receipts, the `StateDelta` to write and the new state commitment. A rejected
transaction changes nothing: each one is fully validated before the overlay is touched.

One outcome is neither: a transfer that spends an offline coin already spent, with a valid
signature of the coin's owner, is an offline double spend. Its owner signed the same money
away twice, so the transfer is recorded with receipt `offline.double_spend` and not applied,
and the owner's key is barred from offline locks, with the two transactions' ids as evidence.

Everything here is pure: no I/O, no clock, no randomness; signature checks go through the
`Verifier` the caller passes, which must be a pure function (the node passes one that
consults a cache filled by its verification thread pool).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tally.crypto.commitment import StateCommitment
from tally.model.block import ACCEPTED, Receipt
from tally.model.coin import Coin, coin_id
from tally.model.encoding import encode, tx_id
from tally.model.genesis import Member
from tally.model.lock import OfflineLock
from tally.model.params import Params
from tally.model.rejection import Rejection
from tally.model.tx import (
    AddMember,
    Govern,
    Issue,
    Redeem,
    RegisterAsset,
    RevokeMember,
    SetParams,
    SignedTx,
    Transfer,
    sighash,
)
from tally.model.types import MAX_AMOUNT, AssetCode, CoinId, Hash32, PublicKey, TxId
from tally.rules.errors import (
    BlockTooLargeError,
    DoubleSpendError,
    GovernThresholdError,
    InvalidParamsError,
    LastMemberError,
    MemberExistsError,
    MemberUnknownError,
    OfflineBarredError,
    RedeemAssetMismatchError,
    ReplayedError,
    SignerIndexError,
    SpentInputError,
    SupplyOverflowError,
    UnauthorizedIssuerError,
    UnbalancedError,
    UnknownAssetError,
    UnknownInputError,
)
from tally.rules.locks import Verifier, check_signature, check_spend, is_owner_signature
from tally.rules.state import (
    BlockContext,
    DoubleSpend,
    Governance,
    StateDelta,
    StateView,
    Supply,
    barred_element,
    coin_element,
    supply_element,
)
from tally.rules.stateless import check_tx, check_window

__all__ = ["BlockOutcome", "apply_block", "validate_tx", "ZERO_SUPPLY"]

ZERO_SUPPLY = Supply(issued=0, redeemed=0)
_OK = Receipt(code=ACCEPTED)
_DOUBLE_SPEND = Receipt(code=DoubleSpendError.code)


@dataclass
class BlockOutcome:
    """The result of applying one block."""

    receipts: list[Receipt]
    """One receipt per transaction, in order."""
    delta: StateDelta
    """What to write."""
    commitment: StateCommitment
    """The state commitment after the block."""


class _Overlay:
    """The state view plus what earlier transactions of the block changed."""

    def __init__(self, view: StateView) -> None:
        self.view = view
        self.delta = StateDelta()
        self.spent_from_view: list[CoinId] = []
        """Coins spent that existed before the block: they leave the commitment."""
        self.added: list[bytes] = []
        """Supply elements entering the commitment (coins are taken from the delta)."""
        self.removed: list[bytes] = []
        """Supply elements leaving the commitment."""
        self._governance: Governance | None = None

    def coin(self, cid: CoinId) -> Coin | None:
        if cid in self.delta.spent:
            return None
        created = self.delta.created.get(cid)
        return created if created is not None else self.view.coin(cid)

    def spent(self, cid: CoinId) -> tuple[TxId, Coin] | None:
        spent = self.delta.spent.get(cid)
        return spent if spent is not None else self.view.spent(cid)

    def is_barred(self, owner: PublicKey) -> bool:
        return owner in self.delta.barred or self.view.is_barred(owner)

    def supply(self, asset: AssetCode) -> Supply:
        supply = self.delta.supply.get(asset)
        if supply is None:
            supply = self.view.supply(asset) or ZERO_SUPPLY
        return supply

    def issuer(self, asset: AssetCode) -> PublicKey | None:
        key = self.delta.issuers.get(asset)
        return key if key is not None else self.view.issuer(asset)

    def is_committed(self, txid: TxId) -> bool:
        return txid in self.delta.committed or self.view.is_committed(txid)

    def governance(self) -> Governance:
        if self._governance is None:
            self._governance = self.view.governance()
        return self._governance

    # Mutations: called only once a transaction has passed every check.

    def spend(self, cid: CoinId, coin: Coin, txid: TxId) -> None:
        self.delta.spent[cid] = (txid, coin)
        # A coin created and spent within this block never reaches the commitment.
        if self.delta.created.pop(cid, None) is None:
            self.spent_from_view.append(cid)

    def create(self, cid: CoinId, coin: Coin) -> None:
        self.delta.created[cid] = coin

    def update_commitment(self, commitment: StateCommitment) -> None:
        """Apply what the block changed to `commitment`: coins created and spent, supplies."""
        for cid, coin in self.delta.created.items():
            commitment.add(coin_element(cid, encode(coin)))
        for element in self.added:
            commitment.add(element)
        for cid in self.spent_from_view:
            commitment.remove(coin_element(cid, encode(self.delta.spent[cid][1])))
        for element in self.removed:
            commitment.remove(element)

    def set_supply(self, asset: AssetCode, new: Supply) -> None:
        old = self.supply(asset)
        if asset in self.delta.supply or self.view.supply(asset) is not None:
            self.removed.append(supply_element(asset, old))
        self.delta.supply[asset] = new
        self.added.append(supply_element(asset, new))

    def set_governance(self, governance: Governance) -> None:
        self._governance = governance
        self.delta.governance = governance

    def record_double_spend(self, double_spend: DoubleSpend) -> None:
        """Keep the evidence, and bar the owner unless it is barred already."""
        if double_spend in self.delta.double_spends:
            return  # the same transaction ordered twice in one block proves nothing new
        if not self.is_barred(double_spend.owner):
            self.delta.barred.append(double_spend.owner)
            self.added.append(barred_element(double_spend.owner))
        self.delta.double_spends.append(double_spend)


def _missing_input(cid: CoinId, spent: tuple[TxId, Coin] | None) -> Rejection:
    if spent is not None:
        return SpentInputError(
            f"coin {cid.hex()} was already spent by {spent[0].hex()}",
            coin_id=cid.hex(),
            spent_by=spent[0].hex(),
        )
    return UnknownInputError(f"coin {cid.hex()} does not exist", coin_id=cid.hex())


def _load_inputs(state: _Overlay, inputs: Sequence[CoinId]) -> list[Coin]:
    coins = []
    for cid in inputs:
        coin = state.coin(cid)
        if coin is None:
            raise _missing_input(cid, state.spent(cid))
        coins.append(coin)
    return coins


def _check_outputs_allowed(state: _Overlay, outputs: Sequence[Coin]) -> None:
    for output in outputs:
        if state.issuer(output.asset) is None:
            raise UnknownAssetError(
                f"asset {output.asset} is not registered on this network", asset=output.asset
            )
        lock = output.lock
        if isinstance(lock, OfflineLock) and state.is_barred(lock.owner):
            raise OfflineBarredError(
                f"key {lock.owner.hex()} is barred from offline locks for a double spend",
                owner=lock.owner.hex(),
            )


def _apply_transfer(
    state: _Overlay,
    tx: SignedTx,
    body: Transfer,
    txid: TxId,
    msg: Hash32,
    ctx: BlockContext,
    verify: Verifier,
) -> Receipt:
    coins = []
    for cid, witness in zip(body.inputs, tx.witnesses, strict=True):
        coin = state.coin(cid)
        if coin is None:
            spent = state.spent(cid)
            if (
                spent is not None
                and isinstance(spent[1].lock, OfflineLock)
                and is_owner_signature(spent[1].lock, witness, msg, verify)
            ):
                owner = spent[1].lock.owner
                state.record_double_spend(
                    DoubleSpend(owner=owner, coin_id=cid, first=spent[0], second=txid)
                )
                return _DOUBLE_SPEND
            raise _missing_input(cid, spent)
        coins.append(coin)
    for coin, witness in zip(coins, tx.witnesses, strict=True):
        check_spend(coin, witness, body, msg, ctx.height, verify)
    _check_outputs_allowed(state, body.outputs)
    balance: dict[str, int] = {}
    for coin in coins:
        balance[coin.asset] = balance.get(coin.asset, 0) + coin.amount
    for output in body.outputs:
        balance[output.asset] = balance.get(output.asset, 0) - output.amount
    off = {asset: diff for asset, diff in balance.items() if diff != 0}
    if off:
        raise UnbalancedError(
            "inputs and outputs differ: "
            + ", ".join(f"{asset} by {diff:+d}" for asset, diff in sorted(off.items())),
            difference={asset: str(diff) for asset, diff in off.items()},
        )
    for cid, coin in zip(body.inputs, coins, strict=True):
        state.spend(cid, coin, txid)
    for index, output in enumerate(body.outputs):
        state.create(coin_id(txid, index), output)
    return _OK


def _apply_issue(
    state: _Overlay, tx: SignedTx, body: Issue, txid: TxId, msg: Hash32, verify: Verifier
) -> None:
    registered = state.issuer(body.asset)
    if registered is None:
        raise UnknownAssetError(
            f"asset {body.asset} is not registered on this network", asset=body.asset
        )
    if body.issuer != registered:
        raise UnauthorizedIssuerError(
            f"key {body.issuer.hex()} is not the registered issuer of {body.asset}",
            asset=body.asset,
            key=body.issuer.hex(),
        )
    signature = tx.witnesses[0].signatures
    if len(signature) != 1 or signature[0].signer != 0:
        raise SignerIndexError("an issuance takes exactly one signature by signer 0")
    check_signature(body.issuer, msg, signature[0], verify)
    _check_outputs_allowed(state, body.outputs)
    supply = state.supply(body.asset)
    total = sum(output.amount for output in body.outputs)
    if supply.issued + total > MAX_AMOUNT:
        raise SupplyOverflowError(
            f"issuing {total} would lift {body.asset}'s issued total over {MAX_AMOUNT}",
            asset=body.asset,
        )
    for index, output in enumerate(body.outputs):
        state.create(coin_id(txid, index), output)
    state.set_supply(body.asset, Supply(issued=supply.issued + total, redeemed=supply.redeemed))


def _apply_redeem(
    state: _Overlay,
    tx: SignedTx,
    body: Redeem,
    txid: TxId,
    msg: Hash32,
    ctx: BlockContext,
    verify: Verifier,
) -> None:
    coins = _load_inputs(state, body.inputs)
    for index, coin in enumerate(coins):
        if coin.asset != body.asset:
            raise RedeemAssetMismatchError(
                f"redemption of {body.asset} spends input {index} of {coin.asset}",
                index=index,
                expected=body.asset,
                found=coin.asset,
            )
    for coin, witness in zip(coins, tx.witnesses, strict=True):
        check_spend(coin, witness, body, msg, ctx.height, verify)
    for cid, coin in zip(body.inputs, coins, strict=True):
        state.spend(cid, coin, txid)
    supply = state.supply(body.asset)
    total = sum(coin.amount for coin in coins)
    state.set_supply(body.asset, Supply(issued=supply.issued, redeemed=supply.redeemed + total))


def _apply_govern(
    state: _Overlay, tx: SignedTx, body: Govern, msg: Hash32, verify: Verifier
) -> None:
    governance = state.governance()
    signatures = tx.witnesses[0].signatures
    for signature in signatures:
        if not 0 <= signature.signer < len(governance.admins):
            raise SignerIndexError(
                f"signer {signature.signer} is not one of the {len(governance.admins)} admins",
                signer=signature.signer,
            )
    if len(signatures) < governance.admin_threshold:
        raise GovernThresholdError(
            f"{len(signatures)} admin signatures, {governance.admin_threshold} needed",
            found=len(signatures),
            threshold=governance.admin_threshold,
        )
    for signature in signatures:
        check_signature(governance.admins[signature.signer], msg, signature, verify)
    action = body.action
    if isinstance(action, RegisterAsset):
        state.delta.issuers[action.asset] = action.issuer
    elif isinstance(action, AddMember):
        if any(m.key == action.key or m.name == action.name for m in governance.members):
            raise MemberExistsError(
                f"a member named {action.name!r} or with this key exists", name=action.name
            )
        member = Member(name=action.name, key=action.key)
        state.set_governance(_replace_members(governance, (*governance.members, member)))
    elif isinstance(action, RevokeMember):
        kept = tuple(m for m in governance.members if m.key != action.key)
        if len(kept) == len(governance.members):
            raise MemberUnknownError(f"no member has key {action.key.hex()}")
        if not kept:
            raise LastMemberError("the consortium needs at least one member")
        state.set_governance(_replace_members(governance, kept))
    else:
        _check_params(action)
        state.set_governance(
            Governance(
                admins=governance.admins,
                admin_threshold=governance.admin_threshold,
                members=governance.members,
                params=action.params,
            )
        )


def _replace_members(governance: Governance, members: tuple[Member, ...]) -> Governance:
    return Governance(
        admins=governance.admins,
        admin_threshold=governance.admin_threshold,
        members=members,
        params=governance.params,
    )


def _check_params(action: SetParams) -> None:
    p = action.params
    if not (
        1024 <= p.max_tx_bytes <= p.max_block_bytes
        and 1 <= p.max_inputs <= 1024
        and 1 <= p.max_outputs <= 1024
        and p.max_block_txs >= 1
        and p.max_window >= 1
        and p.block_interval_ms >= 1
    ):
        raise InvalidParamsError("new parameters are out of range", params=repr(p))


def _apply_tx(
    state: _Overlay,
    tx: SignedTx,
    txid: TxId,
    ctx: BlockContext,
    params: Params,
    verify: Verifier,
) -> Receipt:
    """Apply one transaction; its receipt (accepted, or an offline double spend recorded).

    Raises:
        Rejection: the first rule `tx` breaks; nothing changed.
    """
    check_tx(tx, params)
    body = tx.body
    check_window(body, ctx.height, params)
    if state.is_committed(txid):
        raise ReplayedError(f"transaction {txid.hex()} was already committed", txid=txid.hex())
    msg = sighash(ctx.chain_id, txid)
    if isinstance(body, Transfer):
        receipt = _apply_transfer(state, tx, body, txid, msg, ctx, verify)
        if receipt is not _OK:
            return receipt  # a double spend: recorded, not applied, not in the idempotency table
    elif isinstance(body, Issue):
        _apply_issue(state, tx, body, txid, msg, verify)
    elif isinstance(body, Redeem):
        _apply_redeem(state, tx, body, txid, msg, ctx, verify)
    else:
        _apply_govern(state, tx, body, msg, verify)
    state.delta.committed[txid] = body.valid_until
    return _OK


def validate_tx(
    view: StateView, tx: SignedTx, ctx: BlockContext, verify: Verifier, txid: TxId | None = None
) -> None:
    """Check that `tx` would be ordered if it were the only transaction of the next block.

    It is then accepted, or, for an offline double spend by the coin's owner, recorded with
    receipt `offline.double_spend`: the node orders such a transfer rather than refusing it.

    Raises:
        Rejection: the first rule `tx` breaks, with its code.
    """
    state = _Overlay(view)
    params = state.governance().params
    _apply_tx(state, tx, txid if txid is not None else tx_id(tx.body), ctx, params, verify)


def apply_block(
    view: StateView,
    txs: Sequence[SignedTx],
    ctx: BlockContext,
    verify: Verifier,
    txids: Sequence[TxId] | None = None,
) -> BlockOutcome:
    """Apply `txs` in order on top of `view`.

    Args:
        view: the state at the end of the previous block.
        txs: the block's transactions.
        ctx: chain id, height and time of the block.
        verify: a pure signature check.
        txids: the transactions' ids if the caller has them already.

    Returns:
        The receipts, the delta to write and the new commitment.

    Raises:
        BlockTooLargeError: more transactions than `params.max_block_txs`; the whole block
            is invalid.
    """
    state = _Overlay(view)
    params = state.governance().params
    if len(txs) > params.max_block_txs:
        raise BlockTooLargeError(
            f"{len(txs)} transactions, at most {params.max_block_txs} allowed",
            count=len(txs),
            limit=params.max_block_txs,
        )
    ids = txids if txids is not None else [tx_id(tx.body) for tx in txs]
    receipts = []
    for tx, txid in zip(txs, ids, strict=True):
        try:
            receipts.append(_apply_tx(state, tx, txid, ctx, params, verify))
        except Rejection as rejection:
            receipts.append(Receipt(code=rejection.code))
    commitment = view.commitment()
    state.update_commitment(commitment)
    return BlockOutcome(receipts=receipts, delta=state.delta, commitment=commitment)
