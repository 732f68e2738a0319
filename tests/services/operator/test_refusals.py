"""Bad input and every kind of wrong credential: a clear 4xx, nothing changed, still serving."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tally.client.builders import make_issue, make_transfer
from tally.model.encoding import encode
from tally.model.tx import SignedTx
from tally.model.types import MAX_AMOUNT
from tally.services.common.auth import MAX_SKEW_MS, TIME_HEADER, sign_headers
from tests.rules.helpers import CHAIN_ID, USD_ISSUER, key
from tests.services.harness import BAD_AMOUNTS, label_key, signed
from tests.services.operator.harness import Network, Operator, start_operator, unload_tx


@dataclass
class World:
    """An operator with three customers who hold money, and how to look at all of it."""

    operator: Operator
    network: Network
    label: str
    alice: dict[str, Any]
    hank: dict[str, Any]
    mallory: dict[str, Any]
    http: httpx.Client

    @property
    def alice_key(self):
        return label_key(f"{self.label}/alice")

    @property
    def alice_r0(self):
        return label_key(f"{self.label}/alice/r0")

    @property
    def mallory_key(self):
        return label_key(f"{self.label}/mallory")

    @property
    def mallory_r0(self):
        return label_key(f"{self.label}/mallory/r0")

    def snapshot(self) -> tuple[object, ...]:
        """Deposits, journal, keys, float and every wallet's coins: all that could change."""
        with self.operator.admin() as admin:
            customers = tuple(sorted((c["customer_id"], c["deposit"]) for c in admin.customers()))
            journal = tuple((e["journal_id"], e["status"]) for e in admin.journal())
        with self.operator.client(key=self.alice_key) as client:
            alice_keys = tuple(client.me()["keys"])
        return (
            customers,
            journal,
            alice_keys,
            self.operator.float_total(),
            self.network.balance(self.alice_r0.public_key),
            self.network.balance(self.mallory_r0.public_key),
            self.network.balance(bytes.fromhex(self.hank["hosted_key"])),
        )


