from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from starlette.testclient import TestClient

from tally.model.types import PublicKey
from tally.services.common.auth import (
    MAX_SKEW_MS,
    hash_token,
    new_token,
    sign_headers,
    signed_key,
    token_matches,
    verify_signed,
)
from tally.services.common.client import ServiceCallError
from tally.services.common.errors import AuthInvalidError, AuthMissingError, install_error_handlers
from tests.rules.helpers import key

NOW = 1_800_000_000_000


def test_a_signed_request_verifies_to_its_key() -> None:
    headers = sign_headers(key(1), "POST", "/v1/x?a=1", b'{"amount": 5}', now_ms=NOW)
    assert verify_signed(headers, "POST", "/v1/x?a=1", b'{"amount": 5}', now_ms=NOW) == (
        key(1).public_key
    )


@pytest.mark.parametrize(
    ("method", "target", "body", "now"),
    [
        ("GET", "/v1/x?a=1", b'{"amount": 5}', NOW),  # another method
        ("POST", "/v1/x?a=2", b'{"amount": 5}', NOW),  # another query
        ("POST", "/v1/y?a=1", b'{"amount": 5}', NOW),  # another path
        ("POST", "/v1/x?a=1", b'{"amount": 6}', NOW),  # another body
        ("POST", "/v1/x?a=1", b'{"amount": 5}', NOW + MAX_SKEW_MS + 1),  # stale
        ("POST", "/v1/x?a=1", b'{"amount": 5}', NOW - MAX_SKEW_MS - 1),  # from the future
    ],
)
def test_any_change_to_a_signed_request_is_refused(
    method: str, target: str, body: bytes, now: int
) -> None:
    headers = sign_headers(key(1), "POST", "/v1/x?a=1", b'{"amount": 5}', now_ms=NOW)
    with pytest.raises(AuthInvalidError):
        verify_signed(headers, method, target, body, now_ms=now)


def test_a_signature_by_another_key_is_refused() -> None:
    headers = sign_headers(key(1), "POST", "/v1/x", b"", now_ms=NOW)
    headers["X-Tally-Key"] = key(2).public_key.hex()
    with pytest.raises(AuthInvalidError):
        verify_signed(headers, "POST", "/v1/x", b"", now_ms=NOW)


def test_missing_and_partial_headers_are_told_apart() -> None:
    with pytest.raises(AuthMissingError):
        verify_signed({}, "GET", "/v1/x", b"", now_ms=NOW)
    headers = sign_headers(key(1), "GET", "/v1/x", b"", now_ms=NOW)
    del headers["X-Tally-Time"]
    with pytest.raises(AuthInvalidError):
        verify_signed(headers, "GET", "/v1/x", b"", now_ms=NOW)
    with pytest.raises(AuthInvalidError):
        verify_signed({**headers, "X-Tally-Time": "soon"}, "GET", "/v1/x", b"", now_ms=NOW)


def test_tokens_are_stored_as_hashes_and_compared() -> None:
    token = new_token()
    stored = hash_token(token)
    assert token not in stored
    assert token_matches(token, stored)
    assert not token_matches(new_token(), stored)


def test_the_dependency_and_the_client_agree_over_http() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/echo")
    async def echo(
        payload: dict[str, int], who: PublicKey = Depends(signed_key)
    ) -> dict[str, object]:
        return {"who": who.hex(), "amount": payload["amount"]}

    with TestClient(app) as http:
        signed = {
            "content-type": "application/json",
            **sign_headers(key(3), "POST", "/v1/echo?x=1", b'{"amount": 7}'),
        }
        answer = http.post("/v1/echo?x=1", content=b'{"amount": 7}', headers=signed)
        assert answer.status_code == 200
        assert answer.json() == {"who": key(3).public_key.hex(), "amount": 7}
        tampered = http.post("/v1/echo?x=1", content=b'{"amount": 8}', headers=signed)
        assert tampered.status_code == 401
        assert tampered.json()["code"] == "auth.invalid"
        bare = http.post("/v1/echo", json={"amount": 7})
        assert bare.status_code == 401
        assert bare.json()["code"] == "auth.missing"
        malformed = http.post(
            "/v1/echo",
            content=b"{not json",
            headers={
                "content-type": "application/json",
                **sign_headers(key(3), "POST", "/v1/echo", b"{not json"),
            },
        )
        assert malformed.status_code == 400
        assert malformed.json()["code"] == "request.invalid"


def test_the_client_reports_an_unreachable_service() -> None:
    from tally.services.common.client import ServiceClient

    with (
        ServiceClient("http://127.0.0.1:9", timeout=1.0) as client,
        pytest.raises(ServiceCallError) as caught,
    ):
        client.get("/v1/health")
    assert caught.value.code == "service.unreachable"
    assert caught.value.status == 0


def test_unknown_routes_and_methods_answer_with_a_code() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/v1/thing")
    def thing() -> dict[str, int]:
        return {"n": 1}

    with TestClient(app) as http:
        missing = http.get("/v1/nothing")
        assert missing.status_code == 404
        assert missing.json()["code"] == "service.not_found"
        wrong = http.post("/v1/thing")
        assert wrong.status_code == 405
        assert wrong.json()["code"] == "request.method"
