"""`tally issuer` against real processes: a node made by `tally init`, an issuer, an operator.

The package's `stack` (`tests.cli.harness`) was set up through these commands; the tests
here check what that left, then run the commands again on it.
"""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from tally.cli.services import write_token_file
from tally.services.common.auth import hash_token
from tally.services.issuer.config import load_issuer_config
from tests.cli.harness import RESERVE, help_text, serve_in_foreground, wait_balanced
from tests.node.harness import free_port

pytestmark = [pytest.mark.network, pytest.mark.usefixtures("clean_environment")]


# -- init and start ----------------------------------------------------------------------------


def test_init_prints_the_admin_token_once_and_keeps_it_in_a_private_file(stack):
    init = stack.issuer_init
    token_file = stack.issuer_dir / "admin.token"
    assert Path(init["admin_token_file"]) == token_file
    assert token_file.read_text().strip() == init["admin_token"]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    config = load_issuer_config(stack.issuer_dir)
    assert config.admin_token_hash == hash_token(init["admin_token"])
    assert init["admin_token"] not in (stack.issuer_dir / "issuer.toml").read_text()
    assert config.asset == init["asset"] == "CNY"
    network_toml = (stack.network / "network.toml").read_text()
    assert config.node_url == init["node_url"] == stack.node.url
    assert stack.node.url in network_toml
    assert init["url"] == stack.issuer.url
    health = httpx.get(stack.issuer.url + "/v1/health", timeout=5).json()
    assert health["issuer"] == init["issuer_key"]


def test_init_refuses_a_directory_that_holds_an_issuer(stack):
    before = (stack.issuer_dir / "issuer.toml").read_text()
    line = stack.fails("issuer", "init", str(stack.issuer_dir), "--network", str(stack.network))
    assert "already holds an issuer" in line
    assert (stack.issuer_dir / "issuer.toml").read_text() == before


def test_init_names_an_asset_the_network_has_no_issuer_key_for(stack, tmp_path):
    line = stack.fails(
        "issuer", "init", str(tmp_path / "usd"), "--network", str(stack.network),
        "--asset", "USD",
    )  # fmt: skip
    assert "no issuer key for USD" in line
    assert not (tmp_path / "usd" / "issuer.toml").exists()


def test_start_runs_the_issuer_in_the_foreground_until_sigterm(stack, tmp_path):
    port = free_port()
    directory = tmp_path / "second-issuer"
    stack(
        "issuer", "init", str(directory), "--network", str(stack.network), "--port", str(port),
        "--json",
    )  # fmt: skip
    health = serve_in_foreground(
        "from tally.cli.issuer import app; app()",
        ["start", str(directory), "--log-level", "warning"],
        f"http://127.0.0.1:{port}/v1/health",
        tmp_path / "start.log",
    )
    assert health["ok"] is True
    assert health["asset"] == "CNY"


def test_start_of_a_directory_without_an_issuer_is_one_clear_error(stack, tmp_path):
    line = stack.fails("issuer", "start", str(tmp_path))
    assert "issuer.toml" in line
    assert "tally issuer init" in line


# -- admin -------------------------------------------------------------------------------------


def test_add_operator_reads_both_keys_from_the_operator_directory(stack):
    registered = stack.registered
    assert registered["name"] == "bank-a"
    assert registered["key"] == stack.operator_init["identity_key"]
    assert registered["float_key"] == stack.operator_init["float_key"]
    assert registered["available"] == 0
    assert registered["available_formatted"] == "0.00"


def test_fund_credits_the_reserve_once_per_idempotency_key(stack):
    funded = stack.funded
    assert funded["amount"] == 100_000_000
    assert funded["amount_formatted"] == RESERVE
    assert funded["idempotency_key"].startswith("fund-")
    assert funded["operator_id"] == stack.operator_id

    def reserve() -> int:
        accounts = {a["id"]: a for a in stack.issuer_admin("operators")["operators"]}
        account = accounts[stack.operator_id]
        return int(account["available"]) + int(account["frozen"])

    before = reserve()
    first = stack.issuer_admin(
        "fund", str(stack.operator_id), "--amount", "10.00", "--idempotency-key", "top-up-7"
    )
    again = stack.issuer_admin(
        "fund", str(stack.operator_id), "--amount", "10.00", "--idempotency-key", "top-up-7"
    )
    assert first["deposit_id"] == again["deposit_id"]
    assert reserve() == before + 1000

    line = stack.fails(
        "issuer", "fund", str(stack.operator_id), "--amount", "11.00",
        "--idempotency-key", "top-up-7", "--dir", str(stack.issuer_dir),
    )  # fmt: skip
    assert "idempotency.conflict" in line
    assert "HTTP 409" in line
    assert reserve() == before + 1000


