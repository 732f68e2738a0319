"""Replays tests/vectors/model_encoding.json (written by tests/vectors/make_model_vectors.py)."""

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from tally.crypto import tagged_hash, verify
from tally.model import (
    Block,
    Coin,
    CommitCertificate,
    DoubleSpendProof,
    EscrowLock,
    Genesis,
    Govern,
    Header,
    Issue,
    KeyLock,
    MultiLock,
    OfflineLock,
    Params,
    Receipt,
    Redeem,
    SignedTx,
    Transfer,
    address_of,
    block_hash,
    coin_id,
    decode,
    encode,
    genesis_hash,
    lock_hash,
    sighash,
    tx_id,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "model_encoding.json"
DOCUMENT = json.loads(VECTORS.read_text(encoding="utf-8"))
TYPES: dict[str, type] = {
    kind.__name__: kind
    for kind in (
        KeyLock,
        MultiLock,
        EscrowLock,
        OfflineLock,
        Coin,
        Issue,
        Transfer,
        Redeem,
        Govern,
        SignedTx,
        Receipt,
        Header,
        Block,
        CommitCertificate,
        Params,
        Genesis,
        DoubleSpendProof,
    )
}


def reference_pack(value: Any) -> bytes:
    """MessagePack of the JSON data model, every integer and length in its shortest form.

    Written from the MessagePack specification, independently of msgspec.
    """
    if isinstance(value, bool) or value is None:
        raise TypeError("the protocol carries no booleans or nil")
    if isinstance(value, int):
        if 0 <= value <= 0x7F:
            return bytes([value])
        if -32 <= value < 0:
            return struct.pack(">b", value)
        if value > 0:
            for prefix, fmt, limit in [(0xCC, ">B", 8), (0xCD, ">H", 16), (0xCE, ">I", 32)]:
                if value < 2**limit:
                    return bytes([prefix]) + struct.pack(fmt, value)
            return b"\xcf" + struct.pack(">Q", value)
        for prefix, fmt, limit in [(0xD0, ">b", 7), (0xD1, ">h", 15), (0xD2, ">i", 31)]:
            if value >= -(2**limit):
                return bytes([prefix]) + struct.pack(fmt, value)
        return b"\xd3" + struct.pack(">q", value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        if len(data) < 32:
            return bytes([0xA0 | len(data)]) + data
        return _sized(data, 0xD9, 0xDA, 0xDB)
    if isinstance(value, dict):
        return _sized(bytes.fromhex(value["bin"]), 0xC4, 0xC5, 0xC6)
    items = b"".join(reference_pack(item) for item in value)
    if len(value) < 16:
        return bytes([0x90 | len(value)]) + items
    if len(value) < 2**16:
        return b"\xdc" + struct.pack(">H", len(value)) + items
    return b"\xdd" + struct.pack(">I", len(value)) + items


def _sized(data: bytes, short: int, middle: int, long: int) -> bytes:
    if len(data) < 2**8:
        return bytes([short, len(data)]) + data
    if len(data) < 2**16:
        return bytes([middle]) + struct.pack(">H", len(data)) + data
    return bytes([long]) + struct.pack(">I", len(data)) + data


def vector_ids(vector) -> str:
    return str(vector["name"])


@pytest.mark.parametrize("vector", DOCUMENT["vectors"], ids=vector_ids)
def test_vector_decodes_and_reencodes_to_the_same_bytes(vector):
    data = bytes.fromhex(vector["encoding"])
    obj: Any = decode(data, TYPES[vector["type"]])
    assert type(obj).__name__ == vector["type"]
    assert encode(obj) == data


@pytest.mark.parametrize("vector", DOCUMENT["vectors"], ids=vector_ids)
def test_vector_value_packs_to_its_encoding_by_the_reference_encoder(vector):
    assert reference_pack(vector["value"]).hex() == vector["encoding"]


@pytest.mark.parametrize("vector", DOCUMENT["vectors"], ids=vector_ids)
def test_vector_ids_match(vector):
    obj: Any = decode(bytes.fromhex(vector["encoding"]), TYPES[vector["type"]])
    ids = vector["ids"]
    chain_id, hrp = DOCUMENT["chain_id"], DOCUMENT["hrp"]
    body: Any = obj.body if isinstance(obj, SignedTx) else obj
    if "tx_id" in ids:
        txid = tx_id(body)
        assert txid.hex() == ids["tx_id"]
        assert sighash(chain_id, txid).hex() == ids["sighash"]
    if "coin_ids" in ids:
        txid = tx_id(body)
        assert [coin_id(txid, i).hex() for i in range(len(body.outputs))] == ids["coin_ids"]
    if "signer_keys" in ids:
        msg = bytes.fromhex(ids["sighash"])
        for witness, keys in zip(obj.witnesses, ids["signer_keys"], strict=True):
            for signature, key in zip(witness.signatures, keys, strict=True):
                assert verify(bytes.fromhex(key), msg, signature.sig)
    if "block_hash" in ids:
        header = obj.header if isinstance(obj, Block) else obj
        assert block_hash(header).hex() == ids["block_hash"]
    if "genesis_hash" in ids:
        assert genesis_hash(obj).hex() == ids["genesis_hash"]
    if "lock_hash" in ids:
        assert lock_hash(obj).hex() == ids["lock_hash"]
        assert address_of(obj, hrp) == ids["address"]


def test_vectors_cover_every_protocol_object_and_id():
    kinds = {vector["type"] for vector in DOCUMENT["vectors"]}
    assert kinds == set(TYPES)
    ids = {name for vector in DOCUMENT["vectors"] for name in vector["ids"]}
    assert ids == {
        "tx_id",
        "sighash",
        "coin_ids",
        "signer_keys",
        "block_hash",
        "genesis_hash",
        "lock_hash",
        "address",
    }
    actions = {v["name"] for v in DOCUMENT["vectors"] if v["type"] == "Govern"}
    assert len(actions) == 4


def test_certificate_vector_is_signed_by_member_zero_over_the_commit_message():
    (certificate_vector,) = [v for v in DOCUMENT["vectors"] if v["type"] == "CommitCertificate"]
    (genesis_vector,) = [v for v in DOCUMENT["vectors"] if v["type"] == "Genesis"]
    certificate = decode(bytes.fromhex(certificate_vector["encoding"]), CommitCertificate)
    genesis = decode(bytes.fromhex(genesis_vector["encoding"]), Genesis)
    fields = (DOCUMENT["chain_id"], certificate.height, certificate.block_hash, certificate.view)
    msg = tagged_hash("tally/commit", encode(fields))
    (signature,) = certificate.signatures
    assert verify(genesis.members[signature.signer].key, msg, signature.sig)


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "cc80"),
        (256, "cd0100"),
        (65536, "ce00010000"),
        (2**32, "cf0000000100000000"),
        (-1, "ff"),
        (-33, "d0df"),
        (-(2**63), "d38000000000000000"),
        ("", "a0"),
        ("x" * 32, "d920" + "78" * 32),
        ({"bin": ""}, "c400"),
        ([], "90"),
        ([0] * 16, "dc0010" + "00" * 16),
    ],
)
def test_reference_encoder_follows_the_messagepack_specification(value, encoding):
    assert reference_pack(value).hex() == encoding
    assert encode(value if not isinstance(value, dict) else b"").hex() == encoding


def test_double_spend_proof_vector_verifies_from_its_two_signatures():
    from tally.rules import verify_double_spend_proof

    (proof_vector,) = [v for v in DOCUMENT["vectors"] if v["type"] == "DoubleSpendProof"]
    proof = decode(bytes.fromhex(proof_vector["encoding"]), DoubleSpendProof)
    assert proof.chain_id == DOCUMENT["chain_id"]
    verify_double_spend_proof(proof)
