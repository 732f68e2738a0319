"""Write tests/vectors/model_encoding.json: canonical encodings and ids of fixed objects.

Run from the repository root:

    PYTHONPATH=src python tests/vectors/make_model_vectors.py

Each vector names a protocol object's type, gives its canonical bytes in hex, its value in
the MessagePack data model (arrays as JSON lists, integers as JSON numbers, strings as
JSON strings, byte strings as {"bin": hex}), and the ids derived from it: transaction ids,
sighashes, coin ids, block hashes, the genesis hash, lock hashes and addresses. Keys are
fixed (key i is the secret scalar i + 1) and signatures use all-zero auxiliary data, so
the file is the same on every run; `tests/model/test_vectors.py` replays it, and another
implementation can too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from tally.crypto import PrivateKey
from tally.model import (
    MAX_AMOUNT,
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
    address_of,
    block_hash,
    coin_id,
    encode,
    genesis_hash,
    lock_hash,
    sighash,
    tx_id,
)
from tally.rules import commit_message

OUTPUT = Path(__file__).resolve().parent / "model_encoding.json"
CHAIN_ID = "tally-test"
HRP = "tly"


def key(index: int) -> PrivateKey:
    return PrivateKey.from_bytes((index + 1).to_bytes(32, "big"))


def pub(index: int) -> bytes:
    return key(index).public_key


def data_model(value: Any) -> Any:
    """The MessagePack data model of decoded bytes, as JSON can carry it."""
    if isinstance(value, bytes):
        return {"bin": value.hex()}
    if isinstance(value, list):
        return [data_model(item) for item in value]
    return value


def sign(body: Any, signers: list[list[tuple[int, int]]]) -> SignedTx:
    msg = sighash(CHAIN_ID, tx_id(body))
    return SignedTx(
        body=body,
        witnesses=tuple(
            Witness(signatures=tuple(Signature(signer=s, sig=key(k).sign(msg)) for s, k in w))
            for w in signers
        ),
    )


def vector(name: str, obj: Any, **ids: Any) -> dict[str, Any]:
    encoded = encode(obj)
    return {
        "name": name,
        "type": type(obj).__name__,
        "encoding": encoded.hex(),
        "value": data_model(msgspec.msgpack.decode(encoded)),
        "ids": ids,
    }


def lock_vector(name: str, lock: Any) -> dict[str, Any]:
    return vector(name, lock, lock_hash=lock_hash(lock).hex(), address=address_of(lock, HRP))


def body_vector(name: str, body: Any) -> dict[str, Any]:
    txid = tx_id(body)
    ids: dict[str, Any] = {"tx_id": txid.hex(), "sighash": sighash(CHAIN_ID, txid).hex()}
    outputs = getattr(body, "outputs", None)
    if outputs is not None:
        ids["coin_ids"] = [coin_id(txid, i).hex() for i in range(len(outputs))]
    return vector(name, body, **ids)


def signed_vector(name: str, tx: SignedTx, signers: list[list[int]]) -> dict[str, Any]:
    txid = tx_id(tx.body)
    return vector(
        name,
        tx,
        tx_id=txid.hex(),
        sighash=sighash(CHAIN_ID, txid).hex(),
        signer_keys=[[pub(k).hex() for k in witness] for witness in signers],
    )


def build() -> list[dict[str, Any]]:
    key_lock = KeyLock(key=pub(30))
    multi = MultiLock(threshold=2, keys=(pub(30), pub(31), pub(32)))
    escrow = EscrowLock(payer=pub(30), payee=pub(31), expiry=100)
    issue = Issue(
        asset="CNY",
        issuer=pub(10),
        outputs=(
            Coin(asset="CNY", amount=12_345, lock=key_lock),
            Coin(asset="CNY", amount=127, lock=multi),
            Coin(asset="CNY", amount=128, lock=escrow),
        ),
        reserve_ref=bytes(range(32)),
        nonce=7,
        valid_until=100,
    )
    issued = [coin_id(tx_id(issue), i) for i in range(3)]
    transfer = Transfer(
        inputs=(issued[0], issued[1]),
        outputs=(
            Coin(asset="CNY", amount=12_000, lock=KeyLock(key=pub(31))),
            Coin(asset="CNY", amount=472, lock=key_lock),
        ),
        valid_until=101,
    )
    redeem = Redeem(asset="CNY", inputs=(issued[2],), account=b"reserve-account-1", valid_until=102)
    governs = [
        Govern(action=RegisterAsset(asset="EUR", issuer=pub(12)), nonce=1, valid_until=103),
        Govern(action=AddMember(name="member-1", key=pub(21)), nonce=2, valid_until=104),
        Govern(action=RevokeMember(key=pub(20)), nonce=3, valid_until=105),
        Govern(action=SetParams(params=Params(max_inputs=32)), nonce=4, valid_until=106),
    ]
    signed_issue = sign(issue, [[(0, 10)]])
    signed_transfer = sign(transfer, [[(0, 30)], [(0, 30), (2, 32)]])
    receipts = (Receipt(code="ok"),)
    header = Header(
        chain_id=CHAIN_ID,
        height=1,
        prev_hash=bytes([0xAA]) * 32,
        time_ms=1_700_000_001_000,
        tx_count=1,
        tx_root=bytes([0xBB]) * 32,
        state_root=bytes([0xCC]) * 32,
    )
    block = Block(header=header, txs=(signed_issue,), receipts=receipts)
    digest = block_hash(header)
    certificate = CommitCertificate(
        height=1,
        block_hash=digest,
        view=0,
        signatures=(Signature(signer=0, sig=key(20).sign(commit_message(CHAIN_ID, 1, digest, 0))),),
    )
    genesis = Genesis(
        chain_id=CHAIN_ID,
        hrp=HRP,
        time_ms=1_700_000_000_000,
        params=Params(),
        admins=(pub(0), pub(1), pub(2)),
        admin_threshold=2,
        assets=(AssetEntry(asset="CNY", issuer=pub(10)), AssetEntry(asset="USD", issuer=pub(11))),
        members=(Member(name="member-0", key=pub(20)),),
    )
    widths = Issue(
        asset="USD",
        issuer=pub(11),
        outputs=(Coin(asset="USD", amount=MAX_AMOUNT, lock=key_lock),),
        reserve_ref=bytes(32),
        nonce=-1,
        valid_until=2**64 - 1,
    )

    vectors = [
        lock_vector("key lock", key_lock),
        lock_vector("2-of-3 multisig lock", multi),
        lock_vector("escrow lock", escrow),
        vector("coin", issue.outputs[0]),
        vector("coin of the largest amount", widths.outputs[0]),
        body_vector("issue", issue),
        body_vector("issue with extreme integers", widths),
        body_vector("transfer", transfer),
        body_vector("redeem", redeem),
        *(body_vector(f"govern {type(g.action).__name__}", g) for g in governs),
        signed_vector("signed issue", signed_issue, [[10]]),
        signed_vector("signed transfer", signed_transfer, [[30], [30, 32]]),
        vector("accepted receipt", receipts[0]),
        vector("rejected receipt", Receipt(code="input.spent")),
        vector("header", header, block_hash=digest.hex()),
        vector("block", block, block_hash=digest.hex()),
        vector("commit certificate", certificate),
        vector("default params", Params()),
        vector("genesis", genesis, genesis_hash=genesis_hash(genesis).hex()),
        *offline_vectors(issued[0]),
    ]
    return vectors


def offline_vectors(purse_coin: bytes) -> list[dict[str, Any]]:
    """An offline lock, two hops of the same offline coin signed by its owner, and the proof."""
    purse = OfflineLock(owner=pub(30), unlock_height=200)
    hops = [
        Transfer(
            inputs=(purse_coin,),
            outputs=(
                Coin(asset="CNY", amount=3_520, lock=OfflineLock(owner=pub(to), unlock_height=200)),
                Coin(asset="CNY", amount=1_480, lock=purse),
            ),
            valid_until=150,
        )
        for to in (31, 32)
    ]
    first, second = (sign(hop, [[(0, 30)]]) for hop in hops)
    proof = DoubleSpendProof(
        chain_id=CHAIN_ID, coin_id=purse_coin, owner=pub(30), first=first, second=second
    )
    return [
        lock_vector("offline lock", purse),
        body_vector("offline hop", hops[0]),
        signed_vector("signed offline hop", first, [[30]]),
        vector("double-spend proof", proof),
    ]


def main() -> None:
    document = {
        "description": (
            "Canonical MessagePack encodings of Tally protocol objects and the ids derived"
            " from them. `value` is the MessagePack data model (byte strings as"
            ' {"bin": hex}); each value has exactly one encoding, integers and lengths in'
            " their shortest form. Ids: tx_id = tagged_hash('tally/tx', body);"
            " sighash = tagged_hash('tally/sighash', chain_id || 0x00 || tx_id);"
            " coin_id = tagged_hash('tally/coin', tx_id || index as 2 bytes big-endian);"
            " block_hash = tagged_hash('tally/block', header);"
            " genesis_hash = tagged_hash('tally/genesis', genesis);"
            " lock_hash = tagged_hash('tally/lock', lock); address = bech32m(hrp, lock_hash)."
            " signer_keys: per witness, the public key of each signature, in order;"
            " the certificate signs tagged_hash('tally/commit', [chain_id, height,"
            " block_hash, view]) with member 0's key (key index 20)."
        ),
        "chain_id": CHAIN_ID,
        "hrp": HRP,
        "vectors": build(),
    }
    OUTPUT.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
