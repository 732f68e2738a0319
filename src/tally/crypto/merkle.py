"""Binary Merkle trees over byte strings, and proofs that a leaf is in a tree.

A block header commits to its transactions and receipts through the root of this tree; a
light client checks that one transaction is in a block with a short proof.

The tree, for leaves ``l_0 ... l_{k-1}``:

- level 0 holds ``tagged_hash("tally/merkle/leaf", l_i)`` for every leaf;
- each next level pairs neighbours left to right into
  ``tagged_hash("tally/merkle/node", left || right)``; when a level has an odd number of
  nodes the last one is promoted to the next level unchanged;
- the root is the single node left. The root of no leaves is
  ``tagged_hash("tally/merkle/empty", b"")``.

Two choices close known holes. Leaves and inner nodes hash under different tags, so a
64-byte leaf can never pass for an inner node (second-preimage attacks on unseparated
trees). An odd node is promoted rather than paired with a copy of itself, as Bitcoin does:
duplication lets ``[a, b, c]`` and ``[a, b, c, c]`` share a root (CVE-2012-2459), promotion
does not, so one root stands for one list of leaves.

What a proof shows: that `leaf` sits at position `index` of *some* tree of `leaf_count`
leaves with the given root. The root alone does not fix the leaf count, and a proof
with a different `leaf_count` can place a leaf of a real tree at a different position
(for ``[a, b, c]``, the path of ``c`` also checks as index 1 of 2). The leaf's membership
is sound either way; a caller that relies on the *position* must compare
``proof.leaf_count`` with a count it trusts, such as the transaction count of the block
header.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec

from tally.crypto.hashing import tagged_hash

__all__ = ["merkle_root", "MerkleProof", "merkle_proof", "verify_merkle_proof"]

_LEAF_TAG = "tally/merkle/leaf"
_NODE_TAG = "tally/merkle/node"
_EMPTY_TAG = "tally/merkle/empty"

_HASH_SIZE = 32
# A tree has at most 2^63 - 1 leaves (the largest bound msgspec checks while decoding),
# so a proof has at most 63 siblings. The bound also keeps `verify_merkle_proof` from
# looping over an absurd count.
_MAX_LEAF_COUNT = 2**63 - 1
_MAX_DEPTH = 63


class MerkleProof(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """The path from one leaf to the root of a Merkle tree."""

    index: Annotated[int, msgspec.Meta(ge=0, le=_MAX_LEAF_COUNT - 1)]
    """Position of the leaf among all leaves, counting from 0."""
    leaf_count: Annotated[int, msgspec.Meta(ge=1, le=_MAX_LEAF_COUNT)]
    """Number of leaves in the tree; with `index` it fixes where each sibling sits."""
    siblings: Annotated[
        tuple[Annotated[bytes, msgspec.Meta(min_length=_HASH_SIZE, max_length=_HASH_SIZE)], ...],
        msgspec.Meta(max_length=_MAX_DEPTH),
    ]
    """The 32-byte sibling of each node on the path, from the leaf level up. A level
    where the path's node is promoted (the last node of an odd level) has no sibling and
    adds nothing here."""


def _hash_leaf(leaf: bytes) -> bytes:
    return tagged_hash(_LEAF_TAG, leaf)


def _hash_node(left: bytes, right: bytes) -> bytes:
    return tagged_hash(_NODE_TAG, left + right)


def _next_level(level: list[bytes]) -> list[bytes]:
    """Pair the nodes of one level into the level above, promoting an odd last node."""
    parents = [_hash_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2 == 1:
        parents.append(level[-1])
    return parents


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Compute the Merkle root of a list of leaves.

    Args:
        leaves: The leaves in order, as raw byte strings (each is hashed as a leaf here).

    Returns:
        The 32-byte root; for no leaves, ``tagged_hash("tally/merkle/empty", b"")``.

    """
    if not leaves:
        return tagged_hash(_EMPTY_TAG, b"")
    level = [_hash_leaf(leaf) for leaf in leaves]
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> MerkleProof:
    """Build the proof that ``leaves[index]`` is in the tree of `leaves`.

    Args:
        leaves: All leaves of the tree, in order.
        index: Position of the leaf to prove.

    Returns:
        The proof; `verify_merkle_proof` accepts it against ``merkle_root(leaves)``.

    Raises:
        IndexError: `index` is not a position in `leaves` (negative indices are refused
            too, since a proof records the absolute position).

    """
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} is outside 0 ... {len(leaves) - 1}")
    siblings: list[bytes] = []
    level = [_hash_leaf(leaf) for leaf in leaves]
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            siblings.append(level[sibling])
        # Otherwise the node is the promoted last node of an odd level: no sibling.
        level = _next_level(level)
        position //= 2
    return MerkleProof(index=index, leaf_count=len(leaves), siblings=tuple(siblings))


def verify_merkle_proof(root: bytes, leaf: bytes, proof: MerkleProof) -> bool:
    """Check that `proof` leads from `leaf` to `root`.

    Never raises on a malformed proof (an out-of-range index or count, a sibling of the
    wrong size, too few or too many siblings): such a proof is simply not valid. See the
    module docstring for why a caller that relies on ``proof.index`` must also check
    ``proof.leaf_count``.

    Args:
        root: The 32-byte Merkle root the proof claims to reach.
        leaf: The raw leaf bytes (hashed as a leaf here).
        proof: The proof, normally decoded from the wire.

    Returns:
        True if hashing `leaf` up the path in `proof` gives `root`; False otherwise.

    """
    index, leaf_count, siblings = proof.index, proof.leaf_count, proof.siblings
    # A Struct built in code (not decoded) skips the field constraints, so check again;
    # `type(...) is int` also refuses bool.
    if type(index) is not int or type(leaf_count) is not int:
        return False
    if not 0 <= index < leaf_count <= _MAX_LEAF_COUNT:
        return False
    if not isinstance(siblings, tuple) or not all(
        type(sibling) is bytes and len(sibling) == _HASH_SIZE for sibling in siblings
    ):
        return False

    node = _hash_leaf(leaf)
    used = 0
    position, width = index, leaf_count
    while width > 1:
        if position % 2 == 1 or position + 1 < width:
            if used == len(siblings):
                return False
            sibling = siblings[used]
            used += 1
            node = _hash_node(sibling, node) if position % 2 == 1 else _hash_node(node, sibling)
        # Otherwise the node is the last of an odd level and moves up unchanged.
        position //= 2
        width = (width + 1) // 2
    return used == len(siblings) and node == root
