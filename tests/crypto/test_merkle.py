import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.crypto.hashing import tagged_hash
from tally.crypto.merkle import MerkleProof, merkle_proof, merkle_root, verify_merkle_proof

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "crypto_merkle.json"


def leaf_hash(leaf: bytes) -> bytes:
    return tagged_hash("tally/merkle/leaf", leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    return tagged_hash("tally/merkle/node", left + right)


leaf_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=40)


def test_merkle_replays_vectors():
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]
    assert len(vectors) >= 10
    for vector in vectors:
        leaves = [bytes.fromhex(leaf) for leaf in vector["leaves"]]
        root = bytes.fromhex(vector["root"])
        assert merkle_root(leaves) == root
        assert len(vector["proofs"]) == len(leaves)
        for expected in vector["proofs"]:
            index = expected["index"]
            proof = merkle_proof(leaves, index)
            assert proof.index == index
            assert proof.leaf_count == expected["leaf_count"] == len(leaves)
            assert [sibling.hex() for sibling in proof.siblings] == expected["siblings"]
            assert msgspec.msgpack.encode(proof).hex() == expected["msgpack"]
            decoded = msgspec.msgpack.decode(bytes.fromhex(expected["msgpack"]), type=MerkleProof)
            assert verify_merkle_proof(root, leaves[index], decoded)


def test_empty_tree_root_is_the_empty_tag_hash():
    assert merkle_root([]) == tagged_hash("tally/merkle/empty", b"")


def test_single_leaf_root_is_its_leaf_hash():
    assert merkle_root([b"a"]) == leaf_hash(b"a")
    proof = merkle_proof([b"a"], 0)
    assert proof == MerkleProof(index=0, leaf_count=1, siblings=())
    assert verify_merkle_proof(leaf_hash(b"a"), b"a", proof)


def test_odd_node_is_promoted_not_duplicated():
    a, b, c = leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")
    assert merkle_root([b"a", b"b", b"c"]) == node_hash(node_hash(a, b), c)
    five = [b"a", b"b", b"c", b"d", b"e"]
    d, e = leaf_hash(b"d"), leaf_hash(b"e")
    assert merkle_root(five) == node_hash(node_hash(node_hash(a, b), node_hash(c, d)), e)


def test_repeating_the_last_leaf_changes_the_root():
    # CVE-2012-2459: with duplication, [a, b, c] and [a, b, c, c] would share a root.
    assert merkle_root([b"a", b"b", b"c"]) != merkle_root([b"a", b"b", b"c", b"c"])
    assert merkle_root([b"a"]) != merkle_root([b"a", b"a"])


def test_leaf_cannot_pass_for_an_inner_node():
    # A 64-byte leaf equal to the two child hashes of a real node does not reproduce it.
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert merkle_root([a + b]) != merkle_root([b"a", b"b"])


def test_merkle_root_depends_on_order():
    assert merkle_root([b"a", b"b"]) != merkle_root([b"b", b"a"])


def test_merkle_proof_refuses_out_of_range_index():
    with pytest.raises(IndexError):
        merkle_proof([b"a", b"b"], 2)
    with pytest.raises(IndexError):
        merkle_proof([b"a", b"b"], -1)
    with pytest.raises(IndexError):
        merkle_proof([], 0)


@given(leaves=leaf_lists, data=st.data())
def test_every_index_proves(leaves, data):
    root = merkle_root(leaves)
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    proof = merkle_proof(leaves, index)
    assert verify_merkle_proof(root, leaves[index], proof)
    # Round trip through the wire encoding, which also checks the field constraints.
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(proof), type=MerkleProof)
    assert decoded == proof
    assert verify_merkle_proof(root, leaves[index], decoded)


@given(leaves=leaf_lists)
def test_all_proofs_of_a_tree_verify(leaves):
    root = merkle_root(leaves)
    for index, leaf in enumerate(leaves):
        assert verify_merkle_proof(root, leaf, merkle_proof(leaves, index))


@given(leaves=leaf_lists, data=st.data())
def test_wrong_leaf_fails(leaves, data):
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    wrong = data.draw(st.binary(max_size=40).filter(lambda leaf: leaf != leaves[index]))
    assert not verify_merkle_proof(merkle_root(leaves), wrong, merkle_proof(leaves, index))


