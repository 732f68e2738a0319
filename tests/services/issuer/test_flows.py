"""Issuance, redemption and the audit on real processes: a node, an issuer, each database."""

from __future__ import annotations

import pytest

from tally.services.common.client import ServiceCallError
from tally.services.issuer.certificate import (
    certificate_hash,
    check_certificate,
    decode_certificate,
)
from tests.rules.helpers import CHAIN_ID, CNY_ISSUER, pub
from tests.services.harness import ASSET, wait_until
from tests.services.issuer.helpers import (
    IssuerEnv,
    assert_balanced,
    comparable,
    redeem_on_ledger,
    split_coin,
)


def test_issue_puts_coins_at_the_float_key_backed_by_a_certificate(issuer_env: IssuerEnv) -> None:
    env = issuer_env
    assert_balanced(env)
    operator = env.register("flow-issue")
    assert env.account(operator).available == 0
    with env.admin() as admin:
        deposit = admin.fund_reserve(operator.id, 1_000_000, "wire-1")
    assert deposit.account.available == 1_000_000
    assert_balanced(env)
    supply_before = env.supply()

    with env.client(operator.key) as client:
        issuance = client.request_issuance(250_000, "issue-1")
    assert issuance.status == "committed"
    assert issuance.amount == 250_000
    assert issuance.height is not None
    assert issuance.height > 0
    assert issuance.float_key == operator.float_key.public_key.hex()

    account = env.account(operator)
    assert (account.available, account.frozen, account.issued) == (750_000, 250_000, 250_000)
    assert env.float_balance(operator) == 250_000
    assert env.supply() == supply_before + 250_000
    with env.node_client() as node:
        coin = node.coin(issuance.coin_id)
        issue_tx = node.tx(issuance.txid)["tx"]
    assert coin["status"] == "unspent"
    assert coin["amount"] == "250000"
    assert coin["lock"]["key"] == operator.float_key.public_key.hex()
    assert issue_tx["kind"] == "issue"
    assert issue_tx["nonce"] == issuance.id
    assert issue_tx["reserve_ref"] == issuance.reserve_ref

    # The Issue cites the hash of a certificate the issuer signed for exactly this freeze.
    assert issuance.certificate is not None
    signed = decode_certificate(bytes.fromhex(issuance.certificate))
    check_certificate(signed, pub(CNY_ISSUER))
    assert certificate_hash(signed.certificate).hex() == issuance.reserve_ref
    cert = signed.certificate
    assert (cert.chain_id, cert.asset, cert.amount, cert.sequence) == (
        CHAIN_ID,
        ASSET,
        250_000,
        issuance.id,
    )
    assert cert.operator == operator.key.public_key
    with env.client() as public:
        view = public.certificate(issuance.reserve_ref)
    assert view.encoded == issuance.certificate
    assert view.txid == issuance.txid

    audit = assert_balanced(env)
    assert issuance.reserve_ref in {entry.hash for entry in audit.certificates}
    mine = next(o for o in audit.operators if o.id == operator.id)
    assert (mine.available, mine.frozen) == (750_000, 250_000)

    with env.client(operator.key) as client:
        second = client.request_issuance(100, "issue-2")
        assert [i.id for i in client.issuances()] == [issuance.id, second.id]
        assert client.issuance(second.id).status == "committed"
    assert env.float_balance(operator) == 250_100
    assert_balanced(env)


def test_redemption_released_through_the_endpoint_exactly_once(issuer_env: IssuerEnv) -> None:
    env = issuer_env
    operator = env.register("flow-redeem", reserve=10_000)
    with env.client(operator.key) as client:
        issuance = client.request_issuance(1_000, "float-1")
    assert_balanced(env)
    small, large = split_coin(env, operator, issuance.coin_id, [300, 700])
    assert_balanced(env)  # a transfer moves no reserve

    txid = redeem_on_ledger(env, operator, [small])
    with env.client(operator.key) as client:
        released = client.redeem(txid)
        again = client.redeem(txid)
    assert released.amount == 300
    assert released.source in ("api", "follower")  # whichever path came first
    assert again == released
    account = env.account(operator)
    assert (account.available, account.frozen, account.redeemed) == (9_300, 700, 300)
    assert env.float_balance(operator) == 700
    assert_balanced(env)
    assert large


