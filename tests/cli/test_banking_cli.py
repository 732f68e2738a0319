"""`tally wallet enroll|me|load|unload|hosted-pay`: customers and their operator, for real.

The package's `stack` (`tests.cli.harness`: node, issuer, operator with its float issued;
tier 2 may hold at most 800.00) serves the module. Each test makes its own wallets with a low scrypt
cost and its own customers, and checks the money on both sides: the deposit at the
operator, the wallet's coins, the float, and the issuer's audit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tally.client import NodeClient
from tally.client.wire import coins_from_json
from tally.model.address import address_of
from tally.model.lock import KeyLock
from tally.model.types import PublicKey
from tally.node.keyfile import new_key
from tally.services.common.client import ServiceCallError
from tally.services.operator.client import OperatorClient
from tally.wallet.wallet import Wallet
from tests.cli.harness import Stack, help_text, wait_balanced
from tests.node.harness import free_port

pytestmark = [pytest.mark.network, pytest.mark.usefixtures("clean_environment")]

PASSWORD = "banking test password"  # noqa: S105 - a test password
FAST_N = 2**10
_names = itertools.count()


@dataclass
class Customer:
    """A wallet directory and what the banking commands need to act for it."""

    stack: Stack
    directory: Path
    password_file: Path
    identity_key: str
    customer_id: int | None = None

    def options(self) -> list[str]:
        return [
            "--wallet", str(self.directory),
            "--password-file", str(self.password_file),
            "--operator", self.stack.operator.url,
        ]  # fmt: skip

    def json(self, command: str, *args: str) -> Any:  # Any: the command's JSON
        return self.stack.json("wallet", command, *args, *self.options())

    def fails(self, command: str, *args: str) -> str:
        return self.stack.fails("wallet", command, *args, *self.options())

    def wallet_balance(self) -> int:
        """The wallet's own CNY balance after a sync with the node."""
        with Wallet.open(self.directory, PASSWORD) as wallet:
            wallet.sync()
            return wallet.balance("CNY")["CNY"]

    def deposit(self, amount: str) -> None:
        assert self.customer_id is not None
        done = self.stack.operator_admin("deposit", str(self.customer_id), "--amount", amount)
        assert done["status"] == "done"


def make_wallet(stack: Stack, tmp_path: Path) -> Customer:
    label = f"wallet-{next(_names)}"
    directory = tmp_path / label
    with Wallet.create(directory, PASSWORD, stack.node.url, scrypt_n=FAST_N) as wallet:
        identity = wallet.identity_key.public_key.hex()
    password_file = tmp_path / f"{label}.password"
    password_file.write_text(PASSWORD + "\n")
    return Customer(stack, directory, password_file, identity)


def enrolled(stack: Stack, tmp_path: Path, tier: int = 2, deposit: str | None = None) -> Customer:
    """A wallet whose identity key the operator's admin added as a customer (and funded)."""
    customer = make_wallet(stack, tmp_path)
    added = stack.operator_admin(
        "add-customer", "--name", customer.directory.name, "--tier", str(tier),
        "--wallet-key", customer.identity_key,
    )  # fmt: skip
    customer.customer_id = int(added["customer_id"])
    if deposit is not None:
        customer.deposit(deposit)
    return customer


def float_total(stack: Stack) -> int:
    return int(stack.operator_admin("float")["total"])


def ledger_coins(stack: Stack, key: str) -> list[Any]:
    address = address_of(KeyLock(key=PublicKey(bytes.fromhex(key))), "tly")
    with NodeClient(stack.node.url) as node:
        return coins_from_json(node.address_coins(address))


# -- enroll and me -----------------------------------------------------------------------------


def test_enroll_shows_the_identity_key_and_whether_the_operator_knows_it(stack, tmp_path):
    customer = make_wallet(stack, tmp_path)
    before = customer.json("enroll")
    assert set(before) == {"operator", "identity_key", "enrolled", "customer_id", "tier"}
    assert before["enrolled"] is False
    assert before["identity_key"] == customer.identity_key
    assert before["customer_id"] is None
    readable = stack("wallet", "enroll", *customer.options()).stdout
    assert f"--wallet-key {customer.identity_key}" in " ".join(readable.split())

    added = stack.operator_admin(
        "add-customer", "--name", "gina", "--tier", "2", "--wallet-key", customer.identity_key
    )
    after = customer.json("enroll")
    assert after["enrolled"] is True
    assert after["customer_id"] == added["customer_id"]
    assert after["tier"] == 2


