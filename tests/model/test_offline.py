"""Offline locks and double-spend proofs as protocol objects: encoding and strict decoding."""

from __future__ import annotations

import pytest
from hypothesis import given

from tally.crypto import MerkleProof
from tally.model import (
    DoubleSpendProof,
    Height,
    Lock,
    OfflineLock,
    Params,
    Signature,
    SignedTx,
    TooLargeError,
    Transfer,
    TxInclusionProof,
    Witness,
    WrongTypeError,
    decode,
    decode_double_spend_proof,
    encode,
)
from tally.model.offline import MAX_PROOF_OVERHEAD

from . import strategies as s

KEY = bytes(range(1, 33))
TX = SignedTx(
    body=Transfer(inputs=(bytes(32),), outputs=(), valid_until=Height(1)),
    witnesses=(Witness(signatures=(Signature(signer=0, sig=bytes(64)),)),),
)


@given(s.offline_locks)
def test_offline_locks_decode_as_locks_of_their_own_kind(lock):
    decoded: Lock = decode(encode(lock), Lock)
    assert type(decoded) is OfflineLock
    assert decoded == lock


def test_offline_lock_with_a_short_owner_key_is_refused():
    data = encode([4, KEY[:31], 7])
    with pytest.raises(WrongTypeError):
        decode(data, Lock)


@given(s.double_spend_proofs)
def test_decode_double_spend_proof_accepts_what_encode_gives(proof):
    params = Params(max_tx_bytes=2**20)
    assert decode_double_spend_proof(encode(proof), params) == proof


@given(s.double_spend_proofs)
def test_double_spend_proof_is_an_array_of_five_fields(proof):
    assert encode(proof)[:1] == b"\x95"


def test_double_spend_proof_over_two_transactions_size_is_too_large():
    proof = DoubleSpendProof(
        chain_id="x" * 6_000, coin_id=bytes(32), owner=KEY, first=TX, second=TX
    )
    data = encode(proof)
    small = Params(max_tx_bytes=1024)
    assert len(data) > 2 * 1024 + MAX_PROOF_OVERHEAD
    with pytest.raises(TooLargeError):
        decode_double_spend_proof(data, small)
    assert decode_double_spend_proof(data, Params(max_tx_bytes=4096)) == proof


def test_tx_inclusion_proof_is_the_merkle_proof():
    proof = MerkleProof(index=1, leaf_count=3, siblings=(bytes(32),))
    assert TxInclusionProof is MerkleProof
    assert decode(encode(proof), TxInclusionProof) == proof
