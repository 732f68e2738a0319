"""Crashes: an issuance frozen but not (known to be) committed when the issuer stops.

The freeze and the signed `Issue` are stored before the node sees the transaction, so after
a restart the issuer resubmits every pending issuance; the node answers a replay with its
first result. Whatever the moment of the crash, every issuance ends committed exactly once
(or failed with its reserve back), and the ledger's supply equals the frozen reserves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tally.client.errors import NodeRejection
from tally.client.node_client import NodeClient
from tally.model.types import PublicKey
from tally.node.keyfile import read_key
from tally.services.common.client import ServiceCallError
from tally.services.common.db import make_engine
from tally.services.issuer.config import load_issuer_config
from tally.services.issuer.service import IssuerService
from tally.services.issuer.store import OperatorRow
from tests.services.issuer.helpers import IssuerEnv, Operator, assert_balanced, stopped


@pytest.fixture
def offline_service(issuer_env: IssuerEnv) -> Iterator[IssuerService]:
    """The issuer's logic over its database and node, driven from the test process."""
    config = load_issuer_config(issuer_env.directory)
    engine = make_engine(config.database_url)
    node = NodeClient(issuer_env.node.url)
    yield IssuerService(config, engine, read_key(config.key_file), node)
    node.close()
    engine.dispose()


def row_of(service: IssuerService, operator: Operator) -> OperatorRow:
    return service.operator_for_key(PublicKey(operator.key.public_key))


def test_restart_finishes_every_issuance_a_crash_left_pending(
    issuer_env: IssuerEnv, offline_service: IssuerService
) -> None:
    env = issuer_env
    frozen = env.register("crash-frozen", reserve=10_000)
    committed = env.register("crash-committed", reserve=10_000)
    expired = env.register("crash-expired", reserve=10_000)
    supply = env.supply()
    with stopped(env.issuer):
        service = offline_service
        # Crashed after the freeze, before the node saw the Issue.
        first, created = service.freeze(row_of(service, frozen), 1_234, "k1")
        assert created
        assert first.status == "pending"
        with env.node_client() as node, pytest.raises(NodeRejection) as unknown:
            node.tx(first.txid)
        assert unknown.value.code == "not_found"
        # Crashed after the node committed the Issue, before the issuer recorded it.
        second, _ = service.freeze(row_of(service, committed), 2_500, "k1")
        assert second.tx is not None
        with env.node_client() as node:
            result = node.submit(second.tx, wait=True)
        assert result["status"] == "committed"
        # Crashed after the freeze of an Issue valid up to the tip: it can never commit.
        third, _ = service.freeze(row_of(service, expired), 3_000, "k1", valid_until=env.height())
        assert service.account(row_of(service, expired))[0].frozen == 3_000

    # Restarted: every pending issuance was finished before the API answered.
    with env.client(frozen.key) as client:
        issuance = client.issuance(first.id)
        assert issuance.status == "committed"
        assert client.request_issuance(1_234, "k1") == issuance
    with env.client(committed.key) as client:
        issuance = client.issuance(second.id)
        assert (issuance.status, issuance.height) == ("committed", result["height"])
    with env.client(expired.key) as client:
        issuance = client.issuance(third.id)
        assert (issuance.status, issuance.error_code) == ("failed", "window.expired")
        with pytest.raises(ServiceCallError) as failed:
            client.request_issuance(3_000, "k1")  # the key's first answer, again
        assert (failed.value.status, failed.value.code) == (502, "issuance.failed")
        assert failed.value.detail["node_code"] == "window.expired"
        account = client.account()
        assert (account.available, account.frozen, account.issued) == (10_000, 0, 0)

    assert env.supply() == supply + 1_234 + 2_500  # each once, the expired one not at all
    assert env.float_balance(frozen) == 1_234
    assert env.float_balance(committed) == 2_500
    assert env.float_balance(expired) == 0
    account = env.account(frozen)
    assert (account.available, account.frozen, account.issued) == (8_766, 1_234, 1_234)
    assert_balanced(env)
    with env.client(expired.key) as client:
        assert client.request_issuance(3_000, "k2").status == "committed"
    assert_balanced(env)


def test_sigkill_during_a_burst_of_issuances_then_retry(issuer_env: IssuerEnv) -> None:
    env = issuer_env
    operator = env.register("crash-burst", reserve=1_000_000)
    supply = env.supply()
    requests = [(100 + i, f"burst-{i}") for i in range(16)]
    outcomes: dict[str, str] = {}

    def ask(amount: int, key: str) -> None:
        try:
            with env.client(operator.key) as client:
                outcomes[key] = client.request_issuance(amount, key).status
        except ServiceCallError as exc:
            outcomes[key] = exc.code

    threads = [threading.Thread(target=ask, args=request) for request in requests]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    env.issuer.kill()
    for thread in threads:
        thread.join(30)
    env.issuer.start()

    # Every request retried with its key: each issued exactly once.
    with env.client(operator.key) as client:
        retried = [client.request_issuance(amount, key) for amount, key in requests]
        listed = client.issuances()
    assert {issuance.status for issuance in retried} == {"committed"}
    assert len({issuance.id for issuance in retried}) == len(requests)
    assert sorted(i.idempotency_key for i in listed) == sorted(key for _, key in requests)
    total = sum(amount for amount, _ in requests)
    assert env.supply() == supply + total
    assert env.float_balance(operator) == total
    account = env.account(operator)
    assert (account.available, account.frozen, account.issued) == (1_000_000 - total, total, total)
    assert_balanced(env)
    assert outcomes  # some requests were answered before the kill, some cut off