def test_me_shows_tier_limits_deposit_and_balance(stack, tmp_path):
    customer = enrolled(stack, tmp_path, deposit="120.00")
    me = customer.json("me")
    assert me["customer_id"] == customer.customer_id
    assert me["tier"] == 2
    assert me["hosted"] is False
    assert me["limits"]["balance_limit"] == 80_000
    assert me["limits"]["balance_limit_formatted"] == "800.00"
    assert me["deposit"] == 12_000
    assert me["deposit_formatted"] == "120.00"
    assert me["balance"] == 0
    readable = stack("wallet", "me", *customer.options()).stdout
    assert "120.00 CNY" in readable
    assert "800.00" in readable


def test_me_of_a_wallet_the_operator_does_not_know_is_refused(stack, tmp_path):
    customer = make_wallet(stack, tmp_path)
    line = customer.fails("me")
    assert "auth.invalid" in line
    assert "HTTP 401" in line


# -- load and unload ---------------------------------------------------------------------------


def test_load_then_unload_move_money_between_deposit_and_wallet_and_the_books_balance(
    stack, tmp_path
):
    customer = enrolled(stack, tmp_path, deposit="600.00")
    supply_before = stack.audit()["ledger"]["outstanding"]
    float_before = float_total(stack)

    loaded = customer.json("load", "--amount", "500.00")
    assert loaded["status"] == "done"
    assert loaded["kind"] == "load"
    assert loaded["amount"] == 50_000
    assert loaded["deposit"] == 10_000
    assert loaded["wallet_balance"] == 50_000
    assert loaded["idempotency_key"].startswith("load-")
    assert loaded["address"].startswith("tly1")
    coins = ledger_coins(stack, loaded["to"])
    assert [int(coin.amount) for _, coin in coins] == [50_000]
    assert customer.wallet_balance() == 50_000
    assert float_total(stack) == float_before - 50_000

    unloaded = customer.json("unload", "--amount", "100.00")
    assert unloaded["status"] == "done"
    assert unloaded["kind"] == "unload"
    assert unloaded["amount"] == 10_000
    assert unloaded["deposit"] == 20_000
    assert unloaded["wallet_balance"] == 40_000
    assert customer.wallet_balance() == 40_000
    assert float_total(stack) == float_before - 40_000

    me = customer.json("me")
    assert me["deposit"] == 20_000
    assert me["balance"] == 40_000  # the operator knows the wallet's change key too

    audit = wait_balanced(stack)
    assert audit["balanced"] is True
    assert audit["ledger"]["outstanding"] == supply_before  # money moved, none was made
    assert audit["ledger"]["outstanding"] == audit["reserves"]["frozen"]


def test_readable_load_and_unload_say_what_happened(stack, tmp_path):
    customer = enrolled(stack, tmp_path, deposit="20.00")
    loaded = stack("wallet", "load", "--amount", "12.00", *customer.options()).stdout
    assert "load of 12.00: done; deposit now 8.00" in loaded
    assert "wallet balance 12.00 CNY" in loaded
    assert "idempotency key load-" in loaded
    unloaded = stack("wallet", "unload", "--amount", "2.00", *customer.options()).stdout
    assert "unload of 2.00: done; deposit now 10.00" in unloaded
    assert "wallet balance 10.00 CNY" in unloaded


def test_a_load_over_the_tier_limit_is_refused_and_nothing_moves(stack, tmp_path):
    customer = enrolled(stack, tmp_path, deposit="1000.00")
    float_before = float_total(stack)
    line = customer.fails("load", "--amount", "900.00")
    assert "limit.exceeded" in line
    assert "HTTP 422" in line
    assert customer.json("me")["deposit"] == 100_000
    assert customer.wallet_balance() == 0
    assert float_total(stack) == float_before


def test_a_load_beyond_the_deposit_is_refused(stack, tmp_path):
    customer = enrolled(stack, tmp_path, deposit="10.00")
    line = customer.fails("load", "--amount", "10.01")
    assert "funds.insufficient" in line
    assert customer.json("me")["deposit"] == 1_000


