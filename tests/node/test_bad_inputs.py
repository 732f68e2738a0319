"""Bad input of every kind gets its own code over HTTP, and the node keeps serving."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any  # Any: the API's JSON answers

import pytest
from starlette.testclient import TestClient

from tally.model import Signature, SignedTx, Transfer, Witness, encode, tx_id
from tests.rules.helpers import (
    ALICE,
    BOB,
    MALLORY,
    coin,
    make_issue,
    make_transfer,
    outputs_of,
    owner,
    pub,
)

OCTET = {"content-type": "application/octet-stream"}


@dataclass
class Funded:
    """A coin of Alice's that the cases spend, and the issuance that made it."""

    coin_id: bytes
    issue_raw: bytes


def _commit(api: TestClient, raw: bytes) -> Any:
    response = api.post("/v1/txs?wait=commit", content=raw, headers=OCTET)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def funded(api: TestClient) -> Funded:
    issue = make_issue("CNY", [coin("CNY", 1_000, ALICE)], nonce=1)
    assert _commit(api, encode(issue))["status"] == "committed"
    return Funded(coin_id=outputs_of(issue)[0], issue_raw=encode(issue))


def _pay(funded: Funded, **changes: object) -> SignedTx:
    outputs = changes.pop("outputs", [coin("CNY", 400, BOB), coin("CNY", 600, ALICE)])
    inputs = changes.pop("inputs", [(funded.coin_id, owner(ALICE))])
    return make_transfer(inputs, outputs, **changes)  # type: ignore[arg-type]


def _raw_transfer(cid: bytes, outputs: list[list[object]], valid_until: int = 500) -> bytes:
    # Hand-built arrays, for values that `Coin` refuses to hold: [body, witnesses].
    return encode([[2, [cid], outputs, valid_until], [[[[0, bytes(64)]]]]])


def _too_many_inputs(funded: Funded) -> bytes:
    ids = [bytes([i]) * 32 for i in range(65)]
    witnesses = tuple(Witness(signatures=(Signature(signer=0, sig=bytes(64)),)) for _ in ids)
    body = Transfer(inputs=tuple(ids), outputs=(coin("CNY", 1, BOB),), valid_until=500)
    return encode(SignedTx(body=body, witnesses=witnesses))


def _noncanonical(funded: Funded) -> bytes:
    raw = encode(_pay(funded))
    # valid_until 500 is canonically 0xcd 0x01 0xf4; the same number as a uint32 is not.
    assert raw.count(b"\xcd\x01\xf4") == 1
    return raw.replace(b"\xcd\x01\xf4", b"\xce\x00\x00\x01\xf4")


def _signature_from_another_tx(funded: Funded) -> bytes:
    other = _pay(funded, outputs=[coin("CNY", 999, BOB), coin("CNY", 1, ALICE)])
    mine = _pay(funded)
    return encode(SignedTx(body=mine.body, witnesses=other.witnesses))


def _spent_input(api: TestClient, funded: Funded) -> bytes:
    _commit(api, encode(_pay(funded)))
    return encode(_pay(funded, outputs=[coin("CNY", 1_000, BOB)]))


def _replay(api: TestClient, funded: Funded) -> bytes:
    return funded.issue_raw


@dataclass
class Case:
    name: str
    make: Callable[[TestClient, Funded], bytes]
    code: str


