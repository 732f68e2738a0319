"""JSON views of protocol objects for the HTTP API: hex for bytes, names for kinds.

These are the API's wire models, kept apart from the protocol objects (STYLE.md §3): the
API may add fields for people (addresses, lock kinds) without touching what is hashed.
"""

from __future__ import annotations

from typing import Any

from tally.model.address import address_of
from tally.model.block import Block, CommitCertificate, Header, Receipt
from tally.model.coin import Coin, coin_id
from tally.model.encoding import block_hash, encode, tx_id
from tally.model.lock import EscrowLock, KeyLock, Lock, MultiLock, OfflineLock
from tally.model.offline import DoubleSpendProof
from tally.model.tx import (
    AddMember,
    Govern,
    Issue,
    Redeem,
    RegisterAsset,
    RevokeMember,
    SignedTx,
    Transfer,
)
from tally.model.types import CoinId, PublicKey, TxId
from tally.store.ledger import Inclusion

__all__ = [
    "lock_json",
    "coin_json",
    "tx_json",
    "header_json",
    "block_json",
    "certificate_json",
    "receipt_json",
    "inclusion_json",
    "barred_json",
]


def lock_json(lock: Lock, hrp: str) -> dict[str, Any]:
    """A lock with its kind, keys and address."""
    view: dict[str, Any] = {"address": address_of(lock, hrp)}
    if isinstance(lock, KeyLock):
        view.update(kind="key", key=lock.key.hex())
    elif isinstance(lock, MultiLock):
        view.update(kind="multisig", threshold=lock.threshold, keys=[k.hex() for k in lock.keys])
    elif isinstance(lock, EscrowLock):
        view.update(
            kind="escrow", payer=lock.payer.hex(), payee=lock.payee.hex(), expiry=lock.expiry
        )
    elif isinstance(lock, OfflineLock):
        view.update(kind="offline", owner=lock.owner.hex(), unlock_height=lock.unlock_height)
    return view


def coin_json(cid: CoinId, coin: Coin, hrp: str) -> dict[str, Any]:
    """A coin with its id, asset, amount (as a string: JSON numbers lose precision) and lock."""
    return {
        "coin_id": cid.hex(),
        "asset": coin.asset,
        "amount": str(coin.amount),
        "lock": lock_json(coin.lock, hrp),
    }


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    """A receipt: accepted, or the rejection code."""
    return {"accepted": receipt.accepted, "code": receipt.code}


def tx_json(tx: SignedTx, hrp: str, txid: TxId | None = None) -> dict[str, Any]:
    """A transaction body in readable form, with its id and output coin ids."""
    txid = txid if txid is not None else tx_id(tx.body)
    body = tx.body
    view: dict[str, Any] = {"txid": txid.hex(), "valid_until": body.valid_until}
    if isinstance(body, Transfer | Issue):
        view["outputs"] = [
            coin_json(coin_id(txid, i), output, hrp) for i, output in enumerate(body.outputs)
        ]
    if isinstance(body, Transfer | Redeem):
        view["inputs"] = [cid.hex() for cid in body.inputs]
    if isinstance(body, Transfer):
        view["kind"] = "transfer"
    elif isinstance(body, Issue):
        view.update(
            kind="issue",
            asset=body.asset,
            issuer=body.issuer.hex(),
            reserve_ref=body.reserve_ref.hex(),
            nonce=body.nonce,
        )
    elif isinstance(body, Redeem):
        view.update(kind="redeem", asset=body.asset, account=body.account.hex())
    elif isinstance(body, Govern):
        view.update(kind="govern", nonce=body.nonce, action=_action_json(body))
    view["witnesses"] = len(tx.witnesses)
    return view


def _action_json(body: Govern) -> dict[str, Any]:
    action = body.action
    if isinstance(action, RegisterAsset):
        return {"kind": "register_asset", "asset": action.asset, "issuer": action.issuer.hex()}
    if isinstance(action, AddMember):
        return {"kind": "add_member", "name": action.name, "key": action.key.hex()}
    if isinstance(action, RevokeMember):
        return {"kind": "revoke_member", "key": action.key.hex()}
    return {
        "kind": "set_params",
        "params": {f: getattr(action.params, f) for f in action.params.__struct_fields__},
    }


def header_json(header: Header) -> dict[str, Any]:
    """A block header with its hash."""
    return {
        "hash": block_hash(header).hex(),
        "chain_id": header.chain_id,
        "height": header.height,
        "prev_hash": header.prev_hash.hex(),
        "time_ms": header.time_ms,
        "tx_count": header.tx_count,
        "tx_root": header.tx_root.hex(),
        "state_root": header.state_root.hex(),
    }


def certificate_json(certificate: CommitCertificate) -> dict[str, Any]:
    """A commit certificate."""
    return {
        "height": certificate.height,
        "block_hash": certificate.block_hash.hex(),
        "view": certificate.view,
        "signatures": [{"signer": s.signer, "sig": s.sig.hex()} for s in certificate.signatures],
    }


def block_json(block: Block, certificate: CommitCertificate | None, hrp: str) -> dict[str, Any]:
    """A block with its transactions, receipts and certificate."""
    return {
        "header": header_json(block.header),
        "certificate": certificate_json(certificate) if certificate is not None else None,
        "txs": [
            {**tx_json(tx, hrp), "receipt": receipt_json(receipt)}
            for tx, receipt in zip(block.txs, block.receipts, strict=True)
        ],
    }


def inclusion_json(inclusion: Inclusion) -> dict[str, Any]:
    """What an offline device needs to check that a transaction is in a final block.

    The objects are hex of their canonical bytes, for the device to decode and check itself
    (`tally.rules.offline.verify_tx_inclusion`, `tally.rules.certificate.check_certificate`):
    `tx` a `SignedTx`, `receipt` a `Receipt`, `proof` a `TxInclusionProof` (`MerkleProof`),
    `header` a `Header`, `certificate` a `CommitCertificate`.
    """
    return {
        "txid": inclusion.txid.hex(),
        "height": inclusion.height,
        "index": inclusion.index,
        "tx": encode(inclusion.tx).hex(),
        "receipt": encode(inclusion.receipt).hex(),
        "proof": encode(inclusion.proof).hex(),
        "header": encode(inclusion.header).hex(),
        "certificate": encode(inclusion.certificate).hex(),
    }


def barred_json(owner: PublicKey, barred: bool, proofs: list[DoubleSpendProof]) -> dict[str, Any]:
    """Whether a key is barred from offline locks, with the proofs (hex of `DoubleSpendProof`)."""
    return {
        "owner": owner.hex(),
        "barred": barred,
        "proofs": [encode(proof).hex() for proof in proofs],
    }
