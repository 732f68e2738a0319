"""Offline payments: the evidence objects that travel between devices and the ledger.

A device that receives offline money checks, without a network, that the money exists on
the ledger: the node gives it the transaction that created the money, its receipt, a
`TxInclusionProof` (the Merkle path from the pair to the block header's transaction root),
the header and the header's commit certificate (`GET /v1/txs/{txid}/inclusion`), and the
device checks them with `tally.rules.offline.verify_tx_inclusion` and
`tally.rules.certificate.check_certificate`.

When an offline coin's owner signs it away twice, the ledger keeps a `DoubleSpendProof`:
the two transfers, each with the owner's signature over the same coin. Anyone can check it
from the two signatures alone (`tally.rules.offline.verify_double_spend_proof`).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from tally.crypto.merkle import MerkleProof
from tally.model.encoding import decode, prepare_decoders
from tally.model.params import Params
from tally.model.tx import SignedTx
from tally.model.types import CoinId, PublicKey

__all__ = [
    "DoubleSpendProof",
    "TxInclusionProof",
    "decode_double_spend_proof",
    "MAX_PROOF_OVERHEAD",
]

_Id = Annotated[CoinId, msgspec.Meta(min_length=32, max_length=32)]
_Key = Annotated[PublicKey, msgspec.Meta(min_length=32, max_length=32)]

MAX_PROOF_OVERHEAD = 4096
"""Bytes a `DoubleSpendProof` may hold besides its two transactions (chain id, coin id, key)."""


TxInclusionProof = MerkleProof
"""The path from `tx_id(tx.body) + encode(receipt)` to a header's `tx_root`: a `MerkleProof`
whose `index` is the transaction's position in the block and `leaf_count` the header's
`tx_count` (checked by `tally.rules.offline.verify_tx_inclusion`)."""


class DoubleSpendProof(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Two different transfers that spend the same coin, both signed by the same key.

    It stands on its own: each transfer's witness for `coin_id` is a BIP-340 signature by
    `owner` (signer 0) over `sighash(chain_id, tx_id(body))`, and the two bodies differ.
    """

    chain_id: str
    """The network both transfers were signed for; part of every sighash."""
    coin_id: _Id
    """The coin spent twice; an input of both transfers."""
    owner: _Key
    """The key that signed both spends: the `OfflineLock` owner of the coin."""
    first: SignedTx
    """The spend the ledger applied."""
    second: SignedTx
    """The later spend of the same coin, which the ledger recorded as `offline.double_spend`."""


def decode_double_spend_proof(data: bytes, params: Params) -> DoubleSpendProof:
    """Decode a double-spend proof strictly, refusing anything over two transactions' size.

    Raises:
        DecodeError: not the canonical bytes of a proof, or over the size limit.
    """
    return decode(data, DoubleSpendProof, max_bytes=2 * params.max_tx_bytes + MAX_PROOF_OVERHEAD)


prepare_decoders(DoubleSpendProof, TxInclusionProof)
