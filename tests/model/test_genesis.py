"""Genesis: the consortium root certificate is a trailing field a solo genesis leaves out."""

from __future__ import annotations

import msgspec
import pytest

from tally.model import (
    Genesis,
    Member,
    NonCanonicalError,
    Params,
    decode,
    encode,
    genesis_hash,
)
from tests.model.test_vectors import DOCUMENT, reference_pack

(VECTOR,) = [v for v in DOCUMENT["vectors"] if v["type"] == "Genesis"]
SOLO_BYTES = bytes.fromhex(VECTOR["encoding"])
ROOT = bytes(range(256)) * 2  # stands for a DER certificate; genesis does not parse it


def test_a_genesis_without_root_certificate_keeps_its_encoding_and_hash() -> None:
    genesis = decode(SOLO_BYTES, Genesis)
    assert genesis.root_certificate == b""
    assert encode(genesis) == SOLO_BYTES
    assert genesis_hash(genesis).hex() == VECTOR["ids"]["genesis_hash"]
    assert SOLO_BYTES[0] == 0x98  # an array of the eight original fields


def test_a_genesis_with_a_root_certificate_round_trips() -> None:
    solo = decode(SOLO_BYTES, Genesis)
    genesis = Genesis(
        **{f: getattr(solo, f) for f in solo.__struct_fields__[:-1]}, root_certificate=ROOT
    )
    data = encode(genesis)
    # The same eight fields, then the certificate as a ninth array element.
    assert data == reference_pack([*VECTOR["value"], {"bin": ROOT.hex()}])
    assert decode(data, Genesis) == genesis
    assert decode(data, Genesis).root_certificate == ROOT
    assert genesis_hash(genesis) != genesis_hash(solo)


def test_an_empty_root_certificate_spelled_out_is_not_canonical() -> None:
    spelled_out = reference_pack([*VECTOR["value"], {"bin": ""}])
    with pytest.raises(NonCanonicalError):
        decode(spelled_out, Genesis)


def test_a_genesis_built_in_code_without_the_field_encodes_as_eight_fields() -> None:
    genesis = Genesis(
        chain_id="c",
        hrp="tly",
        time_ms=0,
        params=Params(),
        admins=(),
        admin_threshold=1,
        assets=(),
        members=(Member(name="node0", key=bytes(32)),),
    )
    assert encode(genesis)[0] == 0x98
    assert encode(msgspec.structs.replace(genesis, root_certificate=b"")) == encode(genesis)
    assert encode(msgspec.structs.replace(genesis, root_certificate=b"x"))[0] == 0x99
