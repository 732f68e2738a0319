"""Offline messages on the wire, and the negotiation both devices run."""

from __future__ import annotations

import msgspec
import pytest

from tally.model import encode
from tally.wallet.offline.errors import (
    OfflineFeatureError,
    OfflineMessageError,
    OfflineNetworkError,
    OfflineReplayError,
    OfflineVersionError,
)
from tally.wallet.offline.messages import (
    MAGIC,
    NONCE_SIZE,
    PROTOCOL_VERSION,
    Hello,
    agreement_id,
    decode_hello,
    decode_message,
    decode_payment,
    encode_message,
)
from tally.wallet.offline.negotiation import make_features, negotiate, new_hello
from tests.rules.helpers import ALICE, BOB, CHAIN_ID, pub

from .chains import hello, pay, purse


def test_a_hello_round_trips_and_has_a_fresh_nonce_each_time():
    first, second = hello("payee", owner=BOB), hello("payee", owner=BOB)
    assert first.nonce != second.nonce
    assert len(first.nonce) == NONCE_SIZE
    raw = encode_message(first)
    assert decode_hello(raw) == first
    assert decode_message(raw) == first
    with pytest.raises(OfflineMessageError):
        decode_payment(raw)


def test_a_payment_round_trips_and_is_refused_as_a_hello():
    [coin] = purse(ALICE, [5000])
    paid = pay([coin], ALICE, BOB, 3520)
    raw = encode_message(paid.payment)
    assert decode_payment(raw) == paid.payment
    with pytest.raises(OfflineMessageError):
        decode_hello(raw)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        encode(("not-tally", PROTOCOL_VERSION, 1)),
        encode((MAGIC, PROTOCOL_VERSION, [9, "no such message"])),
        encode((MAGIC, PROTOCOL_VERSION)),
    ],
)
def test_garbage_is_refused_as_a_malformed_message(data):
    with pytest.raises(OfflineMessageError) as info:
        decode_message(data)
    assert info.value.code == "offline.message"


def test_a_message_that_is_not_canonical_is_refused():
    raw = encode_message(hello("payer"))
    # The version 1 written as a 16-bit integer decodes to the same value, but is not canonical.
    wide = raw.replace(encode(MAGIC) + b"\x01", encode(MAGIC) + b"\xcd\x00\x01", 1)
    assert wide != raw
    with pytest.raises(OfflineMessageError):
        decode_message(wide)


def test_a_message_of_an_unknown_version_is_refused_as_such():
    raw = encode((MAGIC, 7, msgspec.msgpack.decode(encode(hello("payer")))))
    with pytest.raises(OfflineVersionError) as info:
        decode_message(raw)
    assert info.value.detail["version"] == 7


def test_negotiation_keeps_what_both_support():
    payer = new_hello(
        "payer",
        CHAIN_ID,
        make_features(split=True, multi_hop=False, assets=["USD", "CNY"], max_amount=900),
        versions=[1, 2],
    )
    payee = new_hello(
        "payee",
        CHAIN_ID,
        make_features(split=True, multi_hop=True, assets=["CNY", "EUR"], max_amount=5000),
        receive_key=pub(BOB),
    )
    agreement = negotiate(payer, payee)
    assert agreement.version == 1
    assert agreement.features.split is True
    assert agreement.features.multi_hop is False
    assert agreement.features.assets == ("CNY",)
    assert agreement.features.max_amount == 900
    assert (agreement.payer_nonce, agreement.payee_nonce) == (payer.nonce, payee.nonce)
    assert agreement.payee == pub(BOB)
    assert agreement_id(agreement) == agreement_id(negotiate(payer, payee))


def test_negotiation_refuses_what_cannot_work():
    payer, payee = hello("payer"), hello("payee", owner=BOB)
    with pytest.raises(OfflineVersionError):
        negotiate(msgspec.structs.replace(payer, versions=(99,)), payee)
    with pytest.raises(OfflineNetworkError):
        negotiate(msgspec.structs.replace(payer, chain_id="elsewhere"), payee)
    with pytest.raises(OfflineReplayError):
        negotiate(payer, msgspec.structs.replace(payee, nonce=payer.nonce))
    with pytest.raises(OfflineMessageError):
        negotiate(payee, payer)
    usd = make_features(split=True, multi_hop=True, assets=["USD"], max_amount=10)
    with pytest.raises(OfflineFeatureError):
        negotiate(msgspec.structs.replace(payer, features=usd), payee)


def test_a_hello_names_a_key_exactly_when_it_is_a_payees():
    features = make_features(split=True, multi_hop=True, assets=["CNY"], max_amount=1)
    with pytest.raises(OfflineMessageError):
        new_hello("payee", CHAIN_ID, features)
    with pytest.raises(OfflineMessageError):
        new_hello("payer", CHAIN_ID, features, receive_key=pub(ALICE))
    with pytest.raises(OfflineMessageError):
        new_hello("thief", CHAIN_ID, features)
    assert isinstance(new_hello("payer", CHAIN_ID, features), Hello)
