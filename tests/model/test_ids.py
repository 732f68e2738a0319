import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.crypto import tagged_hash
from tally.model import (
    BadAddressError,
    Header,
    KeyLock,
    MultiLock,
    Signature,
    SignedTx,
    Transfer,
    Witness,
    address_of,
    block_hash,
    encode,
    genesis_hash,
    lock_hash,
    parse_address,
    sighash,
    tx_id,
)

from . import strategies as s

TRANSFER = Transfer(inputs=(bytes(32),), outputs=(), valid_until=7)


def test_tx_id_is_the_tagged_hash_of_the_body():
    assert tx_id(TRANSFER) == tagged_hash("tally/tx", encode(TRANSFER))


@given(s.signed_txs, st.lists(s.witnesses, max_size=2).map(tuple))
def test_tx_id_ignores_witnesses(tx, other_witnesses):
    changed = SignedTx(body=tx.body, witnesses=other_witnesses)
    assert tx_id(changed.body) == tx_id(tx.body)
    assert encode(changed) != encode(tx) or other_witnesses == tx.witnesses


@given(s.tx_bodies, s.tx_bodies)
def test_distinct_bodies_have_distinct_ids(first, second):
    assert (tx_id(first) == tx_id(second)) == (encode(first) == encode(second))


def test_sighash_binds_the_chain_id():
    txid = tx_id(TRANSFER)
    assert sighash("tally-test", txid) == tagged_hash("tally/sighash", b"tally-test\x00" + txid)
    assert sighash("tally-test", txid) != sighash("tally-main", txid)
    assert sighash("ab", b"c" + txid[1:]) != sighash("a", b"bc" + txid[1:])


@given(s.headers)
def test_block_hash_is_the_tagged_hash_of_the_header(header):
    assert block_hash(header) == tagged_hash("tally/block", encode(header))


def test_block_hash_changes_with_any_header_field():
    header = Header(
        chain_id="c",
        height=1,
        prev_hash=bytes(32),
        time_ms=0,
        tx_count=0,
        tx_root=bytes(32),
        state_root=bytes(32),
    )
    seen = {block_hash(header)}
    for field, value in [
        ("chain_id", "d"),
        ("height", 2),
        ("prev_hash", b"\x01" * 32),
        ("time_ms", 1),
        ("tx_count", 1),
        ("tx_root", b"\x01" * 32),
        ("state_root", b"\x01" * 32),
    ]:
        seen.add(block_hash(msgspec.structs.replace(header, **{field: value})))
    assert len(seen) == 8


@given(s.geneses)
def test_genesis_hash_is_the_tagged_hash_of_genesis(genesis):
    assert genesis_hash(genesis) == tagged_hash("tally/genesis", encode(genesis))


def test_hashes_of_different_kinds_are_domain_separated():
    assert tx_id(TRANSFER) != tagged_hash("tally/block", encode(TRANSFER))


@given(s.locks)
def test_address_round_trips_to_the_lock_hash(lock):
    address = address_of(lock, "tly")
    assert address.startswith("tly1")
    assert parse_address(address, "tly") == lock_hash(lock)
    assert parse_address(address.upper(), "tly") == lock_hash(lock)
    assert lock_hash(lock) == tagged_hash("tally/lock", encode(lock))


def test_locks_with_the_same_keys_but_different_kinds_have_different_addresses():
    key = bytes(range(32))
    single = KeyLock(key=key)
    multi = MultiLock(threshold=1, keys=(key,))
    assert address_of(single, "tly") != address_of(multi, "tly")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda a: "tally" + a[3:],
        lambda a: a[:-1] + ("q" if a[-1] != "q" else "p"),
        lambda a: a[:10] + a[11:],
        lambda a: a[:5] + a[5].upper() + a[6:],
        lambda a: a + "q",
        lambda a: "",
        lambda a: a.replace("1", "b", 1),
    ],
    ids=[
        "other-prefix",
        "bad-checksum",
        "dropped-char",
        "mixed-case",
        "extra-char",
        "empty",
        "no-separator",
    ],
)
def test_parse_address_refuses_anything_but_an_address_of_this_network(mangle):
    address = mangle(address_of(KeyLock(key=bytes(32)), "tly"))
    with pytest.raises(BadAddressError) as info:
        parse_address(address, "tly")
    assert type(info.value) is BadAddressError
    assert info.value.code == "address.invalid"
    assert info.value.detail == {"address": address}


def test_signature_and_witness_are_outside_the_signed_body():
    witness = Witness(signatures=(Signature(signer=0, sig=bytes(64)),))
    tx = SignedTx(body=TRANSFER, witnesses=(witness,))
    assert encode(tx) == b"\x92" + encode(TRANSFER) + encode((witness,))