def test_a_load_repeated_with_its_idempotency_key_moves_money_once(stack, tmp_path):
    customer = enrolled(stack, tmp_path, deposit="100.00")
    first = customer.json("load", "--amount", "30.00", "--idempotency-key", "payday-1")
    again = customer.json("load", "--amount", "30.00", "--idempotency-key", "payday-1")
    assert again["journal_id"] == first["journal_id"]
    assert again["to"] == first["to"]
    assert again["txid"] == first["txid"]
    assert customer.json("me")["deposit"] == 7_000
    assert customer.wallet_balance() == 3_000

    line = customer.fails("load", "--amount", "31.00", "--idempotency-key", "payday-1")
    assert "was used for a load of 30.00" in line
    line = customer.fails("unload", "--amount", "30.00", "--idempotency-key", "payday-1")
    assert "was used for a load" in line
    assert customer.json("me")["deposit"] == 7_000


def test_a_repeated_load_is_recognised_when_the_operator_writes_amounts_as_strings(
    stack, tmp_path, monkeypatch
):
    customer = enrolled(stack, tmp_path, deposit="10.00")
    first = customer.json("load", "--amount", "4.00", "--idempotency-key", "strings-1")
    real_history = OperatorClient.history

    def as_strings(self: Any) -> Any:
        return [{**entry, "amount": str(entry["amount"])} for entry in real_history(self)]

    monkeypatch.setattr(OperatorClient, "history", as_strings)
    again = customer.json("load", "--amount", "4.00", "--idempotency-key", "strings-1")
    assert again["journal_id"] == first["journal_id"]
    assert customer.json("me")["deposit"] == 600
    line = customer.fails("load", "--amount", "5.00", "--idempotency-key", "strings-1")
    assert "was used for a load of 4.00" in line


def test_an_unload_repeated_with_its_idempotency_key_moves_money_once(stack, tmp_path):
    customer = enrolled(stack, tmp_path, deposit="50.00")
    customer.json("load", "--amount", "50.00")
    first = customer.json("unload", "--amount", "20.00", "--idempotency-key", "back-1")
    again = customer.json("unload", "--amount", "20.00", "--idempotency-key", "back-1")
    assert first["status"] == again["status"] == "done"
    assert again["journal_id"] == first["journal_id"]
    assert again["txid"] == first["txid"]
    assert customer.json("me")["deposit"] == 2_000
    assert customer.wallet_balance() == 3_000


def test_an_unload_beyond_the_wallet_is_refused_before_anything_is_sent(stack, tmp_path):
    customer = enrolled(stack, tmp_path, deposit="5.00")
    customer.json("load", "--amount", "5.00")
    line = customer.fails("unload", "--amount", "6.00")
    assert "funds.insufficient" in line
    assert customer.json("me")["deposit"] == 0
    assert customer.wallet_balance() == 500


def test_an_unload_the_operator_refuses_frees_the_wallets_coins(stack, tmp_path, monkeypatch):
    customer = enrolled(stack, tmp_path, deposit="8.00")
    customer.json("load", "--amount", "8.00")

    def refuse(*_: Any, **__: Any) -> Any:
        raise ServiceCallError(422, "operator.tx_refused", "refused for the test", {})

    monkeypatch.setattr(OperatorClient, "unload", refuse)
    line = customer.fails("unload", "--amount", "3.00")
    assert "operator.tx_refused" in line
    monkeypatch.undo()
    assert customer.wallet_balance() == 800  # nothing left pending
    assert customer.json("unload", "--amount", "8.00")["status"] == "done"
    assert customer.wallet_balance() == 0


def test_a_wallet_of_another_chain_is_not_sent_to_the_operator(stack, tmp_path, monkeypatch):
    customer = enrolled(stack, tmp_path, deposit="1.00")
    real_info = OperatorClient.info

    def other_chain(self: Any) -> Any:
        return {**real_info(self), "chain_id": "elsewhere"}

    monkeypatch.setattr(OperatorClient, "info", other_chain)
    line = customer.fails("load", "--amount", "1.00")
    assert "serves chain 'elsewhere'" in line
    monkeypatch.undo()
    assert customer.json("me")["deposit"] == 100


def test_an_unreachable_operator_is_one_clear_line(stack, tmp_path):
    customer = make_wallet(stack, tmp_path)
    url = f"http://127.0.0.1:{free_port()}"
    line = stack.fails(
        "wallet", "me", "--wallet", str(customer.directory),
        "--password-file", str(customer.password_file), "--operator", url,
    )  # fmt: skip
    assert "not reachable" in line
    assert url in line


