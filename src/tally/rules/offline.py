"""Checks of offline-payment evidence that anyone can run without the ledger.

A device that receives offline money holds no ledger. It checks what it is shown with
these pure functions and the consortium's keys from genesis:

- `verify_tx_inclusion`: a transaction and its receipt are in the block a header stands for
  (with `tally.rules.certificate.check_certificate`, that header is final);
- `verify_double_spend_proof`: a key signed the same coin away in two different transfers.

The ledger side of offline payments (the `OfflineLock` spend rule, barred keys, recording a
double spend) lives in `tally.rules.locks` and `tally.rules.apply`.
"""

from __future__ import annotations

from tally.crypto.merkle import verify_merkle_proof
from tally.crypto.schnorr import verify as verify_schnorr
from tally.model.block import Header, Receipt
from tally.model.encoding import tx_id
from tally.model.lock import OFFLINE_OWNER
from tally.model.offline import DoubleSpendProof, TxInclusionProof
from tally.model.tx import SignedTx, Transfer, sighash
from tally.rules.block import tx_leaf
from tally.rules.errors import DoubleSpendProofError, InclusionProofError
from tally.rules.locks import Verifier, is_offline_hop

__all__ = [
    "verify_tx_inclusion",
    "verify_double_spend_proof",
    "is_offline_hop",
    "TxInclusionProof",
    "InclusionProofError",
    "DoubleSpendProofError",
]


def verify_tx_inclusion(
    header: Header, tx: SignedTx, receipt: Receipt, index: int, proof: TxInclusionProof
) -> None:
    """Check that `tx`, with `receipt`, is transaction `index` of the block `header` stands for.

    The leaf is `tx_id(tx.body) + encode(receipt)`, as in `tally.rules.block.tx_root`. The
    proof must place it at `index` of exactly `header.tx_count` leaves, so that the position
    is the real one. Witnesses are outside the transaction id, so only the body is proven.
    Inclusion says nothing about acceptance: read `receipt.accepted`. Nor does it say the
    header is final: check its certificate with `check_certificate`.

    Raises:
        InclusionProofError: the index or leaf count differ from the header's, or the path
            does not lead from the leaf to `header.tx_root`.
    """
    if type(index) is not int or not 0 <= index < header.tx_count:
        raise InclusionProofError(
            f"index {index!r} is not a position among the block's {header.tx_count} transactions",
            index=str(index),
            tx_count=header.tx_count,
        )
    if proof.index != index or proof.leaf_count != header.tx_count:
        raise InclusionProofError(
            f"the proof is for position {proof.index!r} of {proof.leaf_count!r} leaves, "
            f"not {index} of the header's {header.tx_count}",
            index=index,
            tx_count=header.tx_count,
        )
    if not verify_merkle_proof(header.tx_root, tx_leaf(tx_id(tx.body), receipt), proof):
        raise InclusionProofError(
            f"the transaction and receipt do not lead to the tx root of block {header.height}",
            height=header.height,
            index=index,
        )


def verify_double_spend_proof(proof: DoubleSpendProof, verify: Verifier = verify_schnorr) -> None:
    """Check that `proof.owner` signed `proof.coin_id` away in two different transfers.

    Needs nothing but the proof: both transfers name the coin among their inputs, and each
    one's witness for it is a single valid signature by `owner` as signer 0 over
    `sighash(chain_id, tx_id(body))`.

    Args:
        proof: The proof, as the ledger serves it.
        verify: The signature check (BIP-340 Schnorr by default).

    Raises:
        DoubleSpendProofError: the two transactions are the same, one is not a transfer, one
            does not spend the coin, its witness for the coin is not one signature by signer
            0, or that signature does not verify.
    """
    first_id, second_id = tx_id(proof.first.body), tx_id(proof.second.body)
    if first_id == second_id:
        raise DoubleSpendProofError(
            f"both spends are transaction {first_id.hex()}: one transaction is not two spends",
            txid=first_id.hex(),
        )
    for which, tx, txid in (("first", proof.first, first_id), ("second", proof.second, second_id)):
        body = tx.body
        if not isinstance(body, Transfer):
            raise DoubleSpendProofError(
                f"the {which} spend is a {type(body).__name__}, not a Transfer", which=which
            )
        if proof.coin_id not in body.inputs:
            raise DoubleSpendProofError(
                f"the {which} spend does not spend coin {proof.coin_id.hex()}",
                which=which,
                coin_id=proof.coin_id.hex(),
            )
        position = body.inputs.index(proof.coin_id)
        if position >= len(tx.witnesses):
            raise DoubleSpendProofError(
                f"the {which} spend has no witness for input {position}", which=which
            )
        signatures = tx.witnesses[position].signatures
        if len(signatures) != 1 or signatures[0].signer != OFFLINE_OWNER:
            raise DoubleSpendProofError(
                f"the {which} spend's witness for the coin is not one signature by the owner",
                which=which,
            )
        if not verify(proof.owner, sighash(proof.chain_id, txid), signatures[0].sig):
            raise DoubleSpendProofError(
                f"the {which} spend's signature is not by key {proof.owner.hex()}",
                which=which,
                owner=proof.owner.hex(),
            )
