import hashlib
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tally.crypto.hashing import sha256, tagged_hash

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "crypto_tagged_hash.json"


def reference_tagged_hash(tag: str, data: bytes) -> bytes:
    tag_digest = hashlib.sha256(tag.encode("utf-8")).digest()
    return hashlib.sha256(tag_digest + tag_digest + data).digest()


def test_tagged_hash_replays_vectors():
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]
    assert len(vectors) >= 5
    for vector in vectors:
        assert tagged_hash(vector["tag"], bytes.fromhex(vector["data"])).hex() == vector["hash"]


def test_tagged_hash_matches_bip340_definition_for_bip340_tag():
    # BIP-340's own tags go through the same construction.
    data = bytes(range(96))
    assert tagged_hash("BIP0340/challenge", data) == reference_tagged_hash(
        "BIP0340/challenge", data
    )


@given(tag=st.text(max_size=40), data=st.binary(max_size=300))
def test_tagged_hash_equals_reference(tag, data):
    assert tagged_hash(tag, data) == reference_tagged_hash(tag, data)


def test_tagged_hash_is_repeatable_with_cached_prefix():
    # The second call uses the cached prefix state; copying must leave it untouched.
    first = tagged_hash("tally/test-cache", b"one")
    tagged_hash("tally/test-cache", b"something else")
    assert tagged_hash("tally/test-cache", b"one") == first


def test_tagged_hash_separates_domains():
    assert tagged_hash("tally/tx", b"x") != tagged_hash("tally/block", b"x")
    assert tagged_hash("tally/tx", b"x") != sha256(b"x")


def test_tagged_hash_accepts_bytes_like_data():
    assert tagged_hash("tally/tx", bytearray(b"abc")) == tagged_hash("tally/tx", b"abc")  # type: ignore[arg-type]
    assert tagged_hash("tally/tx", memoryview(b"abc")) == tagged_hash("tally/tx", b"abc")  # type: ignore[arg-type]


def test_sha256_matches_fips_180_vector():
    assert (
        sha256(b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert len(sha256(b"")) == 32
