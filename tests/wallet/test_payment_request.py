"""Payment requests: signing, verification, the `tally:` URI and dynamic counter codes."""

from __future__ import annotations

import threading

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.crypto import PrivateKey, tagged_hash
from tally.model import (
    MAX_AMOUNT,
    AmountOutOfRangeError,
    InvalidAssetCodeError,
    KeyLock,
    PublicKey,
    Rejection,
    address_of,
    all_rejection_classes,
)
from tally.model.encoding import decode, encode
from tally.wallet.errors import WalletError
from tally.wallet.payment_request import (
    MAX_MEMO_CHARS,
    MAX_URI_LENGTH,
    CounterSession,
    PaymentRequest,
    PaymentRequestError,
    RequestExpiredError,
    RequestMalformedError,
    RequestNetworkError,
    RequestSignatureError,
    SignedRequest,
    new_request,
    parse_uri,
    payee_lock,
    request_id,
    sign_request,
    to_uri,
    verify_request,
)

CHAIN = "tally-test"
HRP = "tly"
NOW = 1_700_000_000_000
MERCHANT_KEY = PrivateKey.generate(b"merchant".ljust(32, b"\x00"))
MERCHANT = MERCHANT_KEY.public_key
PAYEE = PublicKey(PrivateKey.generate(b"payee".ljust(32, b"\x00")).public_key)
OTHER_KEY = PrivateKey.generate(b"other".ljust(32, b"\x00"))
NONCE = bytes(range(16))

REFUSALS = (
    PaymentRequestError,
    AmountOutOfRangeError,
    InvalidAssetCodeError,
)


def make_request(**overrides) -> PaymentRequest:
    fields = {
        "chain_id": CHAIN,
        "payee": PAYEE,
        "asset": "CNY",
        "amount": 12_000,
        "memo": "order 42",
        "expires_ms": NOW + 60_000,
        "merchant": MERCHANT,
        "sequence": 0,
        "nonce": NONCE,
    }
    fields.update(overrides)
    return PaymentRequest(**fields)


def make_signed(**overrides) -> SignedRequest:
    return sign_request(make_request(**overrides), MERCHANT_KEY)


def check(uri: str, *, hrp: str = HRP, chain_id: str = CHAIN, now_ms: int = NOW) -> PaymentRequest:
    """What a payer's wallet does with a scanned URI before paying."""
    return verify_request(parse_uri(uri, hrp), chain_id=chain_id, now_ms=now_ms)


def replace_parameter(uri: str, name: str, value: str) -> str:
    head, query = uri.split("?")
    parts = [p if p.split("=")[0] != name else f"{name}={value}" for p in query.split("&")]
    return f"{head}?{'&'.join(parts)}"


def drop_parameter(uri: str, name: str) -> str:
    head, query = uri.split("?")
    return f"{head}?{'&'.join(p for p in query.split('&') if p.split('=')[0] != name)}"


# --- the request and its id ------------------------------------------------------------


def test_request_id_is_the_tagged_hash_of_the_canonical_encoding():
    req = make_request()
    encoded = msgspec.msgpack.encode(req)
    assert encode(req) == encoded
    assert msgspec.msgpack.decode(encoded) == [
        CHAIN, PAYEE, "CNY", 12_000, "order 42", NOW + 60_000, MERCHANT, 0, NONCE,
    ]  # fmt: skip
    assert request_id(req) == tagged_hash("tally/payment-request", encoded)
    assert len(request_id(req)) == 32


def test_requests_that_differ_only_in_nonce_have_different_ids():
    assert request_id(make_request()) != request_id(make_request(nonce=bytes(16)))


def test_new_request_draws_a_fresh_nonce_each_time():
    args = {
        "chain_id": CHAIN, "payee": PAYEE, "asset": "CNY", "amount": 1, "memo": "",
        "expires_ms": NOW, "merchant": MERCHANT,
    }  # fmt: skip
    first, second = new_request(**args), new_request(**args)
    assert len(first.nonce) == 16
    assert first.nonce != second.nonce
    assert request_id(first) != request_id(second)
    assert new_request(**args, nonce=NONCE) == make_request(
        amount=1, memo="", expires_ms=NOW, nonce=NONCE
    )


