import hashlib
import json
import struct
import timeit
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tally.crypto.commitment import (
    StateCommitment,
    _add_lanes,
    _element_hash_int,
    _subtract_lanes,
)
from tally.crypto.hashing import tagged_hash

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "crypto_commitment.json"

elements = st.binary(max_size=24)
multisets = st.lists(elements, max_size=12)


def reference_lanes(element: bytes) -> list[int]:
    """The definition: SHAKE256(b"tally/lthash" || e), 2048 bytes, 1024 LE u16 lanes."""
    return list(struct.unpack("<1024H", hashlib.shake_256(b"tally/lthash" + element).digest(2048)))


def reference_state(added: Sequence[bytes], removed: Sequence[bytes] = ()) -> bytes:
    lanes = [0] * 1024
    for element in added:
        lanes = [(a + b) % 65536 for a, b in zip(lanes, reference_lanes(element), strict=True)]
    for element in removed:
        lanes = [(a - b) % 65536 for a, b in zip(lanes, reference_lanes(element), strict=True)]
    return struct.pack("<1024H", *lanes)


def build(added: Sequence[bytes], removed: Sequence[bytes] = ()) -> StateCommitment:
    commitment = StateCommitment()
    for element in added:
        commitment.add(element)
    for element in removed:
        commitment.remove(element)
    return commitment


def test_commitment_replays_vectors():
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]
    assert len(vectors) >= 5
    for vector in vectors:
        commitment = StateCommitment()
        for kind, element in vector["operations"]:
            getattr(commitment, kind)(bytes.fromhex(element))
        assert hashlib.sha256(commitment.to_bytes()).hexdigest() == vector["state_sha256"]
        assert commitment.digest().hex() == vector["digest"]


def test_empty_commitment_is_all_zero_lanes():
    empty = StateCommitment()
    assert empty.to_bytes() == bytes(2048)
    assert empty.digest() == tagged_hash("tally/state", bytes(2048))


def test_element_hash_is_the_shake256_lane_vector():
    element = b"coin"
    expected = hashlib.shake_256(b"tally/lthash" + element).digest(2048)
    assert _element_hash_int(element).to_bytes(2048, "little") == expected


def test_add_is_order_independent():
    assert build([b"a", b"b", b"c"]) == build([b"c", b"a", b"b"])
    assert build([b"a", b"b", b"c"]).digest() == build([b"b", b"c", b"a"]).digest()


def test_add_then_remove_returns_to_empty_digest():
    commitment = build([b"a", b"b"])
    commitment.remove(b"b")
    commitment.remove(b"a")
    assert commitment == StateCommitment()
    assert commitment.digest() == StateCommitment().digest()


def test_remove_before_add_cancels_too():
    commitment = StateCommitment()
    commitment.remove(b"a")
    assert commitment != StateCommitment()
    commitment.add(b"a")
    assert commitment == StateCommitment()


def test_multiplicity_counts():
    assert build([b"a", b"a"]) != build([b"a"])
    assert build([b"a", b"a"], [b"a"]) == build([b"a"])


def test_different_elements_give_different_digests():
    digests = {build([bytes([i])]).digest() for i in range(256)}
    assert len(digests) == 256
    assert build([b"a", b"b"]).digest() != build([b"a", b"c"]).digest()
    assert build([b"ab"]).digest() != build([b"a", b"b"]).digest()


@given(added=multisets, data=st.data())
def test_commitment_of_a_multiset_ignores_order(added, data):
    shuffled = data.draw(st.permutations(added))
    assert build(added) == build(shuffled)
    assert build(added).digest() == build(shuffled).digest()


@given(kept=multisets, transient=multisets, data=st.data())
def test_incremental_path_equals_building_from_scratch(kept, transient, data):
    # Add everything, then remove the transient elements in another order: the result is
    # the commitment of what was kept, built directly.
    operations = data.draw(st.permutations([*kept, *transient]))
    commitment = build(operations)
    for element in data.draw(st.permutations(transient)):
        commitment.remove(element)
    assert commitment == build(kept)
    assert commitment.to_bytes() == reference_state(kept)