@given(leaves=leaf_lists.filter(lambda leaves: len(leaves) > 1), data=st.data())
def test_tampered_sibling_fails(leaves, data):
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    proof = merkle_proof(leaves, index)
    which = data.draw(st.integers(min_value=0, max_value=len(proof.siblings) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=255))
    sibling = bytearray(proof.siblings[which])
    sibling[bit // 8] ^= 1 << (bit % 8)
    siblings = list(proof.siblings)
    siblings[which] = bytes(sibling)
    tampered = MerkleProof(index=index, leaf_count=len(leaves), siblings=tuple(siblings))
    assert not verify_merkle_proof(merkle_root(leaves), leaves[index], tampered)


@given(
    leaves=st.lists(st.binary(max_size=20), min_size=2, max_size=30, unique=True), data=st.data()
)
def test_wrong_index_fails_with_the_true_leaf_count(leaves, data):
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    other = data.draw(
        st.integers(min_value=0, max_value=len(leaves) - 1).filter(lambda i: i != index)
    )
    proof = merkle_proof(leaves, index)
    moved = MerkleProof(index=other, leaf_count=proof.leaf_count, siblings=proof.siblings)
    assert not verify_merkle_proof(merkle_root(leaves), leaves[index], moved)


@given(leaves=leaf_lists, data=st.data())
def test_proof_against_another_root_fails(leaves, data):
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    other_root = merkle_root([*leaves, b"extra"])
    assert not verify_merkle_proof(other_root, leaves[index], merkle_proof(leaves, index))


def test_proof_without_trusted_leaf_count_can_misplace_a_leaf():
    # Documented limitation: the root does not fix the leaf count. The path of c at
    # index 2 of [a, b, c] also checks as index 1 of a 2-leaf tree; membership holds,
    # the position does not. Callers that use the position compare leaf_count.
    leaves = [b"a", b"b", b"c"]
    proof = merkle_proof(leaves, 2)
    relabelled = MerkleProof(index=1, leaf_count=2, siblings=proof.siblings)
    assert verify_merkle_proof(merkle_root(leaves), b"c", relabelled)


def _malformed_proofs(proof: MerkleProof) -> list[MerkleProof]:
    siblings = proof.siblings
    return [
        MerkleProof(index=proof.leaf_count, leaf_count=proof.leaf_count, siblings=siblings),
        MerkleProof(index=-1, leaf_count=proof.leaf_count, siblings=siblings),
        MerkleProof(index=0, leaf_count=0, siblings=siblings),
        MerkleProof(index=proof.index, leaf_count=proof.leaf_count, siblings=siblings[:-1]),
        MerkleProof(
            index=proof.index, leaf_count=proof.leaf_count, siblings=(*siblings, bytes(32))
        ),
        MerkleProof(
            index=proof.index,
            leaf_count=proof.leaf_count,
            siblings=(siblings[0][:31], *siblings[1:]),
        ),
        MerkleProof(
            index=proof.index,
            leaf_count=proof.leaf_count,
            siblings=(siblings[0] + b"\x00", *siblings[1:]),
        ),
        MerkleProof(index=proof.index, leaf_count=2**63, siblings=siblings),
        MerkleProof(index=proof.index, leaf_count=10**40, siblings=siblings),
        # Wrong types, as a Struct built in code (not decoded) may carry.
        MerkleProof(index=True, leaf_count=proof.leaf_count, siblings=siblings),
        MerkleProof(index=float(proof.index), leaf_count=proof.leaf_count, siblings=siblings),  # type: ignore[arg-type]
        MerkleProof(index=proof.index, leaf_count=str(proof.leaf_count), siblings=siblings),  # type: ignore[arg-type]
        MerkleProof(index=proof.index, leaf_count=proof.leaf_count, siblings=list(siblings)),  # type: ignore[arg-type]
        MerkleProof(index=proof.index, leaf_count=proof.leaf_count, siblings=None),  # type: ignore[arg-type]
        MerkleProof(
            index=proof.index,
            leaf_count=proof.leaf_count,
            siblings=(bytearray(siblings[0]), *siblings[1:]),  # type: ignore[arg-type]
        ),
    ]


def test_malformed_proofs_are_refused_without_raising():
    leaves = [bytes([i]) for i in range(7)]
    root = merkle_root(leaves)
    proof = merkle_proof(leaves, 3)
    assert verify_merkle_proof(root, leaves[3], proof)
    for malformed in _malformed_proofs(proof):
        assert not verify_merkle_proof(root, leaves[3], malformed), malformed


def test_wrong_root_size_is_refused():
    leaves = [b"a", b"b"]
    proof = merkle_proof(leaves, 0)
    assert not verify_merkle_proof(merkle_root(leaves)[:31], b"a", proof)
    assert not verify_merkle_proof(b"", b"a", proof)


def test_decoding_refuses_out_of_limit_proofs():
    for fields in (
        [-1, 2, [bytes(32)]],
        [0, 0, []],
        [0, 2, [bytes(31)]],
        [0, 2, [bytes(33)]],
        [0, 2**63, [bytes(32)]],
        [0, 2, [bytes(32)] * 64],
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.msgpack.decode(msgspec.msgpack.encode(fields), type=MerkleProof)


def test_proof_is_encoded_as_an_array():
    proof = MerkleProof(index=1, leaf_count=2, siblings=(bytes(32),))
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(proof)) == [1, 2, [bytes(32)]]