def test_payee_lock_is_a_key_lock_of_the_payee():
    assert payee_lock(make_request()) == KeyLock(key=PAYEE)


def test_signed_request_round_trips_through_the_canonical_encoding():
    signed = make_signed()
    assert decode(encode(signed), SignedRequest) == signed


def test_decoding_refuses_a_request_with_an_amount_out_of_range():
    fields = msgspec.msgpack.decode(encode(make_request()))
    fields[3] = 0
    with pytest.raises(AmountOutOfRangeError):
        decode(msgspec.msgpack.encode(fields), PaymentRequest)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("amount", 0, AmountOutOfRangeError),
        ("amount", -5, AmountOutOfRangeError),
        ("amount", MAX_AMOUNT + 1, AmountOutOfRangeError),
        ("amount", True, AmountOutOfRangeError),
        ("asset", "cny", InvalidAssetCodeError),
        ("asset", "C", InvalidAssetCodeError),
        ("memo", "x" * (MAX_MEMO_CHARS + 1), RequestMalformedError),
        ("memo", "pay \x1b[2J now", RequestMalformedError),
        ("memo", "lone \ud800", RequestMalformedError),
        ("chain_id", "", RequestMalformedError),
        ("chain_id", "c" * 65, RequestMalformedError),
        ("payee", PAYEE[:31], RequestMalformedError),
        ("payee", bytes(32), RequestMalformedError),  # not a point: coins to it are lost
        ("merchant", b"\xff" * 32, RequestMalformedError),
        ("expires_ms", -1, RequestMalformedError),
        ("sequence", 2**63, RequestMalformedError),
        ("sequence", 1.0, RequestMalformedError),
        ("nonce", bytes(15), RequestMalformedError),
    ],
    ids=lambda value: repr(value)[:20],
)
def test_request_with_a_field_out_of_its_rules_cannot_be_built(field, value, error):
    with pytest.raises(error) as info:
        make_request(**{field: value})
    assert type(info.value) is error
    if error is RequestMalformedError:
        assert info.value.code == "payment_request.malformed"
        assert info.value.detail["field"] == field


def test_memo_of_exactly_the_limit_and_empty_memo_are_allowed():
    assert make_request(memo="é" * MAX_MEMO_CHARS).memo == "é" * MAX_MEMO_CHARS
    assert make_request(memo="").memo == ""


# --- signing and verification ----------------------------------------------------------


def test_signed_request_verifies_and_returns_the_request():
    signed = make_signed()
    assert verify_request(signed, chain_id=CHAIN, now_ms=NOW) == signed.request


def test_signing_refuses_a_key_that_is_not_the_named_merchant():
    with pytest.raises(ValueError, match="signing key"):
        sign_request(make_request(), OTHER_KEY)


def test_verify_refuses_a_signature_by_another_key():
    req = make_request()
    forged = SignedRequest(request=req, signature=OTHER_KEY.sign(request_id(req)))
    with pytest.raises(RequestSignatureError) as info:
        verify_request(forged, chain_id=CHAIN, now_ms=NOW)
    assert info.value.code == "payment_request.signature"
    assert info.value.http_status == 400
    assert info.value.detail == {"merchant": MERCHANT.hex()}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 1_200),
        ("payee", OTHER_KEY.public_key),
        ("memo", "order 43"),
        ("expires_ms", NOW + 10**9),
        ("merchant", OTHER_KEY.public_key),
        ("sequence", 1),
        ("asset", "USD"),
    ],
)
def test_verify_refuses_a_tampered_field(field, value):
    signed = make_signed()
    tampered = SignedRequest(
        request=msgspec.structs.replace(signed.request, **{field: value}),
        signature=signed.signature,
    )
    with pytest.raises(RequestSignatureError):
        verify_request(tampered, chain_id=CHAIN, now_ms=NOW)


def test_verify_refuses_a_signature_of_the_wrong_length():
    signed = make_signed()
    short = SignedRequest(request=signed.request, signature=signed.signature[:63])
    with pytest.raises(RequestSignatureError):
        verify_request(short, chain_id=CHAIN, now_ms=NOW)


