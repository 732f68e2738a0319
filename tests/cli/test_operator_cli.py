"""`tally operator` against real processes (the package's `stack`, from `tests.cli.harness`)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tally.node.keyfile import new_key, read_key
from tally.services.common.auth import hash_token
from tally.services.operator.config import TierLimits, load_config
from tests.cli.harness import Stack, help_text, serve_in_foreground
from tests.node.harness import free_port

pytestmark = [pytest.mark.network, pytest.mark.usefixtures("clean_environment")]


def customer(stack: Stack, name: str, tier: int = 2) -> int:
    """A new self-custody customer with a throwaway wallet key; its id."""
    key = new_key().public_key.hex()
    added = stack.operator_admin(
        "add-customer", "--name", name, "--tier", str(tier), "--wallet-key", key
    )
    assert added["wallet_key"] == key
    return int(added["customer_id"])


def deposit_of(stack: Stack, customer_id: int) -> int:
    rows = {row["customer_id"]: row for row in stack.operator_admin("customers")["customers"]}
    return int(rows[customer_id]["deposit"])


# -- init and start ----------------------------------------------------------------------------


def test_init_prints_the_token_once_and_the_keys_the_issuer_registers(stack):
    init = stack.operator_init
    directory = stack.operator_dir
    token_file = directory / "admin.token"
    assert token_file.read_text().strip() == init["admin_token"]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    config = load_config(directory)
    assert config.admin_token_hash == hash_token(init["admin_token"])
    assert init["admin_token"] not in (directory / "operator.toml").read_text()
    assert read_key(config.key_file).public_key.hex() == init["identity_key"]
    assert read_key(config.float_key_file).public_key.hex() == init["float_key"]
    assert config.node_url == stack.node.url
    assert config.issuer_url == init["issuer_url"] == stack.issuer.url
    assert init["url"] == stack.operator.url


def test_init_takes_tier_limits_and_float_marks(stack):
    config = load_config(stack.operator_dir)
    assert config.tiers[2] == TierLimits(balance_limit=80_000, payment_limit=30_000)
    assert config.tiers[1] == TierLimits(balance_limit=1_000_000, payment_limit=200_000)
    assert (config.float_policy.low, config.float_policy.target) == (100_000, 500_000)
    assert config.float_policy.high == 10_000_000
    assert stack.operator_init["tiers"]["2"]["balance_limit_formatted"] == "800.00"
    assert stack.operator_init["float_policy"]["target_formatted"] == "5000.00"


def test_init_refuses_marks_out_of_order_and_a_malformed_tier(stack, tmp_path):
    line = stack.fails(
        "operator", "init", str(tmp_path / "a"), "--network", str(stack.network), "--name", "a",
        "--float-low", "10.00", "--float-target", "5.00",
    )  # fmt: skip
    assert "low <= target <= high" in line
    line = stack.fails(
        "operator", "init", str(tmp_path / "b"), "--network", str(stack.network), "--name", "b",
        "--tier", "2-800",
    )  # fmt: skip
    assert "TIER:BALANCE_LIMIT:PAYMENT_LIMIT" in line
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()


def test_init_refuses_a_directory_that_holds_an_operator(stack):
    before = (stack.operator_dir / "operator.toml").read_text()
    line = stack.fails(
        "operator", "init", str(stack.operator_dir), "--network", str(stack.network),
        "--name", "again",
    )  # fmt: skip
    assert "already an operator's" in line
    assert (stack.operator_dir / "operator.toml").read_text() == before


def test_start_runs_the_operator_in_the_foreground_until_sigterm(stack, tmp_path):
    port = free_port()
    directory = tmp_path / "second-operator"
    stack(
        "operator", "init", str(directory), "--network", str(stack.network), "--name", "bank-c",
        "--issuer-url", stack.issuer.url, "--port", str(port), "--json",
    )  # fmt: skip
    info = serve_in_foreground(
        "from tally.cli.operator import app; app()",
        ["start", str(directory)],
        f"http://127.0.0.1:{port}/v1/info",
        tmp_path / "start.log",
    )
    assert info["name"] == "bank-c"


def test_start_of_a_directory_without_an_operator_is_one_clear_error(stack, tmp_path):
    line = stack.fails("operator", "start", str(tmp_path))
    assert "operator.toml" in line
    assert "tally operator init" in line


# -- the float ---------------------------------------------------------------------------------


def test_rebalance_had_the_issuer_issue_the_float_up_to_its_target(stack):
    rebalanced = stack.rebalanced
    assert rebalanced["action"] == "issue"
    assert rebalanced["status"] == "done"
    assert rebalanced["amount"] == 500_000
    assert rebalanced["amount_formatted"] == "5000.00"
    assert rebalanced["total_before"] == 0
    assert rebalanced["total_after"] == 500_000
    assert rebalanced["result"]["kind"] == "issuance"

    again = stack.operator_admin("rebalance")
    assert again["action"] == "none"
    readable = stack("operator", "rebalance", "--dir", str(stack.operator_dir)).stdout
    assert "between its marks" in readable


def test_float_shows_the_coins_under_the_float_key(stack):
    view = stack.operator_admin("float")
    assert view["key"] == stack.operator_init["float_key"]
    assert view["asset"] == "CNY"
    assert view["total"] == sum(coin["amount"] for coin in view["coins"])
    assert view["total"] >= view["available"] > 0
    assert view["policy"]["low_formatted"] == "1000.00"
    readable = stack("operator", "float", "--dir", str(stack.operator_dir)).stdout
    assert stack.operator_init["float_key"] in readable


# -- customers and deposits --------------------------------------------------------------------


def test_add_customer_self_custody_and_hosted(stack):
    alice = customer(stack, "alice-admin")
    hosted = stack.operator_admin("add-customer", "--name", "hank", "--tier", "1", "--hosted")
    assert hosted["hosted"] is True
    assert hosted["token"]
    assert len(hosted["hosted_key"]) == 64
    listed = {row["customer_id"]: row for row in stack.operator_admin("customers")["customers"]}
    assert listed[alice]["hosted"] is False
    assert listed[hosted["customer_id"]]["hosted"] is True
    assert "token" not in listed[hosted["customer_id"]]
    readable = stack("operator", "customers", "--dir", str(stack.operator_dir)).stdout
    assert "alice-admin" in readable
    assert "hank" in readable


def test_add_customer_needs_exactly_one_kind_of_wallet(stack):
    directory = str(stack.operator_dir)
    line = stack.fails("operator", "add-customer", "--name", "x", "--tier", "1", "--dir", directory)
    assert "exactly one of --wallet-key" in line
    line = stack.fails(
        "operator", "add-customer", "--name", "x", "--tier", "9", "--wallet-key", "ab" * 32,
        "--dir", str(stack.operator_dir),
    )  # fmt: skip
    assert "request.invalid" in line


def test_add_customer_refuses_an_empty_wallet_key_and_adds_nobody(stack):
    # An empty key once went to the service as no key at all: a hosted customer whose token
    # was never shown.
    before = stack.operator_admin("customers")
    line = stack.fails(
        "operator", "add-customer", "--name", "x", "--tier", "1", "--wallet-key", "",
        "--dir", str(stack.operator_dir),
    )  # fmt: skip
    assert "--wallet-key must be a public key of 64 hex digits" in line
    assert stack.operator_admin("customers") == before


def test_deposit_credits_once_per_idempotency_key(stack):
    who = customer(stack, "dora")
    first = stack.operator_admin(
        "deposit", str(who), "--amount", "250.00", "--idempotency-key", "counter-1"
    )
    assert first["status"] == "done"
    assert first["amount"] == 25_000
    assert first["deposit"] == 25_000
    assert first["deposit_formatted"] == "250.00"
    assert first["idempotency_key"] == "counter-1"
    again = stack.operator_admin(
        "deposit", str(who), "--amount", "250.00", "--idempotency-key", "counter-1"
    )
    assert again["journal_id"] == first["journal_id"]
    assert deposit_of(stack, who) == 25_000

    fresh = stack.operator_admin("deposit", str(who), "--amount", "1.50")
    assert fresh["idempotency_key"].startswith("deposit-")
    assert deposit_of(stack, who) == 25_150
    directory = str(stack.operator_dir)
    readable = stack("operator", "deposit", str(who), "--amount", "1", "--dir", directory).stdout
    assert "deposit now 251.51" in readable
    assert "idempotency key deposit-" in readable


def test_deposit_to_an_unknown_customer_is_refused(stack):
    directory = str(stack.operator_dir)
    line = stack.fails("operator", "deposit", "999999", "--amount", "1.00", "--dir", directory)
    assert "service.not_found" in line
    assert "HTTP 404" in line


def test_journal_lists_a_customers_movements(stack):
    who = customer(stack, "erin")
    stack.operator_admin("deposit", str(who), "--amount", "3.00", "--idempotency-key", "j-1")
    entries = stack.operator_admin("journal", "--customer", str(who))["entries"]
    assert [(e["kind"], e["amount"], e["idempotency_key"]) for e in entries] == [
        ("deposit", 300, "j-1")
    ]
    everything = stack.operator_admin("journal")["entries"]
    assert any(e["kind"] == "issuance" for e in everything)
    assert "deposit" in stack("operator", "journal", "--dir", str(stack.operator_dir)).stdout


# -- refusals ----------------------------------------------------------------------------------


def test_a_wrong_admin_token_is_refused_with_auth_invalid_and_changes_nothing(stack, tmp_path):
    who = customer(stack, "frank")
    wrong = tmp_path / "wrong.token"
    wrong.write_text("nope\n")
    before = stack.operator_admin("customers")
    for command in (
        ["customers"],
        ["deposit", str(who), "--amount", "5.00"],
        ["add-customer", "--name", "mallory", "--tier", "1", "--hosted"],
        ["rebalance"],
        ["float"],
        ["journal"],
    ):
        line = stack.fails(
            "operator", *command, "--url", stack.operator.url, "--admin-token-file", str(wrong)
        )
        assert "auth.invalid" in line, command
    assert stack.operator_admin("customers") == before


def test_the_admin_token_and_url_may_come_from_the_environment(stack, monkeypatch):
    monkeypatch.setenv("TALLY_OPERATOR_URL", stack.operator.url)
    monkeypatch.setenv("TALLY_OPERATOR_ADMIN_TOKEN", stack.operator_init["admin_token"])
    assert "customers" in stack.json("operator", "customers")
    monkeypatch.delenv("TALLY_OPERATOR_ADMIN_TOKEN")
    line = stack.fails("operator", "customers")
    assert "TALLY_OPERATOR_ADMIN_TOKEN" in line


def test_an_unreachable_operator_is_one_clear_line(stack, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    token = tmp_path / "token"
    token.write_text("whatever\n")
    line = stack.fails("operator", "customers", "--url", url, "--admin-token-file", str(token))
    assert "not reachable" in line
    assert url in line


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("init", "Create an operator's directory"),
        ("start", "Run the operator service in the foreground"),
        ("add-customer", "Add a customer"),
        ("deposit", "Credit a customer's deposit account"),
        ("customers", "List the customers"),
        ("float", "Show the float"),
        ("rebalance", "Bring the float between its marks"),
        ("journal", "journal of money movements"),
    ],
)
def test_the_help_of_each_command_says_what_it_does(command, says):
    assert says in help_text("operator", command)


def test_the_directory_of_a_missing_operator_is_named(stack, tmp_path):
    line = stack.fails("operator", "customers", "--dir", str(tmp_path / "none"))
    assert str(Path(tmp_path / "none")) in line
