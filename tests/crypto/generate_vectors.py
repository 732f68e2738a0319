"""Write the crypto test vectors in tests/vectors/ from plain reference code.

Run from the repository root:

    PYTHONPATH=src python tests/crypto/generate_vectors.py

The hashes, trees and commitments are computed here from their definitions with nothing
but `hashlib` and `struct`, independently of `tally.crypto`, so that the tests replaying
these files compare two implementations. Only the msgpack encoding of Merkle proofs uses
`tally.crypto.merkle.MerkleProof`, since that encoding is what the vector pins down.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import msgspec

VECTORS_DIR = Path(__file__).resolve().parent.parent / "vectors"


def reference_tagged_hash(tag: str, data: bytes) -> bytes:
    tag_digest = hashlib.sha256(tag.encode("utf-8")).digest()
    return hashlib.sha256(tag_digest + tag_digest + data).digest()


def reference_merkle_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """All levels of the tree, leaf hashes first, the root level last."""
    levels = [[reference_tagged_hash("tally/merkle/leaf", leaf) for leaf in leaves]]
    while len(levels[-1]) > 1:
        level = levels[-1]
        parent = []
        for i in range(0, len(level), 2):
            if i + 1 < len(level):
                parent.append(reference_tagged_hash("tally/merkle/node", level[i] + level[i + 1]))
            else:
                parent.append(level[i])  # odd node promoted unchanged
        levels.append(parent)
    return levels


def reference_merkle_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return reference_tagged_hash("tally/merkle/empty", b"")
    return reference_merkle_levels(leaves)[-1][0]


def reference_merkle_siblings(leaves: list[bytes], index: int) -> list[bytes]:
    siblings = []
    position = index
    for level in reference_merkle_levels(leaves)[:-1]:
        if position ^ 1 < len(level):
            siblings.append(level[position ^ 1])
        position //= 2
    return siblings


def reference_lanes(element: bytes) -> list[int]:
    expanded = hashlib.shake_256(b"tally/lthash" + element).digest(2048)
    return list(struct.unpack("<1024H", expanded))


def reference_commitment(operations: list[tuple[str, bytes]]) -> bytes:
    """The 2048-byte lane encoding after applying `operations` to the empty multiset."""
    lanes = [0] * 1024
    for kind, element in operations:
        sign = 1 if kind == "add" else -1
        lanes = [
            (a + sign * b) % 65536 for a, b in zip(lanes, reference_lanes(element), strict=True)
        ]
    return struct.pack("<1024H", *lanes)


def tagged_hash_vectors() -> dict[str, object]:
    cases = [
        ("tally/tx", b""),
        ("tally/tx", b"abc"),
        ("tally/block", bytes(range(64))),
        ("tally/merkle/leaf", b"\x00" * 100),
        ("BIP0340/challenge", b"\xff" * 32),
        ("tally/\u00e9t\u00e9", b"unicode tag, encoded as UTF-8"),
        ("", b"empty tag"),
    ]
    return {
        "description": (
            "tagged_hash(tag, data) = SHA-256(SHA-256(tag) || SHA-256(tag) || data),"
            " tag encoded as UTF-8; data and hash in hex"
        ),
        "vectors": [
            {"tag": tag, "data": data.hex(), "hash": reference_tagged_hash(tag, data).hex()}
            for tag, data in cases
        ],
    }


def merkle_vectors() -> dict[str, object]:
    from tally.crypto.merkle import MerkleProof

    def leaves_of(count: int) -> list[bytes]:
        return [f"leaf {i}".encode() for i in range(count)]

    trees = [leaves_of(count) for count in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13)]
    # An empty leaf and a 64-byte leaf (the size of an inner node's input).
    trees.append([b"", bytes(64), b"\x01"])
    vectors = []
    for leaves in trees:
        proofs = []
        for index in range(len(leaves)):
            siblings = reference_merkle_siblings(leaves, index)
            encoded = msgspec.msgpack.encode(
                MerkleProof(index=index, leaf_count=len(leaves), siblings=tuple(siblings))
            )
            proofs.append(
                {
                    "index": index,
                    "leaf_count": len(leaves),
                    "siblings": [sibling.hex() for sibling in siblings],
                    "msgpack": encoded.hex(),
                }
            )
        vectors.append(
            {
                "leaves": [leaf.hex() for leaf in leaves],
                "root": reference_merkle_root(leaves).hex(),
                "proofs": proofs,
            }
        )
    return {
        "description": (
            "Merkle trees: leaf = tagged_hash('tally/merkle/leaf', leaf), node ="
            " tagged_hash('tally/merkle/node', left || right), an odd last node promoted"
            " unchanged, empty root = tagged_hash('tally/merkle/empty', b''). Proof siblings"
            " run from the leaf level up, none at a level where the node is promoted;"
            " 'msgpack' is the proof encoded as the array [index, leaf_count, siblings]."
        ),
        "vectors": vectors,
    }


def commitment_vectors() -> dict[str, object]:
    a, b, c = b"coin a", b"coin b", b"coin c"
    cases: list[list[tuple[str, bytes]]] = [
        [],
        [("add", a)],
        [("add", a), ("add", b)],
        [("add", b), ("add", a)],
        [("add", a), ("add", a)],
        [("add", a), ("add", b), ("remove", a)],
        [("add", a), ("remove", a)],
        [("remove", c)],
        [("add", b""), ("add", bytes(200)), ("add", c), ("remove", b"")],
    ]
    vectors = []
    for operations in cases:
        state = reference_commitment(operations)
        vectors.append(
            {
                "operations": [[kind, element.hex()] for kind, element in operations],
                "state_sha256": hashlib.sha256(state).hexdigest(),
                "digest": reference_tagged_hash("tally/state", state).hex(),
            }
        )
    return {
        "description": (
            "LtHash16 state commitment: element lanes = SHAKE256(b'tally/lthash' || e) as"
            " 2048 bytes, 1024 little-endian u16 lanes; state = lane-wise sum mod 2^16 of"
            " added minus removed elements; state bytes = lanes as little-endian u16;"
            " state_sha256 = SHA-256(state bytes); digest = tagged_hash('tally/state',"
            " state bytes)."
        ),
        "vectors": vectors,
    }


def write(name: str, content: dict[str, object]) -> None:
    path = VECTORS_DIR / name
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    write("crypto_tagged_hash.json", tagged_hash_vectors())
    write("crypto_merkle.json", merkle_vectors())
    write("crypto_commitment.json", commitment_vectors())