def test_verify_refuses_an_expired_request_from_its_expiry_on():
    signed = make_signed(expires_ms=NOW)
    assert verify_request(signed, chain_id=CHAIN, now_ms=NOW - 1) == signed.request
    for now in (NOW, NOW + 1):
        with pytest.raises(RequestExpiredError) as info:
            verify_request(signed, chain_id=CHAIN, now_ms=now)
        assert info.value.code == "payment_request.expired"
        assert info.value.detail == {"expires_ms": NOW, "now_ms": now}


def test_verify_refuses_a_request_for_another_chain():
    signed = make_signed(chain_id="tally-main")
    with pytest.raises(RequestNetworkError) as info:
        verify_request(signed, chain_id=CHAIN, now_ms=NOW)
    assert info.value.code == "payment_request.network"
    assert info.value.detail == {"expected": CHAIN, "found": "tally-main"}


def test_verify_checks_the_fields_again_even_of_a_request_forced_out_of_its_rules():
    signed = make_signed()
    req = signed.request
    msgspec.structs.force_setattr(req, "amount", 0)
    with pytest.raises(AmountOutOfRangeError):
        verify_request(signed, chain_id=CHAIN, now_ms=NOW)


def test_verify_checks_the_signature_before_network_and_expiry():
    signed = make_signed(chain_id="tally-main", expires_ms=NOW)
    forged = SignedRequest(request=signed.request, signature=bytes(64))
    with pytest.raises(RequestSignatureError):
        verify_request(forged, chain_id=CHAIN, now_ms=NOW)
    with pytest.raises(RequestNetworkError):
        verify_request(signed, chain_id=CHAIN, now_ms=NOW)


def test_rejection_codes_are_registered_once_with_status_400():
    registry = all_rejection_classes()
    for cls, code in [
        (RequestMalformedError, "payment_request.malformed"),
        (RequestSignatureError, "payment_request.signature"),
        (RequestExpiredError, "payment_request.expired"),
        (RequestNetworkError, "payment_request.network"),
    ]:
        assert registry[code] is cls
        assert cls.http_status == 400
        assert issubclass(cls, PaymentRequestError)
        assert issubclass(cls, WalletError)
    assert "code" not in vars(PaymentRequestError)


# --- the URI ---------------------------------------------------------------------------


def test_uri_has_the_documented_form():
    signed = make_signed(memo="2 coffees & 1 tea")
    address = address_of(KeyLock(key=PAYEE), HRP)
    assert to_uri(signed, HRP) == (
        f"tally:{address}?amount=12000&asset=CNY&memo=2%20coffees%20%26%201%20tea"
        f"&exp={NOW + 60_000}&chain=tally-test&payee={PAYEE.hex()}&merchant={MERCHANT.hex()}"
        f"&seq=0&nonce={NONCE.hex()}&sig={signed.signature.hex()}"
    )


@pytest.mark.parametrize(
    "memo", ["", "order 42", "a&b=c?d#e%f+g", "咖啡 \u00d72 — 12,00 €", "🙂" * MAX_MEMO_CHARS]
)
def test_uri_round_trips_and_verifies(memo):
    signed = make_signed(memo=memo)
    uri = to_uri(signed, HRP)
    assert uri.isascii()
    assert parse_uri(uri, HRP) == signed
    assert check(uri) == signed.request


def test_uri_parameters_may_come_in_any_order():
    signed = make_signed()
    head, query = to_uri(signed, HRP).split("?")
    reordered = f"{head}?{'&'.join(reversed(query.split('&')))}"
    assert parse_uri(reordered, HRP) == signed


def test_parse_does_not_check_the_signature_but_verify_does():
    uri = replace_parameter(to_uri(make_signed(), HRP), "amount", "1")
    assert parse_uri(uri, HRP).request.amount == 1
    with pytest.raises(RequestSignatureError):
        check(uri)


