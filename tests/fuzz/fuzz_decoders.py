"""Coverage-guided fuzzing of every decoder with atheris: only a `Rejection` may escape.

Run as a script: `python tests/fuzz/fuzz_decoders.py TARGET CORPUS_DIR -max_total_time=20`.
TARGET is one of the names in `TARGETS`. The seed corpus is written by tests/fuzz/test_fuzz.py.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["tally"]):
    from tally.model import (
        Params,
        Rejection,
        decode,
        decode_block,
        decode_double_spend_proof,
        decode_tx,
    )
    from tally.model.genesis import Genesis
    from tally.node.requests import parse_batch, parse_height, parse_hex_id, parse_tx_json
    from tally.rules import check_tx, verify_double_spend_proof

PARAMS = Params()


def _tx(data: bytes) -> None:
    check_tx(decode_tx(data, PARAMS), PARAMS)


def _block(data: bytes) -> None:
    decode_block(data, PARAMS)


def _genesis(data: bytes) -> None:
    decode(data, Genesis)


def _double_spend_proof(data: bytes) -> None:
    verify_double_spend_proof(decode_double_spend_proof(data, PARAMS))


def _json_body(data: bytes) -> None:
    _tx(parse_tx_json(data))


def _batch(data: bytes) -> None:
    for raw in parse_batch(data):
        _tx(raw)


def _path(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    for parse in (lambda t: parse_hex_id(t, "id"), parse_height):
        with contextlib.suppress(Rejection):
            parse(text)


def _canary(data: bytes) -> None:
    # Proves the harness fails on anything but a Rejection: the test expects a crash here.
    if data.startswith(b"!"):
        raise ValueError("canary")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "canary": _canary,
    "tx": _tx,
    "block": _block,
    "genesis": _genesis,
    "double_spend_proof": _double_spend_proof,
    "json_body": _json_body,
    "batch": _batch,
    "path": _path,
}


def main() -> None:
    """Fuzz the target named by the first argument; the rest go to libFuzzer."""
    target = TARGETS[sys.argv[1]]

    def test_one_input(data: bytes) -> None:
        with contextlib.suppress(Rejection):  # the only acceptable way to refuse input
            target(data)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
