"""Every decoder under atheris for TALLY_FUZZ_SECONDS: 20 s by default, an hour in test-slow."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tally.crypto.schnorr import PrivateKey
from tally.model import (
    Block,
    Coin,
    DoubleSpendProof,
    Header,
    KeyLock,
    OfflineLock,
    Receipt,
    Signature,
    SignedTx,
    Transfer,
    Witness,
    encode,
    sighash,
    tx_id,
)
from tally.model.genesis import Genesis
from tally.model.params import Params

HARNESS = Path(__file__).with_name("fuzz_decoders.py")
SECONDS = int(os.environ.get("TALLY_FUZZ_SECONDS", "20"))
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "fuzz"


def _seeds() -> dict[str, list[bytes]]:
    key = PrivateKey.from_bytes((7).to_bytes(32, "big"))
    lock = KeyLock(key=key.public_key)
    tx = SignedTx(
        body=Transfer(
            inputs=(bytes(32),),
            outputs=(
                Coin(asset="CNY", amount=5, lock=lock),
                Coin(asset="USD", amount=2**40, lock=lock),
            ),
            valid_until=10,
        ),
        witnesses=(Witness(signatures=(Signature(signer=0, sig=bytes(64)),)),),
    )
    raw = encode(tx)
    header = Header(
        chain_id="tally-fuzz",
        height=1,
        prev_hash=bytes(32),
        time_ms=1,
        tx_count=1,
        tx_root=bytes(32),
        state_root=bytes(32),
    )
    block = encode(Block(header=header, txs=(tx,), receipts=(Receipt(code="ok"),)))
    genesis = encode(
        Genesis(
            chain_id="c",
            hrp="tly",
            time_ms=0,
            params=Params(),
            admins=(key.public_key,),
            admin_threshold=1,
            assets=(),
            members=(),
        )
    )
    hop = Transfer(
        inputs=(bytes(32),),
        outputs=(
            Coin(asset="CNY", amount=5, lock=OfflineLock(owner=key.public_key, unlock_height=9)),
        ),
        valid_until=10,
    )
    hops = [
        SignedTx(
            body=body,
            witnesses=(
                Witness(signatures=(Signature(signer=0, sig=key.sign(sighash("c", tx_id(body)))),)),
            ),
        )
        for body in (hop, Transfer(inputs=hop.inputs, outputs=hop.outputs, valid_until=11))
    ]
    proof = encode(
        DoubleSpendProof(
            chain_id="c", coin_id=bytes(32), owner=key.public_key, first=hops[0], second=hops[1]
        )
    )
    return {
        "double_spend_proof": [proof, proof[:-1]],
        "tx": [raw, raw[:-3]],
        "block": [block],
        "genesis": [genesis],
        "json_body": [b'{"tx": "' + raw.hex().encode() + b'"}', b"{}"],
        "batch": [encode([raw, raw])],
        "path": [b"00" * 32, b"12"],
        "canary": [b"a", b"!"],
    }


def _fuzz(target: str, seconds: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    corpus = tmp_path / target
    corpus.mkdir()
    for index, seed in enumerate(_seeds()[target]):
        (corpus / f"seed-{index}").write_bytes(seed)
    artifacts = OUTPUT / target
    artifacts.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            target,
            str(corpus),
            f"-max_total_time={seconds}",
            f"-artifact_prefix={artifacts}/",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=seconds + 120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 300)
@pytest.mark.parametrize(
    "target", ["tx", "block", "genesis", "json_body", "batch", "path", "double_spend_proof"]
)
def test_decoder_raises_only_rejections_under_fuzzing(target: str, tmp_path: Path) -> None:
    result = _fuzz(target, SECONDS, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", result.stdout)
    assert runs is not None
    assert int(runs.group(1)) > 1000, result.stdout[-2000:]


def test_fuzz_harness_fails_on_an_exception_that_is_not_a_rejection(tmp_path: Path) -> None:
    result = _fuzz("canary", 5, tmp_path)
    assert result.returncode != 0
    assert "ValueError: canary" in result.stdout