def _mutations():
    """(name, function of a valid URI giving a malformed one)."""
    payee_hex = PAYEE.hex()
    address = address_of(KeyLock(key=PAYEE), HRP)

    def typo(text: str) -> str:
        return text[:-1] + ("q" if text[-1] != "q" else "p")

    return [
        ("other scheme", lambda u: "bitcoin" + u[len("tally") :]),
        ("upper-case scheme", lambda u: "TALLY" + u[len("tally") :]),
        ("no scheme", lambda u: u[len("tally:") :]),
        ("no query", lambda u: u.split("?")[0]),
        ("empty parameter", lambda u: u + "&"),
        ("parameter without =", lambda u: u + "&flag"),
        ("unknown parameter", lambda u: u + "&tip=100"),
        ("duplicated parameter", lambda u: u + "&seq=0"),
        ("missing amount", lambda u: drop_parameter(u, "amount")),
        ("missing sig", lambda u: drop_parameter(u, "sig")),
        ("decimal amount", lambda u: replace_parameter(u, "amount", "120.00")),
        ("signed amount", lambda u: replace_parameter(u, "amount", "+12000")),
        ("leading zero", lambda u: replace_parameter(u, "amount", "012000")),
        ("underscore", lambda u: replace_parameter(u, "amount", "12_000")),
        (
            "fullwidth digits",
            lambda u: replace_parameter(u, "amount", "\uff11\uff12\uff10\uff10\uff10"),
        ),
        ("huge amount", lambda u: replace_parameter(u, "amount", "9" * 30)),
        ("empty exp", lambda u: replace_parameter(u, "exp", "")),
        ("negative seq", lambda u: replace_parameter(u, "seq", "-1")),
        ("upper-case hex", lambda u: replace_parameter(u, "payee", payee_hex.upper())),
        ("short hex", lambda u: replace_parameter(u, "nonce", NONCE.hex()[:-2])),
        ("not hex", lambda u: replace_parameter(u, "sig", "zz" * 64)),
        ("odd hex", lambda u: replace_parameter(u, "merchant", MERCHANT.hex() + "0")),
        ("raw space in memo", lambda u: replace_parameter(u, "memo", "order 42")),
        ("lower-case escape", lambda u: replace_parameter(u, "memo", "order%2f42")),
        ("needless escape", lambda u: replace_parameter(u, "memo", "%6Frder%2042")),
        ("plus for space", lambda u: replace_parameter(u, "memo", "order+42")),
        ("bad escape", lambda u: replace_parameter(u, "memo", "100%")),
        ("invalid utf-8", lambda u: replace_parameter(u, "memo", "%FF")),
        ("surrogate", lambda u: replace_parameter(u, "memo", "%ED%A0%80")),
        ("control character", lambda u: replace_parameter(u, "memo", "%1B%5B2J")),
        ("memo too long", lambda u: replace_parameter(u, "memo", "x" * 141)),
        ("empty chain", lambda u: replace_parameter(u, "chain", "")),
        ("payee not a point", lambda u: replace_parameter(u, "payee", "00" * 32)),
        ("too long", lambda u: u + "x" * MAX_URI_LENGTH),
        (
            "address of another key",
            lambda u: u.replace(address, address_of(KeyLock(key=OTHER_KEY.public_key), HRP)),
        ),
        (
            "payee other than the address",
            lambda u: replace_parameter(u, "payee", OTHER_KEY.public_key.hex()),
        ),
        (
            "upper-case address",
            lambda u: u.replace(address, address.upper()),
        ),
        ("not an address", lambda u: "tally:nonsense?" + u.split("?")[1]),
        ("empty address", lambda u: "tally:?" + u.split("?")[1]),
        ("address with a typo", lambda u: u.replace(address, typo(address))),
    ]


@pytest.mark.parametrize(("name", "mutate"), _mutations(), ids=[m[0] for m in _mutations()])
def test_parse_refuses_a_malformed_uri(name, mutate):
    uri = to_uri(make_signed(), HRP)
    check(uri)  # the unmutated URI is fine
    bad = mutate(uri)
    assert bad != uri
    with pytest.raises(RequestMalformedError) as info:
        parse_uri(bad, HRP)
    assert info.value.code == "payment_request.malformed"
    assert info.value.message.startswith("not a valid payment request URI") or (
        "field" in info.value.detail
    )


