"""The operator's book on SQLite and PostgreSQL: each guarantee the journal rests on."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tally.model.types import MAX_AMOUNT
from tally.services.operator.store import (
    DONE,
    FAILED,
    PENDING,
    DepositOverflowError,
    EntryExistsError,
    KeyTakenError,
    OperatorStore,
    TxAlreadyJournaledError,
)
from tally.wallet.errors import InsufficientFundsError


@pytest.fixture
def store(db_url: str) -> Iterator[OperatorStore]:
    opened = OperatorStore.open(db_url)
    try:
        yield opened
    finally:
        opened.close()


def _body(deposit: int | None) -> dict[str, object]:
    return {"deposit": deposit}


def test_customers_keys_and_tokens(store: OperatorStore) -> None:
    alice = store.create_customer("Alice", 2, wallet_key="aa" * 32)
    hank = store.create_customer(
        "Hank", 1, token_hash="t" * 64, hosted_key_of=lambda index: f"{index:064x}"
    )
    assert not alice.is_hosted
    assert hank.is_hosted
    assert hank.hosted_index == hank.id
    assert hank.hosted_key == f"{hank.id:064x}"
    assert store.customer_by_wallet_key("aa" * 32) == alice
    assert store.customer_by_token_hash("t" * 64) == hank
    assert store.customer_by_token_hash("u" * 64) is None
    assert store.keys_of(hank.id) == [f"{hank.id:064x}"]
    with pytest.raises(KeyTakenError):
        store.create_customer("Twin", 1, wallet_key="aa" * 32)

    assert store.register_keys(alice.id, ["01" * 32, "02" * 32]) == ["01" * 32, "02" * 32]
    assert store.register_keys(alice.id, ["01" * 32]) == ["01" * 32, "02" * 32]
    with pytest.raises(KeyTakenError):
        store.register_keys(hank.id, ["03" * 32, "02" * 32])
    assert store.keys_of(hank.id) == [f"{hank.id:064x}"]  # all or nothing
    assert store.owners_of(["01" * 32, "03" * 32]) == {"01" * 32: alice.id}
    assert [row.name for row in store.all_customers()] == ["Alice", "Hank"]


def test_a_journal_key_and_a_txid_make_one_row_each(store: OperatorStore) -> None:
    alice = store.create_customer("Alice", 2, wallet_key="aa" * 32)
    store.record_deposit(
        scope="admin:1",
        idempotency_key="d",
        customer_id=alice.id,
        amount=1_000,
        request_hash="h",
        response_of=lambda entry_id, deposit: {"deposit": deposit},
    )
    row = store.open_entry(
        scope="c",
        idempotency_key="k",
        kind="load",
        amount=400,
        request_hash="h",
        customer_id=alice.id,
        tx=b"tx",
        txid="11" * 32,
        reserve=[b"\x01" * 32],
        debit=400,
        claim_keys=["05" * 32],
    )
    assert row.status == PENDING
    assert store.customer(alice.id).deposit == 600  # type: ignore[union-attr]
    assert store.reserved_coins() == {b"\x01" * 32}
    assert store.pending_total(alice.id, "load") == 400
    assert "05" * 32 in store.keys_of(alice.id)
    with pytest.raises(EntryExistsError):
        store.open_entry(scope="c", idempotency_key="k", kind="load", amount=1, request_hash="x")
    with pytest.raises(TxAlreadyJournaledError):
        store.open_entry(
            scope="c", idempotency_key="k2", kind="load", amount=1, request_hash="x", txid="11" * 32
        )
    with pytest.raises(InsufficientFundsError):
        store.open_entry(
            scope="c",
            idempotency_key="k3",
            kind="load",
            amount=601,
            request_hash="x",
            customer_id=alice.id,
            debit=601,
        )
    assert store.entry("c", "k3") is None
    assert store.customer(alice.id).deposit == 600  # type: ignore[union-attr]


def test_a_row_is_settled_once_even_by_racing_threads(store: OperatorStore) -> None:
    alice = store.create_customer("Alice", 2, wallet_key="aa" * 32)
    row = store.open_entry(
        scope="c",
        idempotency_key="u",
        kind="unload",
        amount=250,
        request_hash="h",
        customer_id=alice.id,
        txid="22" * 32,
        reserve=[b"\x02" * 32],
    )
    results: list[object] = []

    def settle() -> None:
        results.append(
            store.finish_entry(row.id, status=DONE, response_of=_body, http_status=200, credit=250)
        )

    threads = [threading.Thread(target=settle) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    settled = [result for result in results if result is not None]
    assert len(settled) == 1
    assert store.customer(alice.id).deposit == 250  # type: ignore[union-attr]
    entry = store.entry("c", "u")
    assert entry is not None
    assert entry.status == DONE
    assert entry.response == {"deposit": 250}
    assert store.reserved_coins() == set()
    assert store.pending_entries() == []


def test_a_failed_row_lets_its_txid_go(store: OperatorStore) -> None:
    row = store.open_entry(
        scope="f", idempotency_key="a", kind="split", amount=1, request_hash="h", txid="33" * 32
    )
    store.finish_entry(row.id, status=FAILED, response_of=_body, http_status=422)
    again = store.open_entry(
        scope="f", idempotency_key="b", kind="split", amount=1, request_hash="h", txid="33" * 32
    )
    assert again.txid == "33" * 32
    first = store.entry("f", "a")
    assert first is not None
    assert first.txid is None
    assert first.detail["released_txid"] == "33" * 32


def test_deposits_never_overflow(store: OperatorStore) -> None:
    alice = store.create_customer("Alice", 2, wallet_key="aa" * 32)
    store.record_deposit(
        scope="a",
        idempotency_key="1",
        customer_id=alice.id,
        amount=MAX_AMOUNT,
        request_hash="h",
        response_of=lambda entry_id, deposit: {},
    )
    with pytest.raises(DepositOverflowError):
        store.record_deposit(
            scope="a",
            idempotency_key="2",
            customer_id=alice.id,
            amount=1,
            request_hash="h",
            response_of=lambda entry_id, deposit: {},
        )
    assert store.customer(alice.id).deposit == MAX_AMOUNT  # type: ignore[union-attr]
    assert store.entry("a", "2") is None
