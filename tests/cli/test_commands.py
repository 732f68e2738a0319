"""Network commands against an in-process node: pay, look up, sign offline, and fail cleanly."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tally.cli import context
from tally.client import NodeClient
from tally.crypto.schnorr import verify
from tally.model import KeyLock, SignedTx, Transfer, address_of, decode, sighash, tx_id
from tests.cli.conftest import Cli
from tests.rules.helpers import ALICE, BOB, CHAIN_ID, HRP, pub

ALICE_ADDRESS = address_of(KeyLock(key=pub(ALICE)), HRP)
BOB_ADDRESS = address_of(KeyLock(key=pub(BOB)), HRP)


def _json(cli: Cli, *args: str, code: int = 0) -> Any:  # Any: the command's JSON
    return json.loads(cli(*args, "--json", code=code).stdout)


def _fund_alice(cli: Cli, amount: str = "1000.00") -> Any:
    return _json(cli, "issue", amount, "cny", "--to", cli.path("alice.key"))


def test_issue_transfer_and_every_query(cli: Cli) -> None:
    issued = _fund_alice(cli)
    assert issued["status"] == "committed"
    assert _json(cli, "balance", cli.path("alice.key"))["balance"] == {"CNY": "100000"}

    paid = _json(
        cli,
        "transfer",
        "120.50",
        "CNY",
        "--key",
        cli.path("alice.key"),
        "--to",
        cli.path("bob.key"),
    )
    assert paid["status"] == "committed"
    assert _json(cli, "balance", BOB_ADDRESS)["balance"] == {"CNY": "12050"}
    assert _json(cli, "balance", pub(ALICE).hex())["balance"] == {"CNY": "87950"}

    shown = _json(cli, "tx", "show", paid["txid"])
    assert shown["tx"]["kind"] == "transfer"
    assert [o["amount"] for o in shown["tx"]["outputs"]] == ["12050", "87950"]
    block = _json(cli, "block", "show", str(paid["height"]))
    assert [t["txid"] for t in block["txs"]] == [paid["txid"]]
    assert _json(cli, "block", "show")["header"]["height"] == paid["height"]
    supply = _json(cli, "supply")["assets"]["CNY"]
    assert supply == {"issued": "100000", "redeemed": "0", "outstanding": "100000"}
    assert _json(cli, "status")["height"] == paid["height"]

    human = cli("balance", cli.path("bob.key"), "--coins").stdout
    assert "120.50" in human
    assert BOB_ADDRESS in human
    assert "committed" in cli("tx", "show", paid["txid"]).stdout
    assert "certificate" in cli("block", "show", "latest").stdout
    assert "1000.00" in cli("supply").stdout
    assert CHAIN_ID in cli("status").stdout


def test_transfer_to_an_address_uses_the_lock_of_its_coins(cli: Cli) -> None:
    _fund_alice(cli, "10")
    _json(cli, "issue", "1", "CNY", "--to", cli.path("bob.key"))
    paid = _json(cli, "transfer", "4", "CNY", "--key", cli.path("alice.key"), "--to", BOB_ADDRESS)
    assert paid["status"] == "committed"
    assert _json(cli, "balance", BOB_ADDRESS)["balance"] == {"CNY": "5"}
    fresh = cli(
        "transfer",
        "1",
        "CNY",
        "--key",
        cli.path("bob.key"),
        "--to",
        address_of(KeyLock(key=pub(77)), HRP),
        code=1,
    )
    assert "holds no coins" in fresh.stderr


def test_sign_only_writes_a_transaction_that_tx_submit_sends(cli: Cli) -> None:
    _fund_alice(cli, "100")
    out = cli.root / "pay.tx"
    signed = _json(
        cli,
        "transfer",
        "30",
        "CNY",
        "--key",
        cli.path("alice.key"),
        "--to",
        cli.path("bob.key"),
        "--sign-only",
        str(out),
    )
    tx = decode(out.read_bytes(), SignedTx)
    assert isinstance(tx.body, Transfer)
    assert signed["txid"] == tx_id(tx.body).hex()
    assert [o.amount for o in tx.body.outputs] == [30, 70]
    assert tx.body.outputs[0].lock == KeyLock(key=pub(BOB))
    message = sighash(CHAIN_ID, tx_id(tx.body))
    assert verify(pub(ALICE), message, tx.witnesses[0].signatures[0].sig)
    assert _json(cli, "balance", BOB_ADDRESS)["balance"] == {}  # not sent

    sent = _json(cli, "tx", "submit", str(out))
    assert (sent["status"], sent["txid"]) == ("committed", signed["txid"])
    assert _json(cli, "balance", BOB_ADDRESS)["balance"] == {"CNY": "30"}
    refused = cli(
        "transfer",
        "1",
        "CNY",
        "--key",
        cli.path("alice.key"),
        "--to",
        cli.path("bob.key"),
        "--sign-only",
        str(out),
        code=1,
    )
    assert "exists" in refused.stderr


def test_offline_signing_from_a_saved_coin_list(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    _fund_alice(cli, "100")
    coins = cli.root / "coins.json"
    coins.write_text(cli("balance", cli.path("alice.key"), "--json").stdout)
    height = _json(cli, "status")["height"]

    def offline(url: str) -> NodeClient:
        raise AssertionError("offline signing must not contact the node")

    monkeypatch.setattr(context, "client_factory", offline)
    out = cli.root / "offline.tx"
    cli(
        "transfer",
        "100",
        "CNY",
        "--key",
        cli.path("alice.key"),
        "--to",
        cli.path("bob.key"),
        "--sign-only",
        str(out),
        "--coins",
        str(coins),
        "--valid-until",
        str(height + 10),
    )
    tx = decode(out.read_bytes(), SignedTx)
    assert isinstance(tx.body, Transfer)
    assert [o.amount for o in tx.body.outputs] == [100]  # exact: no change
    assert tx.body.valid_until == height + 10


def test_user_errors_are_one_red_line_and_exit_1(cli: Cli) -> None:
    _fund_alice(cli, "1.00")
    too_much = cli(
        "transfer",
        "2.00",
        "CNY",
        "--key",
        cli.path("alice.key"),
        "--to",
        cli.path("bob.key"),
        code=1,
    )
    assert "holds 1.00 CNY in 1 coin(s), less than 2.00" in too_much.stderr
    wrong_issuer = cli(
        "issue", "5", "CNY", "--to", cli.path("bob.key"), "--key", cli.path("alice.key"), code=1
    )
    assert "the node refused: issue.unauthorized" in wrong_issuer.stderr
    for args, message in [
        (("issue", "1.001", "CNY", "--to", cli.path("bob.key")), "more than 2 decimal places"),
        (("issue", "1", "EUR", "--to", cli.path("bob.key")), "no issuer key for EUR"),
        (("issue", "1", "CNY", "--to", "nobody"), "is not a key file"),
        (("transfer", "1", "CNY", "--to", cli.path("bob.key")), "pass --key FILE"),
        (("block", "show", "99"), "the node refused: not_found"),
        (("block", "show", "tip"), "a block is a height"),
        (("tx", "show", "abc"), "64 hex digits"),
        (("balance", "tly1qqqq"), "address.invalid"),
    ]:
        result = cli(*args, code=1)
        assert message in result.stderr, (args, result.output)
        assert "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_unreachable_node_is_named_in_the_error(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    monkeypatch.setattr(
        context,
        "client_factory",
        lambda url: NodeClient(url, transport=httpx.MockTransport(refuse)),
    )
    result = cli("status", code=1)
    assert "cannot reach the node at http://testserver" in result.stderr


def test_a_node_of_another_chain_is_refused(cli: Cli) -> None:
    network = cli.root / "network.toml"
    network.write_text(network.read_text().replace(CHAIN_ID, "other-chain"))
    result = cli("issue", "1", "CNY", "--to", cli.path("bob.key"), code=1)
    assert "serves chain 'tally-test'" in result.stderr