def test_parse_refuses_an_amount_of_zero_with_the_amount_code():
    uri = replace_parameter(to_uri(make_signed(), HRP), "amount", "0")
    with pytest.raises(AmountOutOfRangeError) as info:
        parse_uri(uri, HRP)
    assert info.value.code == "amount.out_of_range"


def test_parse_refuses_a_lower_case_asset_with_the_asset_code():
    uri = replace_parameter(to_uri(make_signed(), HRP), "asset", "cny")
    with pytest.raises(InvalidAssetCodeError):
        parse_uri(uri, HRP)


def test_parse_refuses_an_address_of_another_network():
    uri = to_uri(make_signed(), "tmain")
    with pytest.raises(RequestNetworkError) as info:
        parse_uri(uri, HRP)
    assert info.value.code == "payment_request.network"
    assert info.value.detail == {"expected": HRP, "found": "tmain"}
    assert parse_uri(uri, "tmain") == parse_uri(to_uri(make_signed(), HRP), HRP)


# --- properties ------------------------------------------------------------------------

_TEXT = st.characters(blacklist_categories=("Cc", "Cs"))


@st.composite
def signed_requests(draw) -> SignedRequest:
    merchant_key = PrivateKey.generate(draw(st.binary(min_size=32, max_size=32)))
    payee = PrivateKey.generate(draw(st.binary(min_size=32, max_size=32))).public_key
    req = PaymentRequest(
        chain_id=draw(st.text(_TEXT, min_size=1, max_size=64)),
        payee=payee,
        asset=draw(st.from_regex(r"[A-Z][A-Z0-9]{1,11}", fullmatch=True)),
        amount=draw(st.integers(1, MAX_AMOUNT)),
        memo=draw(st.text(_TEXT, max_size=MAX_MEMO_CHARS)),
        expires_ms=draw(st.integers(1, 2**63 - 1)),
        merchant=merchant_key.public_key,
        sequence=draw(st.integers(0, 2**63 - 1)),
        nonce=draw(st.binary(min_size=16, max_size=16)),
    )
    return sign_request(req, merchant_key)


@given(signed=signed_requests())
@settings(max_examples=150, deadline=None)
def test_property_uri_round_trips(signed):
    uri = to_uri(signed, HRP)
    assert uri.isascii()
    assert parse_uri(uri, HRP) == signed
    chain = signed.request.chain_id
    assert verify_request(parse_uri(uri, HRP), chain_id=chain, now_ms=0) == signed.request


# Characters a corrupted or hostile URI might carry: every printable ASCII one (including
# the URI's own delimiters), plus a few beyond ASCII.
_CHARACTERS = [chr(c) for c in range(32, 127)] + ["é", "\uff11", "\u00a0", "\n"]


def _changes(uri: str, index: int, char: str) -> list[str]:
    """The URI with `char` put in place of, and inserted before, position `index`, and with
    that position deleted; never the URI itself."""
    changed = {uri[:index] + uri[index + 1 :], uri[:index] + char + uri[index:]}
    if char != uri[index]:
        changed.add(uri[:index] + char + uri[index + 1 :])
    return sorted(changed - {uri})


