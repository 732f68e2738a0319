"""Hypothesis strategies for every protocol object, within what the wire format can carry.

Integers without a narrower domain range over everything MessagePack encodes
(-2^63 to 2^64-1), so that every integer width is exercised; amounts stay in 1 to 2^63-1 and
asset codes match their pattern, since a `Coin` refuses anything else.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tally.model import (
    MAX_AMOUNT,
    MIN_AMOUNT,
    AddMember,
    AssetEntry,
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
    Member,
    MultiLock,
    OfflineLock,
    Params,
    Receipt,
    Redeem,
    RegisterAsset,
    RevokeMember,
    SetParams,
    Signature,
    SignedTx,
    Transfer,
    Witness,
)

wire_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
hashes = st.binary(min_size=32, max_size=32)
keys = st.binary(min_size=32, max_size=32)
signature_bytes = st.binary(min_size=64, max_size=64)
amounts = st.integers(min_value=MIN_AMOUNT, max_value=MAX_AMOUNT)
asset_codes = st.from_regex(r"[A-Z][A-Z0-9]{1,11}", fullmatch=True)
texts = st.text(max_size=40)

params = st.builds(
    Params,
    max_tx_bytes=wire_ints,
    max_inputs=wire_ints,
    max_outputs=wire_ints,
    max_block_txs=wire_ints,
    max_block_bytes=wire_ints,
    max_window=wire_ints,
    block_interval_ms=wire_ints,
)

key_locks = st.builds(KeyLock, key=keys)
multi_locks = st.builds(MultiLock, threshold=wire_ints, keys=st.lists(keys, max_size=4).map(tuple))
escrow_locks = st.builds(EscrowLock, payer=keys, payee=keys, expiry=wire_ints)
offline_locks = st.builds(OfflineLock, owner=keys, unlock_height=wire_ints)
locks = st.one_of(key_locks, multi_locks, escrow_locks, offline_locks)

coins = st.builds(Coin, asset=asset_codes, amount=amounts, lock=locks)
coin_tuples = st.lists(coins, max_size=3).map(tuple)
id_tuples = st.lists(hashes, max_size=3).map(tuple)

signatures = st.builds(Signature, signer=wire_ints, sig=signature_bytes)
witnesses = st.builds(Witness, signatures=st.lists(signatures, max_size=3).map(tuple))

issues = st.builds(
    Issue,
    asset=asset_codes,
    issuer=keys,
    outputs=coin_tuples,
    reserve_ref=hashes,
    nonce=wire_ints,
    valid_until=wire_ints,
)
transfers = st.builds(Transfer, inputs=id_tuples, outputs=coin_tuples, valid_until=wire_ints)
redeems = st.builds(
    Redeem,
    asset=asset_codes,
    inputs=id_tuples,
    account=st.binary(max_size=64),
    valid_until=wire_ints,
)
register_assets = st.builds(RegisterAsset, asset=asset_codes, issuer=keys)
add_members = st.builds(AddMember, name=st.text(min_size=1, max_size=64), key=keys)
revoke_members = st.builds(RevokeMember, key=keys)
set_params = st.builds(SetParams, params=params)
govern_actions = st.one_of(register_assets, add_members, revoke_members, set_params)
governs = st.builds(Govern, action=govern_actions, nonce=wire_ints, valid_until=wire_ints)
tx_bodies = st.one_of(issues, transfers, redeems, governs)
signed_txs = st.builds(
    SignedTx, body=tx_bodies, witnesses=st.lists(witnesses, max_size=3).map(tuple)
)

receipts = st.builds(Receipt, code=texts)
headers = st.builds(
    Header,
    chain_id=texts,
    height=wire_ints,
    prev_hash=hashes,
    time_ms=wire_ints,
    tx_count=wire_ints,
    tx_root=hashes,
    state_root=hashes,
)
blocks = st.builds(
    Block,
    header=headers,
    txs=st.lists(signed_txs, max_size=2).map(tuple),
    receipts=st.lists(receipts, max_size=2).map(tuple),
)
certificates = st.builds(
    CommitCertificate,
    height=wire_ints,
    block_hash=hashes,
    view=wire_ints,
    signatures=st.lists(signatures, max_size=3).map(tuple),
)
double_spend_proofs = st.builds(
    DoubleSpendProof,
    chain_id=texts,
    coin_id=hashes,
    owner=keys,
    first=signed_txs,
    second=signed_txs,
)
asset_entries = st.builds(AssetEntry, asset=asset_codes, issuer=keys)
members = st.builds(Member, name=texts, key=keys)
geneses = st.builds(
    Genesis,
    chain_id=texts,
    hrp=texts,
    time_ms=wire_ints,
    params=params,
    admins=st.lists(keys, max_size=3).map(tuple),
    admin_threshold=wire_ints,
    assets=st.lists(asset_entries, max_size=3).map(tuple),
    members=st.lists(members, max_size=3).map(tuple),
)

PROTOCOL_OBJECTS = {
    "KeyLock": key_locks,
    "MultiLock": multi_locks,
    "EscrowLock": escrow_locks,
    "OfflineLock": offline_locks,
    "Coin": coins,
    "Signature": signatures,
    "Witness": witnesses,
    "Issue": issues,
    "Transfer": transfers,
    "Redeem": redeems,
    "RegisterAsset": register_assets,
    "AddMember": add_members,
    "RevokeMember": revoke_members,
    "SetParams": set_params,
    "Govern": governs,
    "SignedTx": signed_txs,
    "Receipt": receipts,
    "Header": headers,
    "Block": blocks,
    "CommitCertificate": certificates,
    "Params": params,
    "AssetEntry": asset_entries,
    "Member": members,
    "Genesis": geneses,
    "DoubleSpendProof": double_spend_proofs,
}
"""A strategy per protocol object, by class name."""