CASES = [
    Case("truncated bytes", lambda a, f: encode(_pay(f))[:-7], "decode.truncated"),
    Case("trailing bytes", lambda a, f: encode(_pay(f)) + b"\x00", "decode.trailing"),
    Case("non-canonical integer", lambda a, f: _noncanonical(f), "decode.noncanonical"),
    Case("wrong types", lambda a, f: encode([[2, "not-a-list", [], 5], []]), "decode.type"),
    Case("not msgpack", lambda a, f: b"\xc1", "decode.malformed"),
    Case(
        "bad utf-8 in asset",
        lambda a, f: _raw_transfer(f.coin_id, [[b"\xff", 5, [1, pub(BOB)]]]).replace(
            b"\xc4\x01\xff", b"\xa1\xff"
        ),
        "decode.malformed",
    ),
    Case("oversize transaction", lambda a, f: b"\x92" + bytes(70_000), "decode.too_large"),
    Case("too many inputs", lambda a, f: _too_many_inputs(f), "tx.too_many_inputs"),
    Case(
        "zero amount",
        lambda a, f: _raw_transfer(f.coin_id, [["CNY", 0, [1, pub(BOB)]]]),
        "amount.out_of_range",
    ),
    Case(
        "negative amount",
        lambda a, f: _raw_transfer(f.coin_id, [["CNY", -5, [1, pub(BOB)]]]),
        "amount.out_of_range",
    ),
    Case(
        "overflowing amount",
        lambda a, f: _raw_transfer(f.coin_id, [["CNY", 2**63, [1, pub(BOB)]]]),
        "amount.out_of_range",
    ),
    Case(
        "overflowing sum of outputs",
        lambda a, f: encode(_pay(f, outputs=[coin("CNY", 2**63 - 1, BOB), coin("CNY", 1, BOB)])),
        "amount.sum_overflow",
    ),
    Case(
        "malformed asset code",
        lambda a, f: _raw_transfer(f.coin_id, [["cny", 5, [1, pub(BOB)]]]),
        "asset.invalid",
    ),
    Case(
        "unknown asset",
        lambda a, f: encode(_pay(f, outputs=[coin("XYZ", 1_000, BOB)])),
        "asset.unknown",
    ),
    Case(
        "same input twice",
        lambda a, f: encode(_pay(f, inputs=[(f.coin_id, owner(ALICE))] * 2)),
        "input.duplicate",
    ),
    Case("spent input", _spent_input, "input.spent"),
    Case(
        "unknown input",
        lambda a, f: encode(_pay(f, inputs=[(b"\x42" * 32, owner(ALICE))])),
        "input.unknown",
    ),
    Case(
        "bad signature",
        lambda a, f: encode(
            SignedTx(
                body=_pay(f).body,
                witnesses=(Witness(signatures=(Signature(signer=0, sig=b"\x01" * 64),)),),
            )
        ),
        "sig.invalid",
    ),
    Case(
        "signature made for another transaction",
        lambda a, f: _signature_from_another_tx(f),
        "sig.invalid",
    ),
    Case(
        "wrong key",
        lambda a, f: encode(_pay(f, inputs=[(f.coin_id, owner(MALLORY))])),
        "sig.invalid",
    ),
    Case("expired window", lambda a, f: encode(_pay(f, valid_until=0)), "window.expired"),
    Case("window too far ahead", lambda a, f: encode(_pay(f, valid_until=5_000)), "window.too_far"),
    Case(
        "issue by an unregistered key",
        lambda a, f: encode(make_issue("CNY", [coin("CNY", 5, MALLORY)], issuer=MALLORY)),
        "issue.unauthorized",
    ),
    Case(
        "unbalanced transfer",
        lambda a, f: encode(_pay(f, outputs=[coin("CNY", 1_001, BOB)])),
        "value.unbalanced",
    ),
    Case(
        "wrong witness count",
        lambda a, f: encode(SignedTx(body=_pay(f).body, witnesses=())),
        "witness.count",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_transaction_is_refused_with_its_code_and_the_node_keeps_serving(
    api: TestClient, funded: Funded, case: Case
) -> None:
    raw = case.make(api, funded)
    height_before = api.get("/v1/status").json()["height"]
    response = api.post("/v1/txs?wait=commit", content=raw, headers=OCTET)
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body["code"] == case.code, body
    assert body["message"]
    # Nothing changed, and the node still commits a good transaction.
    assert api.get("/v1/status").json()["height"] == height_before
    good = make_issue("CNY", [coin("CNY", 1, BOB)], nonce=777)
    assert _commit(api, encode(good))["status"] == "committed"


def test_replayed_transaction_gets_its_first_answer(api: TestClient, funded: Funded) -> None:
    pay = encode(_pay(funded))
    first = _commit(api, pay)
    again = _commit(api, pay)
    assert again == first
    assert api.get("/v1/supply").json()["assets"]["CNY"]["outstanding"] == "1000"


def test_second_pending_spend_of_a_coin_is_a_mempool_conflict(
    api: TestClient, funded: Funded
) -> None:
    node = api.app.state.node  # type: ignore[attr-defined]
    first = _pay(funded)
    second = _pay(funded, outputs=[coin("CNY", 1_000, BOB)])
    node.mempool.add(first, tx_id(first.body))  # held pending: the orderer commits it later
    response = api.post("/v1/txs", content=encode(second), headers=OCTET)
    assert response.status_code == 409
    assert response.json()["code"] == "mempool.conflict"


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b"{not json", "application/json", "request.invalid"),
        (b'{"tx": 5}', "application/json", "request.invalid"),
        (b'{"tx": "zz"}', "application/json", "request.invalid"),
        (b"[]", "application/json", "request.invalid"),
        (b"x", "text/plain", "request.media_type"),
    ],
)
def test_malformed_request_bodies_are_refused(
    api: TestClient, body: bytes, content_type: str, code: str
) -> None:
    response = api.post("/v1/txs", content=body, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500
    assert response.json()["code"] == code
    assert api.get("/v1/status").status_code == 200


def test_batch_body_that_is_not_an_array_of_bytes_is_refused(api: TestClient) -> None:
    response = api.post("/v1/txs/batch", content=encode([1, 2]), headers=OCTET)
    assert response.status_code == 400
    assert response.json()["code"] == "decode.type"