def test_follower_releases_a_redemption_nobody_reports(issuer_env: IssuerEnv) -> None:
    env = issuer_env
    operator = env.register("flow-follower", reserve=5_000)
    with env.client(operator.key) as client:
        issuance = client.request_issuance(2_000, "float-1")
    txid = redeem_on_ledger(env, operator, [issuance.coin_id])

    wait_until(lambda: env.account(operator).redeemed == 2_000, what="the follower's release")
    account = env.account(operator)
    assert (account.available, account.frozen) == (5_000, 0)
    assert env.float_balance(operator) == 0
    assert_balanced(env)
    with env.client(operator.key) as client:
        released = client.redeem(txid)  # reporting it afterwards moves nothing
    assert (released.source, released.amount) == ("follower", 2_000)
    assert env.account(operator) == account


def test_repeated_idempotency_key_issues_once(issuer_env: IssuerEnv) -> None:
    env = issuer_env
    operator = env.register("flow-idem", reserve=10_000)
    with env.client(operator.key) as client:
        first = client.request_issuance(4_000, "same-key")
        supply = env.supply()
        second = client.request_issuance(4_000, "same-key")
        assert second == first
        assert env.supply() == supply
        assert env.float_balance(operator) == 4_000
        assert len(client.issuances()) == 1

        before = comparable(env.audit())
        with pytest.raises(ServiceCallError) as refused:
            client.request_issuance(5_000, "same-key")
    assert (refused.value.status, refused.value.code) == (409, "idempotency.conflict")
    assert refused.value.detail["first_amount"] == "4000"
    assert comparable(env.audit()) == before
    account = env.account(operator)
    assert (account.available, account.frozen) == (6_000, 4_000)
    assert_balanced(env)


def test_reserve_credit_is_idempotent(issuer_env: IssuerEnv) -> None:
    env = issuer_env
    operator = env.register("flow-deposit")
    with env.admin() as admin:
        first = admin.fund_reserve(operator.id, 700, "wire-77")
        again = admin.fund_reserve(operator.id, 700, "wire-77")
        assert again.id == first.id
        assert again.account.available == 700
        with pytest.raises(ServiceCallError) as refused:
            admin.fund_reserve(operator.id, 701, "wire-77")
        assert (refused.value.status, refused.value.code) == (409, "idempotency.conflict")
        assert admin.operator(operator.id).available == 700
        admin.fund_reserve(operator.id, 300, "wire-78")
        assert admin.operator(operator.id).available == 1_000
    assert_balanced(env)


def test_issuance_over_the_available_reserve_is_refused_and_moves_nothing(
    issuer_env: IssuerEnv,
) -> None:
    env = issuer_env
    operator = env.register("flow-short", reserve=1_000)
    with env.client(operator.key) as client:
        client.request_issuance(600, "a")
        before = comparable(env.audit())
        supply = env.supply()
        with pytest.raises(ServiceCallError) as refused:
            client.request_issuance(401, "b")
        assert (refused.value.status, refused.value.code) == (422, "funds.insufficient")
        assert refused.value.detail == {"available": "400", "requested": "401"}
        assert [i.idempotency_key for i in client.issuances()] == ["a"]
        # The refused key stays free: with enough reserve it issues.
        assert client.request_issuance(400, "b").status == "committed"
    assert before.reserves.frozen + 400 == env.audit().reserves.frozen
    assert env.supply() == supply + 400
    account = env.account(operator)
    assert (account.available, account.frozen) == (0, 1_000)
    assert_balanced(env)
