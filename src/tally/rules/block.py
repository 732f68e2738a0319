"""Block-level rules: the transaction root, header construction and checking a received block."""

from __future__ import annotations

from collections.abc import Sequence

from tally.crypto.merkle import MerkleProof, merkle_proof, merkle_root
from tally.model.block import Block, Header, Receipt
from tally.model.encoding import block_hash, encode, tx_id
from tally.model.rejection import Rejection
from tally.model.types import BlockHash, Hash32, Height, TxId
from tally.rules.apply import BlockOutcome, apply_block
from tally.rules.errors import BlockTxTooLargeError
from tally.rules.locks import Verifier
from tally.rules.state import BlockContext, StateView

__all__ = [
    "tx_leaf",
    "tx_root",
    "tx_inclusion_proof",
    "build_header",
    "execute_block",
    "BlockMismatchError",
]


class BlockMismatchError(Rejection):
    """A received block disagrees with what executing it here gives."""

    code = "block.mismatch"


def tx_leaf(txid: TxId, receipt: Receipt) -> bytes:
    """The leaf of one transaction in its block's tree: its id followed by its encoded receipt."""
    return txid + encode(receipt)


def tx_root(txids: Sequence[TxId], receipts: Sequence[Receipt]) -> Hash32:
    """Merkle root over each transaction id followed by its encoded receipt."""
    return Hash32(merkle_root([tx_leaf(t, r) for t, r in zip(txids, receipts, strict=True)]))


def tx_inclusion_proof(
    txids: Sequence[TxId], receipts: Sequence[Receipt], index: int
) -> MerkleProof:
    """The path from transaction `index`'s leaf to the root `tx_root(txids, receipts)` gives.

    Raises:
        IndexError: `index` is not a position among the transactions.
    """
    leaves = [tx_leaf(t, r) for t, r in zip(txids, receipts, strict=True)]
    return merkle_proof(leaves, index)


def build_header(
    ctx: BlockContext,
    prev_hash: Hash32 | BlockHash,
    txids: Sequence[TxId],
    outcome: BlockOutcome,
) -> Header:
    """The header of a block whose execution gave `outcome`."""
    return Header(
        chain_id=ctx.chain_id,
        height=ctx.height,
        prev_hash=Hash32(prev_hash),
        time_ms=ctx.time_ms,
        tx_count=len(txids),
        tx_root=tx_root(txids, outcome.receipts),
        state_root=Hash32(outcome.commitment.digest()),
    )


def execute_block(
    view: StateView,
    block: Block,
    chain_id: str,
    expected_height: Height,
    prev_hash: Hash32 | BlockHash,
    verify: Verifier,
    txids: Sequence[TxId] | None = None,
) -> BlockOutcome:
    """Re-execute a block received from elsewhere and check every header field against it.

    Raises:
        BlockTxTooLargeError: a transaction is over the size limit.
        BlockMismatchError: wrong chain, height or parent; receipts, transaction root or
            state root differ from this node's execution.
    """
    header = block.header
    if header.chain_id != chain_id:
        raise BlockMismatchError(
            f"block is for chain {header.chain_id!r}, this node is on {chain_id!r}",
            chain_id=header.chain_id,
        )
    if header.height != expected_height or header.prev_hash != prev_hash:
        raise BlockMismatchError(
            f"block {header.height} does not follow height {expected_height - 1}",
            height=header.height,
            expected=expected_height,
        )
    # Transactions reach this node inside a block, not through `decode_tx`, so their size
    # limit is checked here: a faulty orderer must not get an oversized one accepted.
    limit = view.governance().params.max_tx_bytes
    for index, tx in enumerate(block.txs):
        size = len(encode(tx))
        if size > limit:
            raise BlockTxTooLargeError(
                f"transaction {index} of block {header.height} is {size} bytes, over {limit}",
                index=index,
                size=size,
                limit=limit,
            )
    ctx = BlockContext(chain_id=header.chain_id, height=header.height, time_ms=header.time_ms)
    outcome = apply_block(view, block.txs, ctx, verify, txids)
    ids = txids if txids is not None else [tx_id(tx.body) for tx in block.txs]
    rebuilt = build_header(ctx, prev_hash, ids, outcome)
    if rebuilt != header or tuple(outcome.receipts) != block.receipts:
        raise BlockMismatchError(
            f"block {header.height} {block_hash(header).hex()} does not match its execution here",
            height=header.height,
            expected_state_root=rebuilt.state_root.hex(),
            found_state_root=header.state_root.hex(),
        )
    return outcome