@given(signed=signed_requests(), data=st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_any_single_character_change_is_refused(signed, data):
    uri = to_uri(signed, HRP)
    index = data.draw(st.integers(0, len(uri) - 1), label="index")
    # Besides any character, the likeliest near misses: the same letter in the other case
    # (hex and percent escapes have one spelling) and a leading zero.
    char = data.draw(
        st.sampled_from([uri[index].swapcase(), "0"]) | st.sampled_from(_CHARACTERS),
        label="char",
    )
    for changed in _changes(uri, index, char):
        with pytest.raises(REFUSALS):
            check(changed, chain_id=signed.request.chain_id, now_ms=0)


def test_every_single_character_change_of_one_uri_is_refused():
    # Exhaustive over the positions of one URI, so that no position is left to chance.
    uri = to_uri(make_signed(memo="a b/é"), HRP)
    for index, original in enumerate(uri):
        for char in {original.swapcase(), "0", "9", "a", "&", "=", "%", "?", ":", "1"}:
            for changed in _changes(uri, index, char):
                with pytest.raises(REFUSALS):
                    check(changed)


# --- counter sessions ------------------------------------------------------------------


def _payee_source(start: int = 0):
    counter = iter(range(start, start + 10_000))

    def next_payee():
        return PublicKey(PrivateKey.generate(next(counter).to_bytes(32, "big")).public_key)

    return next_payee


def test_counter_session_makes_a_new_code_for_every_sale():
    session = CounterSession(MERCHANT_KEY, CHAIN, "CNY", 120, _payee_source())
    sales = [session.new_sale(1_000 * (i + 1), f"sale {i}", NOW + i) for i in range(5)]
    uris = [to_uri(sale, HRP) for sale in sales]
    assert len(set(uris)) == 5
    assert [sale.request.sequence for sale in sales] == [1, 2, 3, 4, 5]
    assert len({sale.request.payee for sale in sales}) == 5
    assert len({request_id(sale.request) for sale in sales}) == 5
    assert session.sequence == 5
    for i, uri in enumerate(uris):
        req = check(uri, now_ms=NOW + i)
        assert req.merchant == MERCHANT
        assert req.amount == 1_000 * (i + 1)
        assert req.memo == f"sale {i}"
        assert req.asset == "CNY"
        assert req.expires_ms == NOW + i + 120_000


def test_counter_session_codes_differ_even_for_equal_sales_and_payees():
    session = CounterSession(MERCHANT_KEY, CHAIN, "CNY", 60, lambda: PAYEE)
    first = session.new_sale(500, "coffee", NOW)
    second = session.new_sale(500, "coffee", NOW)
    assert to_uri(first, HRP) != to_uri(second, HRP)
    assert request_id(first.request) != request_id(second.request)


def test_counter_session_requests_expire_after_expiry_s():
    session = CounterSession(MERCHANT_KEY, CHAIN, "CNY", 30, _payee_source())
    uri = to_uri(session.new_sale(500, "coffee", NOW), HRP)
    assert check(uri, now_ms=NOW + 29_999).amount == 500
    with pytest.raises(RequestExpiredError):
        check(uri, now_ms=NOW + 30_000)


def test_counter_session_resumes_from_a_sequence_and_a_refused_sale_uses_none():
    session = CounterSession(MERCHANT_KEY, CHAIN, "CNY", 60, _payee_source(), sequence=41)
    with pytest.raises(AmountOutOfRangeError):
        session.new_sale(0, "nothing", NOW)
    with pytest.raises(RequestMalformedError):
        session.new_sale(100, "x" * (MAX_MEMO_CHARS + 1), NOW)
    assert session.sequence == 41
    assert session.new_sale(100, "tea", NOW).request.sequence == 42


def test_counter_session_numbers_sales_uniquely_across_threads():
    session = CounterSession(MERCHANT_KEY, CHAIN, "CNY", 60, _payee_source())
    results: list[SignedRequest] = []
    guard = threading.Lock()

    def sell():
        for _ in range(20):
            sale = session.new_sale(100, "", NOW)
            with guard:
                results.append(sale)

    threads = [threading.Thread(target=sell) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sale.request.sequence for sale in results) == list(range(1, 121))


@pytest.mark.parametrize(
    ("asset", "expiry_s", "sequence"),
    [("cny", 60, 0), ("CNY", 0, 0), ("CNY", -1, 0), ("CNY", 60, -1), ("CNY", 60, 2**63 - 1)],
)
def test_counter_session_refuses_a_configuration_no_request_could_carry(asset, expiry_s, sequence):
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the bad setting
        CounterSession(MERCHANT_KEY, CHAIN, asset, expiry_s, _payee_source(), sequence=sequence)


def test_every_refusal_is_a_rejection():
    for cls in (*REFUSALS, RequestMalformedError, RequestNetworkError):
        assert issubclass(cls, Rejection)
