"""Every refusal of the issuer API: no credentials, forged ones, another operator's, bad input.

Each is refused with its status and code, and nothing changes: the audit (every account,
every certificate, the ledger's supply) and the operator list are the same before and after,
and the service goes on serving.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tally.services.common.auth import sign_headers
from tally.services.issuer.client import Audit, Issuance, OperatorAccount
from tests.services.harness import BAD_AMOUNTS, label_key, signed
from tests.services.issuer.helpers import (
    IssuerEnv,
    Operator,
    assert_balanced,
    comparable,
    redeem_on_ledger,
)

ZERO_TXID = "00" * 32
NOT_A_POINT = "ff" * 32  # x above the field size: no point on secp256k1


Case = tuple[str, str, Any, int, str]
"""method, path, body (JSON document or raw bytes), expected status, expected code"""


@dataclass
class World:
    """Two operators with reserve; A has issued once."""

    env: IssuerEnv
    a: Operator
    b: Operator
    a_issuance: Issuance


@pytest.fixture(scope="module")
def world(issuer_env: IssuerEnv) -> World:
    env = issuer_env
    a = env.register("refusal-a", reserve=50_000)
    b = env.register("refusal-b", reserve=50_000)
    with env.client(a.key) as client:
        issuance = client.request_issuance(5_000, "a-1")
    return World(env, a, b, issuance)


def snapshot(env: IssuerEnv) -> tuple[Audit, tuple[OperatorAccount, ...]]:
    """Everything a refusal must leave as it was."""
    with env.admin() as admin:
        operators = admin.operators()
    return comparable(assert_balanced(env)), tuple(operators)


def operator_endpoints(world: World) -> list[tuple[str, str, object]]:
    return [
        ("GET", "/v1/account", None),
        ("POST", "/v1/issuance", {"amount": 1_000, "idempotency_key": "never"}),
        ("GET", "/v1/issuances", None),
        ("GET", f"/v1/issuances/{world.a_issuance.id}", None),
        ("POST", "/v1/redemptions", {"txid": world.a_issuance.txid}),
    ]


def admin_endpoints(world: World) -> list[tuple[str, str, object]]:
    fresh = label_key("refusal-never")
    return [
        (
            "POST",
            "/v1/admin/operators",
            {"name": "x", "key": fresh.public_key.hex(), "float_key": fresh.public_key.hex()},
        ),
        ("GET", "/v1/admin/operators", None),
        ("GET", f"/v1/admin/operators/{world.a.id}", None),
        (
            "POST",
            f"/v1/admin/operators/{world.a.id}/reserves",
            {"amount": 1_000_000, "idempotency_key": "never"},
        ),
    ]


def send(
    http: httpx.Client, method: str, path: str, body: object, headers: dict[str, str]
) -> httpx.Response:
    if isinstance(body, bytes):
        content = body
    else:
        content = b"" if body is None else json.dumps(body).encode()
    return http.request(method, path, content=content, headers=headers)


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    document = response.json()
    assert (response.status_code, document.get("code")) == (status, code), (
        response.request.method,
        response.request.url.path,
        document,
    )
    assert document["message"]
    return dict(document)


def test_every_endpoint_without_credentials_is_refused(world: World) -> None:
    before = snapshot(world.env)
    with world.env.raw() as http:
        for method, path, body in operator_endpoints(world) + admin_endpoints(world):
            response = send(http, method, path, body, {"content-type": "application/json"})
            assert_refused(response, 401, "auth.missing")
    assert snapshot(world.env) == before


def test_forged_signatures_are_refused(world: World) -> None:
    env, a, b = world.env, world.a, world.b
    before = snapshot(env)
    stale = time.time_ns() // 1_000_000 - 10 * 60 * 1000
    with env.raw() as http:
        for method, path, body in operator_endpoints(world):
            content, headers = signed(a.key, method, path, body)
            forgeries = [
                # A's signature presented as B's key.
                (content, {**headers, "X-Tally-Key": b.key.public_key.hex()}),
                # A signature by someone else presented as B's key.
                (
                    content,
                    signed(label_key("mallory"), method, path, body)[1]
                    | {"X-Tally-Key": b.key.public_key.hex()},
                ),
                # Signed for another path.
                (content, signed(a.key, method, "/v1/audit", body)[1]),
                # Signed long ago.
                (content, {**headers, **sign_headers(a.key, method, path, content, stale)}),
                # Not hex.
                (content, {**headers, "X-Tally-Signature": "zz" * 64}),
                # One header missing.
                (content, {k: v for k, v in headers.items() if k != "X-Tally-Time"}),
            ]
            if method == "POST":
                # The body changed after signing: a bigger amount, another txid.
                tampered = dict(body)  # type: ignore[call-overload]
                tampered.update({"amount": 9_999} if "amount" in tampered else {"txid": ZERO_TXID})
                forgeries.append((json.dumps(tampered).encode(), headers))
            for forged_content, forged_headers in forgeries:
                response = http.request(
                    method, path, content=forged_content, headers=forged_headers
                )
                assert_refused(response, 401, "auth.invalid")
    assert snapshot(env) == before


def test_a_key_that_is_no_operators_is_forbidden(world: World) -> None:
    before = snapshot(world.env)
    stranger = label_key("refusal-stranger")
    with world.env.raw() as http:
        for method, path, body in operator_endpoints(world):
            content, headers = signed(stranger, method, path, body)
            document = assert_refused(
                http.request(method, path, content=content, headers=headers), 403, "auth.forbidden"
            )
            assert "not a registered operator" in str(document["message"])
    assert snapshot(world.env) == before


def test_an_operator_sees_and_moves_only_its_own_account(world: World) -> None:
    env, a, b = world.env, world.a, world.b
    with env.client(b.key) as client:
        account = client.account()
        assert (account.id, account.key) == (b.id, b.key.public_key.hex())
        assert (account.available, account.frozen) == (50_000, 0)
        assert client.issuances() == []
    before = snapshot(env)
    with env.raw() as http:
        content, headers = signed(b.key, "GET", f"/v1/issuances/{world.a_issuance.id}")
        response = http.get(f"/v1/issuances/{world.a_issuance.id}", headers=headers)
        assert_refused(response, 403, "auth.forbidden")

        # A redemption crediting an account that is no operator's (yet): neither B nor A,
        # who handed the coins in, may claim it.
        late_key = label_key("refusal-late/sign")
        unclaimed = redeem_on_ledger(
            env, a, [world.a_issuance.coin_id], account=late_key.public_key
        )
        for caller in (b, a):
            content, headers = signed(caller.key, "POST", "/v1/redemptions", {"txid": unclaimed})
            response = http.post("/v1/redemptions", content=content, headers=headers)
            assert_refused(response, 403, "auth.forbidden")
    # The coins are gone from the ledger, but no operator's reserve moved.
    after_audit, after_operators = snapshot_unbalanced(env)
    assert after_operators == before[1]
    assert after_audit.reserves == before[0].reserves
    assert after_audit.ledger.outstanding == before[0].ledger.outstanding - 5_000
    assert not after_audit.balanced
    # Once the account's holder is registered it claims the release, and the books balance.
    late = env.register("refusal-late")
    assert late.key == late_key
    with env.client(late.key) as client:
        assert client.redeem(unclaimed).amount == 5_000
        mine = client.account()
    # It redeemed coins issued to another operator: its frozen reserve goes below zero.
    assert (mine.available, mine.frozen, mine.redeemed) == (5_000, -5_000, 5_000)
    assert_balanced(env)

    # A redemption crediting A's account: B may not release it; A may.
    with env.client(a.key) as client:
        again = client.request_issuance(3_000, "a-2")
    txid = redeem_on_ledger(env, a, [again.coin_id])
    with env.raw() as http:
        content, headers = signed(b.key, "POST", "/v1/redemptions", {"txid": txid})
        response = http.post("/v1/redemptions", content=content, headers=headers)
        assert_refused(response, 403, "auth.forbidden")
    with env.client(a.key) as client:
        assert client.redeem(txid).operator_id == a.id
    with env.client(b.key) as client:
        assert client.account() == account


def snapshot_unbalanced(env: IssuerEnv) -> tuple[Audit, tuple[OperatorAccount, ...]]:
    with env.admin() as admin:
        operators = admin.operators()
    return comparable(env.audit()), tuple(operators)


def test_admin_endpoints_refuse_anything_but_the_admin_token(world: World) -> None:
    before = snapshot(world.env)
    wrong = [
        ({"authorization": "Bearer not-the-token"}, "auth.invalid"),
        ({"authorization": f"Bearer {world.env.admin_token}x"}, "auth.invalid"),
        ({"authorization": f"Basic {world.env.admin_token}"}, "auth.invalid"),
        ({"authorization": "Bearer"}, "auth.invalid"),
    ]
    with world.env.raw() as http:
        for method, path, body in admin_endpoints(world):
            for headers, code in wrong:
                response = send(http, method, path, body, headers)
                assert_refused(response, 401, code)
            # An operator's signature is no admin credential.
            content, headers = signed(world.a.key, method, path, body)
            response = http.request(method, path, content=content, headers=headers)
            assert_refused(response, 401, "auth.missing")
    assert snapshot(world.env) == before


def test_bad_input_gets_clear_errors_and_changes_nothing(world: World) -> None:
    env, a = world.env, world.a
    before = snapshot(env)
    admin = {"authorization": f"Bearer {env.admin_token}", "content-type": "application/json"}
    good_key = label_key("refusal-new").public_key.hex()
    existing_key = a.key.public_key.hex()
    reserves = f"/v1/admin/operators/{a.id}/reserves"
    admin_cases: list[Case] = [
        ("POST", "/v1/admin/operators", b"{not json", 400, "request.invalid"),
        ("POST", "/v1/admin/operators", b"", 400, "request.invalid"),
        ("POST", "/v1/admin/operators", [], 400, "request.invalid"),
        ("POST", "/v1/admin/operators", {"name": "x"}, 400, "request.invalid"),
        (
            "POST",
            "/v1/admin/operators",
            {"name": "x", "key": good_key, "float_key": good_key, "extra": 1},
            400,
            "request.invalid",
        ),
        (
            "POST",
            "/v1/admin/operators",
            {"name": "", "key": good_key, "float_key": good_key},
            400,
            "request.invalid",
        ),
        (
            "POST",
            "/v1/admin/operators",
            {"name": "x", "key": "zz", "float_key": good_key},
            400,
            "request.invalid",
        ),
        (
            "POST",
            "/v1/admin/operators",
            {"name": "x", "key": good_key[:-2], "float_key": good_key},
            400,
            "request.invalid",
        ),
        (
            "POST",
            "/v1/admin/operators",
            {"name": "x", "key": NOT_A_POINT, "float_key": good_key},
            400,
            "request.invalid",
        ),
        (
            "POST",
            "/v1/admin/operators",
            {"name": "x", "key": good_key, "float_key": NOT_A_POINT},
            400,
            "request.invalid",
        ),
        (
            "POST",
            "/v1/admin/operators",
            {"name": "x", "key": 5, "float_key": good_key},
            400,
            "request.invalid",
        ),
        (
            "POST",
            "/v1/admin/operators",
            {"name": "dup", "key": existing_key, "float_key": good_key},
            409,
            "issuer.operator_exists",
        ),
        ("GET", "/v1/admin/operators/999999", None, 404, "service.not_found"),
        ("GET", "/v1/admin/operators/abc", None, 400, "request.invalid"),
        ("GET", "/v1/admin/operators/-1", None, 400, "request.invalid"),
        (
            "POST",
            "/v1/admin/operators/999999/reserves",
            {"amount": 5, "idempotency_key": "k"},
            404,
            "service.not_found",
        ),
        ("POST", reserves, b'{"amount": 5,', 400, "request.invalid"),
        ("POST", reserves, {"amount": 5}, 400, "request.invalid"),
        ("POST", reserves, {"amount": 5, "idempotency_key": ""}, 400, "request.invalid"),
        ("POST", reserves, {"amount": 5, "idempotency_key": "has space"}, 400, "request.invalid"),
        ("POST", reserves, {"amount": 5, "idempotency_key": "k" * 129}, 400, "request.invalid"),
    ] + [
        ("POST", reserves, {"amount": amount, "idempotency_key": "bad-amount"}, 400, code)
        for amount, code in BAD_AMOUNTS
    ]
    operator_cases: list[Case] = [
        ("POST", "/v1/issuance", b"{not json", 400, "request.invalid"),
        ("POST", "/v1/issuance", b"", 400, "request.invalid"),
        ("POST", "/v1/issuance", {"amount": 5}, 400, "request.invalid"),
        (
            "POST",
            "/v1/issuance",
            {"amount": 5, "idempotency_key": "k", "to": "me"},
            400,
            "request.invalid",
        ),
        ("POST", "/v1/redemptions", {"txid": "xyz"}, 400, "request.invalid"),
        ("POST", "/v1/redemptions", {}, 400, "request.invalid"),
        ("POST", "/v1/redemptions", {"txid": ZERO_TXID}, 404, "service.not_found"),
        ("POST", "/v1/redemptions", {"txid": world.a_issuance.txid}, 422, "redemption.invalid"),
        ("GET", "/v1/issuances/999999", None, 404, "service.not_found"),
        ("GET", "/v1/issuances/abc", None, 400, "request.invalid"),
    ] + [
        ("POST", "/v1/issuance", {"amount": amount, "idempotency_key": "bad-amount"}, 400, code)
        for amount, code in BAD_AMOUNTS
    ]
    public_cases: list[Case] = [
        ("GET", "/v1/certificates/zz", None, 400, "request.invalid"),
        ("GET", f"/v1/certificates/{ZERO_TXID}", None, 404, "service.not_found"),
    ]
    with env.raw() as http:
        for method, path, body, status, code in admin_cases:
            assert_refused(send(http, method, path, body, admin), status, code)
        for method, path, body, status, code in operator_cases:
            content, headers = signed(a.key, method, path, body)
            response = http.request(method, path, content=content, headers=headers)
            assert_refused(response, status, code)
        for method, path, body, status, code in public_cases:
            assert_refused(send(http, method, path, body, {}), status, code)
        assert http.get("/v1/nowhere").status_code == 404
        assert http.get("/v1/health").json()["ok"] is True
    assert snapshot(env) == before
    # And the service still does its work.
    with env.client(a.key) as client:
        assert client.request_issuance(1, "after-bad-input").status == "committed"