# -- hosted wallets ----------------------------------------------------------------------------


def test_a_hosted_customer_loads_pays_and_unloads_with_its_token(stack, tmp_path):
    hosted = stack.operator_admin("add-customer", "--name", "hal", "--tier", "1", "--hosted")
    stack.operator_admin("deposit", str(hosted["customer_id"]), "--amount", "50.00")
    token_file = tmp_path / "hal.token"
    token_file.write_text(hosted["token"] + "\n")
    as_hal = ["--operator", stack.operator.url, "--token-file", str(token_file)]

    loaded = stack.json("wallet", "load", "--amount", "40.00", *as_hal)
    assert loaded["status"] == "done"
    assert loaded["to"] == hosted["hosted_key"]
    assert loaded["deposit"] == 1_000

    payee = new_key().public_key.hex()
    paid = stack.json(
        "wallet", "hosted-pay", "--to", payee, "--amount", "15.00", "--token", hosted["token"],
        "--operator", stack.operator.url,
    )  # fmt: skip
    assert paid["status"] == "done"
    assert paid["kind"] == "pay"
    assert [int(coin.amount) for _, coin in ledger_coins(stack, payee)] == [1_500]

    unloaded = stack.json("wallet", "unload", "--amount", "5.00", *as_hal)
    assert unloaded["status"] == "done"
    assert unloaded["deposit"] == 1_500

    me = stack.json("wallet", "me", *as_hal)
    assert me["hosted"] is True
    assert me["balance"] == 2_000
    assert me["deposit"] == 1_500
    assert sum(int(coin.amount) for _, coin in ledger_coins(stack, hosted["hosted_key"])) == 2_000


def test_a_hosted_payment_over_the_tier_limit_is_refused(stack):
    hosted = stack.operator_admin("add-customer", "--name", "ivy", "--tier", "1", "--hosted")
    payee = new_key().public_key.hex()
    line = stack.fails(
        "wallet", "hosted-pay", "--to", payee, "--amount", "2000.01", "--token", hosted["token"],
        "--operator", stack.operator.url,
    )  # fmt: skip
    assert "limit.exceeded" in line
    assert ledger_coins(stack, payee) == []


def test_a_wrong_token_is_refused_with_auth_invalid(stack):
    line = stack.fails(
        "wallet", "load", "--amount", "1.00", "--token", "not-a-token",
        "--operator", stack.operator.url,
    )  # fmt: skip
    assert "auth.invalid" in line


def test_hosted_pay_needs_a_token_and_a_public_key(stack):
    payee = new_key().public_key.hex()
    line = stack.fails("wallet", "hosted-pay", "--to", payee, "--amount", "1.00")
    assert "--token" in line
    line = stack.fails("wallet", "hosted-pay", "--to", "tly1abc", "--amount", "1.00")
    assert "64 hex digits" in line


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("enroll", "identity key for the operator"),
        ("me", "tier, limits, deposit"),
        ("load", "from your deposit account at the operator into your wallet"),
        ("unload", "from your wallet back to your deposit account"),
        ("hosted-pay", "Pay from a hosted wallet"),
    ],
)
def test_the_help_of_each_command_says_what_it_does(command, says):
    assert says in help_text("wallet", command)


def test_offline_limits_come_from_the_customers_tier_at_the_operator(stack, tmp_path):
    customer = enrolled(stack, tmp_path)
    limits = customer.json("me")["limits"]
    # `operator init --tier 2:800.00:300.00` sets the online limits; the offline ones default.
    assert (limits["offline_payment_limit"], limits["offline_hops"]) == (50_000, 2)
    setup = stack.json(
        "wallet", "offline", "setup", "--genesis", str(stack.network / "genesis.bin"),
        "--operator", stack.operator.url,
        "--wallet", str(customer.directory), "--password-file", str(customer.password_file),
    )  # fmt: skip
    assert setup["max_payment"] == limits["offline_payment_limit"]
    assert setup["max_unsettled"] == limits["offline_unsettled_limit"]
    assert setup["max_hops"] == 2
    # An option still wins over the tier.
    narrower = stack.json(
        "wallet", "offline", "setup", "--genesis", str(stack.network / "genesis.bin"),
        "--operator", stack.operator.url, "--max-hops", "1",
        "--wallet", str(customer.directory), "--password-file", str(customer.password_file),
    )  # fmt: skip
    assert narrower["max_hops"] == 1