@given(added=multisets, removed=multisets)
def test_commitment_matches_reference_lane_sums(added, removed):
    assert build(added, removed).to_bytes() == reference_state(added, removed)


@given(first=multisets, second=multisets)
def test_different_multisets_give_different_digests(first, second):
    if Counter(first) != Counter(second):
        assert build(first).digest() != build(second).digest()
    else:
        assert build(first).digest() == build(second).digest()


@given(added=multisets, removed=multisets)
def test_serialisation_round_trips(added, removed):
    commitment = build(added, removed)
    encoded = commitment.to_bytes()
    assert len(encoded) == 2048
    restored = StateCommitment.from_bytes(encoded)
    assert restored == commitment
    assert restored.digest() == commitment.digest()
    assert restored.to_bytes() == encoded
    # The restored accumulator keeps working.
    restored.add(b"more")
    commitment.add(b"more")
    assert restored == commitment


@given(data=st.binary(min_size=2048, max_size=2048))
@example(data=b"\xff" * 2048)
def test_every_2048_byte_string_is_a_state(data):
    assert StateCommitment.from_bytes(data).to_bytes() == data


def test_from_bytes_refuses_wrong_length():
    for size in (0, 2047, 2049, 4096):
        with pytest.raises(ValueError, match="2048 bytes"):
            StateCommitment.from_bytes(bytes(size))


def test_copy_is_independent():
    original = build([b"a"])
    twin = original.copy()
    assert twin == original
    twin.add(b"b")
    assert twin != original
    assert original == build([b"a"])


def test_commitment_is_not_hashable_and_compares_only_with_its_kind():
    with pytest.raises(TypeError):
        hash(StateCommitment())
    assert StateCommitment() != bytes(2048)
    assert "digest=" in repr(StateCommitment())


def _pack(lanes: list[int]) -> int:
    return int.from_bytes(struct.pack("<1024H", *lanes), "little")


def _unpack(value: int) -> list[int]:
    return list(struct.unpack("<1024H", value.to_bytes(2048, "little")))


# A drawn pattern of lanes repeated across all 1024, so that every lane and its
# neighbours are exercised while Hypothesis only has to shrink a short list.
lane_vectors = st.lists(
    st.sampled_from([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFE, 0xFFFF]) | st.integers(0, 0xFFFF),
    min_size=1,
    max_size=37,
).map(lambda pattern: (pattern * (1024 // len(pattern) + 1))[:1024])


@given(a=lane_vectors, b=lane_vectors)
@example(a=[0xFFFF] * 1024, b=[0xFFFF] * 1024)
@example(a=[0x8000] * 1024, b=[0x8000] * 1024)
@example(a=[0] * 1024, b=[0xFFFF] * 1024)
@example(a=[0x7FFF] * 1024, b=[0x8000] * 1024)
def test_lane_arithmetic_is_per_lane_mod_2_16(a, b):
    total = _add_lanes(_pack(a), _pack(b))
    difference = _subtract_lanes(_pack(a), _pack(b))
    assert _unpack(total) == [(x + y) % 65536 for x, y in zip(a, b, strict=True)]
    assert _unpack(difference) == [(x - y) % 65536 for x, y in zip(a, b, strict=True)]
    # Results stay normalised: nothing above the top lane.
    assert total >> 16384 == 0
    assert difference >> 16384 == 0


def test_add_and_remove_take_microseconds():
    # A loose bound that only catches a gross regression (say an accidental per-lane
    # Python loop, ~100x slower); the module docstring gives the measured figures.
    commitment = StateCommitment()
    element = b"e" * 80
    seconds = min(timeit.repeat(lambda: commitment.add(element), number=200, repeat=5)) / 200
    assert seconds < 200e-6