def test_readable_output_shows_the_operators_and_the_audit(stack):
    listing = stack("issuer", "operators", "--dir", str(stack.issuer_dir)).stdout
    assert "bank-a" in listing
    audit = stack("issuer", "audit", "--url", stack.issuer.url).stdout
    assert "balanced" in audit
    assert "yes" in audit
    assert "bank-a" in audit


def test_audit_shows_supply_equal_to_frozen_reserves_per_operator(stack):
    audit = wait_balanced(stack)
    assert audit["balanced"] is True
    assert audit["asset"] == "CNY"
    assert audit["ledger"]["outstanding"] == audit["reserves"]["frozen"]
    assert audit["ledger"]["outstanding"] >= 500_000  # the float the rebalance issued
    ours = next(o for o in audit["operators"] if o["id"] == stack.operator_id)
    assert ours["frozen"] >= 500_000
    assert ours["frozen_formatted"] == f"{ours['frozen'] // 100}.{ours['frozen'] % 100:02d}"
    assert audit["certificates"]


def test_certificate_shows_the_freeze_behind_an_issuance(stack):
    entry = stack.audit()["certificates"][0]
    view = stack.json("issuer", "certificate", entry["hash"], "--url", stack.issuer.url)
    assert view["hash"] == entry["hash"]
    assert view["certificate"]["amount"] == entry["amount"]
    assert view["certificate"]["operator"] == stack.operator_init["identity_key"]
    assert view["issuer"] == stack.issuer_init["issuer_key"]
    assert view["status"] == "committed"

    line = stack.fails("issuer", "certificate", "ab" * 32, "--url", stack.issuer.url)
    assert "service.not_found" in line


# -- refusals ----------------------------------------------------------------------------------


def test_a_wrong_admin_token_is_refused_with_auth_invalid_and_changes_nothing(stack, tmp_path):
    before = stack.issuer_admin("operators")
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-token\n")
    for command in (
        ["operators"],
        ["fund", str(stack.operator_id), "--amount", "5.00"],
        ["add-operator", "--operator-dir", str(stack.operator_dir), "--name", "mallory"],
    ):
        line = stack.fails(
            "issuer", *command, "--url", stack.issuer.url, "--admin-token-file", str(wrong)
        )
        assert "auth.invalid" in line
        assert "HTTP 401" in line
    assert stack.issuer_admin("operators") == before


def test_the_admin_token_may_come_from_the_environment(stack, monkeypatch):
    monkeypatch.setenv("TALLY_ISSUER_URL", stack.issuer.url)
    monkeypatch.setenv("TALLY_ISSUER_ADMIN_TOKEN", stack.issuer_init["admin_token"])
    listing = stack.json("issuer", "operators")
    assert stack.operator_id in [o["id"] for o in listing["operators"]]
    monkeypatch.setenv("TALLY_ISSUER_ADMIN_TOKEN", "wrong")
    assert "auth.invalid" in stack.fails("issuer", "operators")


def test_an_admin_command_without_a_token_says_where_to_give_one(stack):
    line = stack.fails("issuer", "operators", "--url", stack.issuer.url)
    assert "--admin-token-file" in line
    assert "TALLY_ISSUER_ADMIN_TOKEN" in line


def test_an_unreachable_issuer_is_one_clear_line(stack):
    url = f"http://127.0.0.1:{free_port()}"
    line = stack.fails("issuer", "audit", "--url", url)
    assert "not reachable" in line
    assert url in line


def test_a_bad_amount_is_refused_before_any_call(stack):
    line = stack.fails(
        "issuer", "fund", str(stack.operator_id), "--amount", "1.005", "--dir",
        str(stack.issuer_dir),
    )  # fmt: skip
    assert "more than 2 decimal places" in line


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("init", "Create an issuer's directory"),
        ("start", "Run the issuer service in the foreground"),
        ("add-operator", "Register an operator"),
        ("fund", "Credit an operator's reserve account"),
        ("operators", "List the registered operators"),
        ("audit", "outstanding supply beside the frozen reserves"),
        ("certificate", "signed freeze certificate"),
    ],
)
def test_the_help_of_each_command_says_what_it_does(command, says):
    assert says in help_text("issuer", command)


def test_a_token_file_replacing_an_old_one_is_private(tmp_path):
    path = tmp_path / "admin.token"
    path.write_text("old\n")
    path.chmod(0o644)
    write_token_file(path, "new-token")
    assert path.read_text() == "new-token\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
