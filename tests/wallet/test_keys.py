"""Wallet keys: deterministic derivation from one seed, bounds, and the identity key."""

from __future__ import annotations

import pytest

from tally.crypto.hashing import tagged_hash
from tally.crypto.schnorr import PrivateKey
from tally.wallet.keys import (
    MAX_KEY_INDEX,
    SEED_SIZE,
    KeyIndexError,
    derive_key,
    identity_key,
    new_seed,
)

SEED = bytes(range(32))


def test_new_seed_is_32_fresh_random_bytes():
    seeds = {new_seed() for _ in range(8)}
    assert len(seeds) == 8
    assert all(len(seed) == SEED_SIZE == 32 for seed in seeds)


def test_derive_key_is_the_tagged_hash_of_seed_and_index():
    for index in (0, 1, 7, MAX_KEY_INDEX):
        expected = tagged_hash("tally/wallet/key", SEED + index.to_bytes(4, "big"))
        assert derive_key(SEED, index).to_bytes() == expected


def test_derive_key_is_deterministic_and_distinct_per_index_and_seed():
    first = [derive_key(SEED, i).public_key for i in range(20)]
    assert first == [derive_key(SEED, i).public_key for i in range(20)]
    assert len(set(first)) == 20
    other = bytes(31) + b"\x01"
    assert derive_key(other, 0).public_key not in first


def test_identity_key_has_its_own_tag_and_is_no_receive_key():
    identity = identity_key(SEED)
    assert identity.to_bytes() == tagged_hash("tally/wallet/identity", SEED)
    assert identity == identity_key(SEED)
    assert identity.public_key not in {derive_key(SEED, i).public_key for i in range(50)}


@pytest.mark.parametrize("index", [-1, MAX_KEY_INDEX + 1, 2**32, True, 1.0, "3"])
def test_derive_key_refuses_an_index_out_of_range(index):
    with pytest.raises(KeyIndexError) as info:
        derive_key(SEED, index)
    assert info.value.code == "wallet.key_index"
    assert info.value.http_status == 400
    assert str(MAX_KEY_INDEX) in info.value.message


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_derivation_refuses_a_seed_of_the_wrong_length(seed):
    with pytest.raises(ValueError, match="32 bytes"):
        derive_key(seed, 0)
    with pytest.raises(ValueError, match="32 bytes"):
        identity_key(seed)


def test_an_invalid_scalar_is_skipped_with_a_counter(monkeypatch):
    real = tagged_hash
    calls = []

    def first_candidate_is_zero(tag: str, data: bytes) -> bytes:
        calls.append(data)
        return bytes(32) if len(calls) == 1 else real(tag, data)

    monkeypatch.setattr("tally.wallet.keys.tagged_hash", first_candidate_is_zero)
    derived = derive_key(SEED, 5)
    base = SEED + (5).to_bytes(4, "big")
    assert calls == [base, base + (1).to_bytes(4, "big")]
    assert derived == PrivateKey.from_bytes(real("tally/wallet/key", base + (1).to_bytes(4, "big")))