@pytest.fixture(scope="module")
def world(
    network: Network, module_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One operator per database kind for this module's tests; each test compares the whole
    state before and after its refusals."""
    label = f"refuse-{module_db_url.split(':')[0]}"
    directory = tmp_path_factory.mktemp("refusals") / "op"
    operator = start_operator(network, directory, module_db_url, fund=10_000_00)
    alice_key, mallory_key = label_key(f"{label}/alice"), label_key(f"{label}/mallory")
    with operator.admin() as admin:
        alice = admin.create_customer("Alice", 2, alice_key.public_key)
        hank = admin.create_customer("Hank", 1)
        mallory = admin.create_customer("Mallory", 2, mallory_key.public_key)
        admin.deposit(alice["customer_id"], 1_000_00, "a")
        admin.deposit(hank["customer_id"], 500_00, "h")
        admin.deposit(mallory["customer_id"], 100_00, "m")
    world = World(operator, network, label, alice, hank, mallory, operator.raw())
    with operator.client(key=alice_key) as client:
        client.load(300_00, "a-load", to=world.alice_r0.public_key)
    with operator.client(token=hank["token"]) as client:
        client.load(200_00, "h-load")
    with operator.client(key=mallory_key) as client:
        client.load(50_00, "m-load", to=world.mallory_r0.public_key)
    try:
        yield world
    finally:
        world.http.close()
        operator.stop()


def _post(world: World, signer, path: str, body: Any, **overrides: str):
    content, headers = signed(signer, "POST", path, body, **overrides)
    return world.http.post(path, content=content, headers=headers)


def _refused(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    document: dict[str, Any] = response.json()
    assert document["code"] == code, document
    assert document["message"]
    return document


def test_bad_input_gets_a_clear_4xx_and_changes_nothing(world: World) -> None:
    alice = world.alice_key
    before = world.snapshot()
    body: Any
    load = "/v1/me/load"
    to = world.alice_r0.public_key.hex()

    # Malformed bodies.
    for body in (b"{", b"", b"[]", b'"load"', b"null", b"\xff\xfe"):
        _refused(_post(world, alice, load, body), 400, "request.invalid")
    _refused(
        _post(world, alice, load, {"amount": 1, "idempotency_key": "k", "to": to, "x": 1}),
        400,
        "request.invalid",
    )
    # Amounts: negative, zero, too large, not whole numbers.
    for amount, code in BAD_AMOUNTS:
        body = {"amount": amount, "idempotency_key": "bad-amount", "to": to}
        refusal = _refused(_post(world, alice, load, body), 400, code)
        assert "amount" in refusal["message"]
    # Idempotency keys and keys.
    for idempotency_key in ("", "has space", "x" * 129, 7):
        body = {"amount": 1, "idempotency_key": idempotency_key, "to": to}
        _refused(_post(world, alice, load, body), 400, "request.invalid")
    for bad_to in ("zz", "ab" * 31, "ff" * 32, 5, world.operator.float_key.hex()):
        body = {"amount": 1, "idempotency_key": "bad-to", "to": bad_to}
        _refused(_post(world, alice, load, body), 400, "request.invalid")
    _refused(
        _post(world, alice, load, {"amount": 1, "idempotency_key": "no-to"}), 400, "request.invalid"
    )

    # Unloads that are not a transfer paying the float in CNY.
    unload = "/v1/me/unload"

    def refused_unload(tx: SignedTx | str, status: int, code: str, **extra: Any) -> dict[str, Any]:
        tx_hex = tx if isinstance(tx, str) else encode(tx).hex()
        body = {"idempotency_key": "u", "tx": tx_hex, **extra}
        return _refused(_post(world, alice, unload, body), status, code)

    good = unload_tx(world.network, world.alice_r0, world.operator.float_key, 10_00)
    for tx_hex in ("not hex", "00", encode(good).hex()[:-2], "ab" * 100):
        refused_unload(tx_hex, 400, "request.invalid")
    elsewhere = unload_tx(
        world.network,
        world.alice_r0,
        world.operator.float_key,
        10_00,
        pay_to=label_key("elsewhere").public_key,
    )
    assert "pays nothing" in refused_unload(elsewhere, 400, "request.invalid")["message"]
    usd_key = world.alice_r0
    usd_issue = make_issue(
        "USD",
        key(USD_ISSUER),
        [(usd_key.public_key, 5_00)],
        bytes(32),
        time.time_ns(),
        400,
        CHAIN_ID,
    )
    with world.network.node_client() as node:
        assert node.submit(usd_issue)["status"] == "committed"
    usd = unload_tx(world.network, usd_key, world.operator.float_key, 5_00, asset="USD")
    assert "USD" in refused_unload(usd, 400, "request.invalid")["message"]
    issue = make_issue(
        "CNY", key(USD_ISSUER), [(world.operator.float_key, 1)], bytes(32), 1, 400, CHAIN_ID
    )
    refused_unload(issue, 400, "request.invalid")
    refused_unload(good, 400, "request.invalid", amount=9_00)  # not what it pays
    # The ledger would refuse these: a coin that does not exist, a signature by the wrong
    # key, a transaction past its window.
    coin_id = world.network.coins(world.alice_r0.public_key)[0][0]
    valid_until = world.network.height() + 50
    for inputs, until, node_code in [
        ([(bytes(32), world.alice_r0)], valid_until, "input.unknown"),
        ([(coin_id, world.mallory_key)], valid_until, "sig.invalid"),
        ([(coin_id, world.alice_r0)], 1, "window.expired"),
    ]:
        tx = make_transfer(inputs, [(world.operator.float_key, "CNY", 10_00)], until, CHAIN_ID)
        refusal = refused_unload(tx, 422, "operator.tx_refused")
        assert refusal["detail"]["node_code"] == node_code

    # A hosted wallet's unload needs an amount; pay needs a hosted wallet and a real payee.
    with world.operator.raw() as http:
        bearer = {"authorization": f"Bearer {world.hank['token']}"}
        response = http.post(unload, json={"idempotency_key": "h-u"}, headers=bearer)
        _refused(response, 400, "request.invalid")
        response = http.post(
            "/v1/me/pay",
            json={"to": "00" * 32, "amount": 1, "idempotency_key": "p"},
            headers=bearer,
        )
        _refused(response, 400, "request.invalid")
        response = http.post(
            "/v1/me/pay",
            json={
                "to": label_key("payee").public_key.hex(),
                "amount": 10**9,
                "idempotency_key": "p",
            },
            headers=bearer,
        )
        _refused(response, 422, "limit.exceeded")
        response = http.post("/v1/me/keys", json={"keys": []}, headers=bearer)
        _refused(response, 400, "request.invalid")

    # Admin: unknown customers, unknown tiers, malformed or taken keys.
    admin_headers = {"authorization": f"Bearer {world.operator.identity.admin_token}"}
    with world.operator.raw() as http:
        _refused(
            http.get("/v1/admin/customers/999999", headers=admin_headers), 404, "service.not_found"
        )
        _refused(http.get("/v1/admin/customers/abc", headers=admin_headers), 400, "request.invalid")
        response = http.post(
            "/v1/admin/customers/999999/deposit",
            json={"amount": 1, "idempotency_key": "d"},
            headers=admin_headers,
        )
        _refused(response, 404, "service.not_found")
        for amount, code in BAD_AMOUNTS:
            response = http.post(
                f"/v1/admin/customers/{world.alice['customer_id']}/deposit",
                json={"amount": amount, "idempotency_key": "d"},
                headers=admin_headers,
            )
            _refused(response, 400, code)
        response = http.post(
            f"/v1/admin/customers/{world.alice['customer_id']}/deposit",
            content=b'{"amount": 1,',
            headers={**admin_headers, "content-type": "application/json"},
        )
        _refused(response, 400, "request.invalid")
        for body in ({"name": "X", "tier": 9}, {"name": "", "tier": 1}, {"tier": 1}):
            _refused(
                http.post("/v1/admin/customers", json=body, headers=admin_headers),
                400,
                "request.invalid",
            )
        response = http.post(
            "/v1/admin/customers",
            json={"name": "X", "tier": 1, "wallet_key": "xyz"},
            headers=admin_headers,
        )
        _refused(response, 400, "request.invalid")
        response = http.post(
            "/v1/admin/customers",
            json={"name": "Twin", "tier": 1, "wallet_key": world.alice_key.public_key.hex()},
            headers=admin_headers,
        )
        _refused(response, 409, "operator.key_taken")
        # A deposit that would overflow the account.
        response = http.post(
            f"/v1/admin/customers/{world.alice['customer_id']}/deposit",
            json={"amount": MAX_AMOUNT, "idempotency_key": "huge"},
            headers=admin_headers,
        )
        _refused(response, 422, "operator.deposit_overflow")

    assert world.snapshot() == before
    # Still serving, as before; an amount as a JSON integer or as a decimal string.
    with world.operator.client(key=alice) as client:
        assert client.load(1_00, "after", to=world.alice_r0.public_key)["status"] == "done"
    as_integer = {"amount": 2_00, "idempotency_key": "after-int", "to": to}
    response = _post(world, alice, load, as_integer)
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["amount"]) == ("done", "200")


CUSTOMER_ENDPOINTS = [
    ("GET", "/v1/me", None),
    ("GET", "/v1/me/history", None),
    ("POST", "/v1/me/keys", {"keys": ["11" * 32]}),
    ("POST", "/v1/me/load", {"amount": 1_00, "idempotency_key": "auth-load"}),
    ("POST", "/v1/me/unload", {"amount": 1_00, "idempotency_key": "auth-unload"}),
    ("POST", "/v1/me/pay", {"to": "11" * 32, "amount": 1_00, "idempotency_key": "auth-pay"}),
]


def _admin_endpoints(customer_id: int) -> list[tuple[str, str, Any]]:
    return [
        ("POST", "/v1/admin/customers", {"name": "Eve", "tier": 1}),
        ("GET", "/v1/admin/customers", None),
        ("GET", f"/v1/admin/customers/{customer_id}", None),
        (
            "POST",
            f"/v1/admin/customers/{customer_id}/deposit",
            {"amount": 1_000_00, "idempotency_key": "auth-dep"},
        ),
        ("GET", "/v1/admin/float", None),
        ("POST", "/v1/admin/float/rebalance", {}),
        ("GET", "/v1/admin/journal", None),
    ]


def _send(world: World, method: str, path: str, body: Any, headers: dict[str, str], content=None):
    if content is None:
        content = b"" if body is None else json.dumps(body).encode()
    return world.http.request(
        method, path, content=content, headers={"content-type": "application/json", **headers}
    )


def test_every_endpoint_refuses_missing_wrong_and_forged_credentials(world: World) -> None:
    before = world.snapshot()
    stranger = label_key(f"{world.label}/stranger")
    admin_token = world.operator.identity.admin_token
    endpoints = CUSTOMER_ENDPOINTS + _admin_endpoints(world.alice["customer_id"])
    for method, path, body in endpoints:
        content = b"" if body is None else json.dumps(body).encode()
        is_admin = path.startswith("/v1/admin")
        # No credential at all.
        _refused(_send(world, method, path, body, {}), 401, "auth.missing")
        # A bearer token nobody has, and a malformed Authorization header.
        _refused(
            _send(world, method, path, body, {"authorization": "Bearer not-a-token"}),
            401,
            "auth.invalid",
        )
        _refused(
            _send(world, method, path, body, {"authorization": "Basic abc"}), 401, "auth.invalid"
        )
        # Alice's key in the header, Mallory's signature: forged.
        forged = sign_headers(world.mallory_key, method, path, content)
        forged["X-Tally-Key"] = world.alice_key.public_key.hex()
        _refused(_send(world, method, path, body, forged), 401, "auth.invalid")
        # Alice's genuine signature, but over another body, or too old.
        if body is not None:
            genuine = sign_headers(world.alice_key, method, path, content)
            tampered = json.dumps({**body, "tampered": 1}).encode()
            _refused(
                _send(world, method, path, body, genuine, content=tampered), 401, "auth.invalid"
            )
        old = time.time_ns() // 1_000_000 - MAX_SKEW_MS - 60_000
        stale = sign_headers(world.alice_key, method, path, content, now_ms=old)
        _refused(_send(world, method, path, body, stale), 401, "auth.invalid")
        assert stale[TIME_HEADER] == str(old)
        # Signed by a key that is no customer's.
        unknown = sign_headers(stranger, method, path, content)
        if is_admin:
            _refused(_send(world, method, path, body, unknown), 401, "auth.invalid")
            # Known customers, by signature or token, are not admins.
            own = sign_headers(world.alice_key, method, path, content)
            _refused(_send(world, method, path, body, own), 403, "auth.forbidden")
            token = {"authorization": f"Bearer {world.hank['token']}"}
            _refused(_send(world, method, path, body, token), 403, "auth.forbidden")
        else:
            _refused(_send(world, method, path, body, unknown), 401, "auth.invalid")
            # The admin token does not act for a customer.
            admin = {"authorization": f"Bearer {admin_token}"}
            _refused(_send(world, method, path, body, admin), 403, "auth.forbidden")

    # Another customer's credentials see and move only that customer's own money.
    alice_r0 = world.alice_r0
    with world.operator.client(key=world.mallory_key) as mallory:
        me = mallory.me()
        assert me["customer_id"] == world.mallory["customer_id"]
        assert int(me["deposit"]) == 50_00
        assert int(me["balance"]) == 50_00
        assert alice_r0.public_key.hex() not in me["keys"]
        assert {entry["idempotency_key"] for entry in mallory.history()} == {"m", "m-load"}
    # Mallory cannot claim Alice's key, load to it, or unload Alice's coins to her deposit.
    keys = _post(world, world.mallory_key, "/v1/me/keys", {"keys": [alice_r0.public_key.hex()]})
    _refused(keys, 409, "operator.key_taken")
    body = {"amount": 1_00, "idempotency_key": "m-2", "to": alice_r0.public_key.hex()}
    _refused(_post(world, world.mallory_key, "/v1/me/load", body), 409, "operator.key_taken")
    stolen = unload_tx(world.network, alice_r0, world.operator.float_key, 100_00)
    body = {"idempotency_key": "m-3", "tx": encode(stolen).hex()}
    _refused(_post(world, world.mallory_key, "/v1/me/unload", body), 403, "auth.forbidden")
    # A self-custody wallet cannot make the operator pay; Hank's token pays only from Hank.
    body = {"to": world.mallory_r0.public_key.hex(), "amount": 1_00, "idempotency_key": "m-4"}
    _refused(_post(world, world.mallory_key, "/v1/me/pay", body), 403, "auth.forbidden")
    with world.operator.client(token=world.hank["token"]) as hank:
        assert hank.me()["customer_id"] == world.hank["customer_id"]
        assert int(hank.me()["deposit"]) == 300_00

    assert world.snapshot() == before
