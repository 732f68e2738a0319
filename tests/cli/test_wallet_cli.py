"""`tally wallet` against a real node process on loopback.

One node serves the module; each test makes its own wallets with `wallet create` (scrypt
lowered through the hidden `--scrypt-n`) and funds them with issuances signed by the test
genesis's issuer key, paid to keys that `wallet address --json` printed. Commands run
in-process through typer's runner on `tally`'s app; the merchant counter runs as its own
process, so that its codes can be read while it waits for their payments.
"""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tally.cli import wallet as wallet_cli
from tally.cli.main import app
from tally.client import NodeClient, make_issue
from tally.model import Params
from tally.wallet.keys import derive_key
from tally.wallet.payment_request import parse_uri, verify_request
from tests.cli.harness import error_line, help_text, python_env, tally_cli
from tests.node.harness import NodeProcess, free_port, make_node_dir
from tests.rules.helpers import (
    CHAIN_ID,
    CNY_ISSUER,
    HRP,
    RESERVE_REF,
    USD_ISSUER,
    key,
    make_genesis,
)

pytestmark = [pytest.mark.network, pytest.mark.usefixtures("clean_environment")]

PASSWORD = "cli wallet password"  # noqa: S105 - a test password
FAST_N = "1024"
ISSUERS = {"CNY": CNY_ISSUER, "USD": USD_ISSUER}
_nonces = itertools.count(1)


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("network")
    genesis = make_genesis(params=Params(block_interval_ms=10))
    port = free_port()
    process = NodeProcess(make_node_dir(directory, genesis, port), port)
    process.start()
    yield process.url
    process.stop()


@pytest.fixture(scope="module")
def client(node_url: str) -> Iterator[NodeClient]:
    with NodeClient(node_url) as opened:
        yield opened


@dataclass
class WalletCli:
    """Runs `tally wallet` commands on one wallet directory with its password file."""

    directory: Path
    password_file: Path
    runner: CliRunner
    created: dict[str, Any]

    def __call__(self, *args: str, code: int = 0, input: str | None = None) -> Result:
        options = ["--wallet", str(self.directory), "--password-file", str(self.password_file)]
        return tally_cli(self.runner, "wallet", *args, *options, code=code, input=input)

    def json(self, *args: str) -> Any:  # Any: the command's JSON document
        return json.loads(self(*args, "--json").stdout)

    def fails(self, *args: str, input: str | None = None) -> str:
        """Run a command that must fail; its one error line."""
        return error_line(self(*args, code=1, input=input))

    def receive_key(self) -> str:
        return str(self.json("address")["public_key"])

    def balance(self, asset: str = "CNY") -> int:
        return int(self.json("balance", "--asset", asset)["balances"][asset]["amount"])


@pytest.fixture
def make_wallet(node_url: str, tmp_path: Path) -> Any:
    names = itertools.count()

    def make(name: str | None = None) -> WalletCli:
        label = name or f"wallet-{next(names)}"
        password_file = tmp_path / f"{label}.password"
        password_file.write_text(PASSWORD + "\n")
        cli = WalletCli(tmp_path / label, password_file, CliRunner(), {})
        created = cli.json("create", "--node", node_url, "--scrypt-n", FAST_N)
        cli.created.update(created)
        return cli

    return make


def fund(client: NodeClient, public_key: str, asset: str, amount: int) -> None:
    """Issue a coin of `amount` to `public_key` and wait for its block."""
    height = client.status()["height"]
    tx = make_issue(
        asset,
        key(ISSUERS[asset]),
        [(bytes.fromhex(public_key), amount)],
        RESERVE_REF,
        next(_nonces),
        height + 50,
        CHAIN_ID,
    )
    assert client.submit(tx, wait=True)["status"] == "committed"


def advance(client: NodeClient, blocks: int) -> None:
    """Cut `blocks` blocks, each with one throwaway issuance."""
    sink = derive_key(bytes(32), 0).public_key.hex()
    for _ in range(blocks):
        fund(client, sink, "USD", 1)


# -- help, create, passwords ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("create", "Create a new wallet"),
        ("address", "fresh receive key"),
        ("sync", "Catch up with the node"),
        ("balance", "spendable balance"),
        ("history", "what each transaction did"),
        ("pay", "Pay a merchant's payment request"),
        ("request", "signed, expiring payment request"),
        ("counter", "new dynamic payment code for every sale"),
        ("preauth", "Pre-authorise an amount to a merchant"),
        ("capture", "Capture up to the pre-authorised amount"),
        ("reclaim", "Take back pre-payments"),
        ("escrows", "List open escrows"),
    ],
)
def test_the_help_of_each_command_says_what_it_does(command, says):
    assert says in help_text("wallet", command)


def test_create_prints_identity_and_first_key_and_refuses_to_overwrite(make_wallet, client):
    alice = make_wallet("alice")
    created = alice.created
    assert created["chain_id"] == CHAIN_ID
    assert created["hrp"] == HRP
    assert created["address"].startswith(HRP + "1")
    assert len(bytes.fromhex(created["public_key"])) == 32
    assert created["identity_key"] != created["public_key"]
    assert created["height"] <= client.status()["height"]
    wallet_file = (alice.directory / "wallet.json").read_bytes()

    line = alice.fails("create", "--node", client.base_url, "--scrypt-n", FAST_N)
    assert "wallet.file" in line
    assert "already exists" in line
    assert (alice.directory / "wallet.json").read_bytes() == wallet_file

    fresh = alice.json("address")
    assert fresh["public_key"] not in (created["public_key"], created["identity_key"])
    assert fresh["address"].startswith(HRP + "1")
    assert alice.json("balance")["balances"] == {}


def test_a_wrong_password_is_refused_with_its_code(make_wallet, tmp_path):
    alice = make_wallet("alice")
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not the password\n")
    impostor = WalletCli(alice.directory, wrong, CliRunner(), {})
    for command in (("balance", "--no-sync"), ("address",), ("history", "--no-sync")):
        line = impostor.fails(*command)
        assert line.startswith("error: wallet.password: ")
    line = impostor.fails("pay", "ab" * 32, "--amount", "1.00", "--asset", "CNY")
    assert "wallet.password" in line
    nowhere = WalletCli(tmp_path / "nowhere", alice.password_file, CliRunner(), {})
    assert "wallet.file" in nowhere.fails("balance")


def test_the_password_is_asked_for_or_read_from_the_environment(node_url, tmp_path):
    runner = CliRunner()
    directory = str(tmp_path / "prompted")
    made = runner.invoke(
        app,
        ["wallet", "create", "--wallet", directory, "--node", node_url, "--json"],
        input="secret words\nsecret words\n",
        env={"TALLY_WALLET_SCRYPT_N": FAST_N},
    )
    assert made.exit_code == 0, made.output
    public_key = json.loads(made.stdout)["public_key"]  # the prompts went to stderr

    from_env = runner.invoke(
        app,
        ["wallet", "address", "--json"],
        env={"TALLY_WALLET": directory, "TALLY_WALLET_PASSWORD": "secret words"},
    )
    assert from_env.exit_code == 0, from_env.output
    assert json.loads(from_env.stdout)["public_key"] != public_key
    prompted = runner.invoke(
        app, ["wallet", "balance", "--no-sync", "--wallet", directory], input="secret words\n"
    )
    assert prompted.exit_code == 0, prompted.output
    assert "no coins" in prompted.output
    mismatch = runner.invoke(
        app,
        ["wallet", "create", "--wallet", str(tmp_path / "other"), "--node", node_url],
        input="one\ntwo\n",
        env={"TALLY_WALLET_SCRYPT_N": FAST_N},
    )
    assert mismatch.exit_code != 0
    assert not (tmp_path / "other" / "wallet.json").exists()


# -- requests and payments -----------------------------------------------------------------------


def test_a_request_paid_from_another_wallet_moves_the_money_and_shows_in_history(
    make_wallet, client, tmp_path
):
    alice, bob = make_wallet("alice"), make_wallet("bob")
    fund(client, alice.receive_key(), "CNY", 50_000)
    assert alice.json("balance") == {
        "height": client.status()["height"],
        "balances": {"CNY": {"amount": 50_000, "amount_formatted": "500.00"}},
    }

    png = tmp_path / "request.png"
    asked = bob.json(
        "request", "--amount", "120.00", "--asset", "cny", "--memo", "order 7", "--png", str(png)
    )
    assert (asked["amount"], asked["amount_formatted"], asked["asset"]) == (12_000, "120.00", "CNY")
    assert asked["merchant"] == bob.created["identity_key"]
    assert asked["memo"] == "order 7"
    assert asked["png"] == str(png)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    uri = asked["uri"]
    assert uri.startswith(f"tally:{asked['address']}?amount=12000&asset=CNY&memo=order%207")
    signed = parse_uri(uri, HRP)
    assert verify_request(signed, chain_id=CHAIN_ID, now_ms=wallet_cli.clock()).amount == 12_000

    paid = alice.json("pay", uri)
    assert paid["code"] == "ok"
    assert (paid["amount"], paid["asset"], paid["payee"]) == (12_000, "CNY", asked["payee"])
    assert paid["request"]["merchant"] == bob.created["identity_key"]
    assert paid["balance"] == {"amount": 38_000, "amount_formatted": "380.00"}
    assert client.tx(paid["txid"])["status"] == "committed"

    assert alice.balance() == 38_000
    assert bob.balance() == 12_000
    [latest] = alice.json("history", "--limit", "1")["entries"]
    assert (latest["kind"], latest["amount_out"], latest["net"], latest["memo"]) == (
        "pay", 12_000, -12_000, "order 7",
    )  # fmt: skip
    assert latest["net_formatted"] == "-120.00"
    [received] = bob.json("history", "--asset", "CNY")["entries"]
    assert (received["kind"], received["amount_in"], received["txid"]) == (
        "receive", 12_000, paid["txid"],
    )  # fmt: skip
    assert sum(e["net"] for e in alice.json("history")["entries"]) == 38_000

    readable = alice("history", "--no-sync")
    assert "order 7" in readable.output
    assert "-120.00" in readable.output


def test_a_request_is_shown_as_a_terminal_qr_code_and_a_uri(make_wallet):
    bob = make_wallet("bob")
    shown = bob("request", "--amount", "9.50", "--asset", "CNY", "--memo", "tea")
    assert "█" in shown.stdout
    uris = [line for line in shown.stdout.splitlines() if line.startswith("tally:")]
    assert len(uris) == 1
    assert parse_uri(uris[0], HRP).request.amount == 950
    assert "9.50 CNY" in shown.stdout
    bare = bob("request", "--amount", "9.50", "--asset", "CNY", "--no-qr")
    assert "█" not in bare.stdout
    assert bare.stdout.startswith("tally:")
    assert "duration" in bob.fails(
        "request", "--amount", "1.00", "--asset", "CNY", "--expires", "soon"
    )


def test_paying_a_request_shows_it_and_asks_first(make_wallet, client):
    alice, bob = make_wallet("alice"), make_wallet("bob")
    fund(client, alice.receive_key(), "CNY", 20_000)
    asked = bob.json("request", "--amount", "120.00", "--asset", "CNY", "--memo", "lamp")

    declined = alice.fails("pay", asked["uri"], input="n\n")
    assert "payment cancelled" in declined
    shown = alice("pay", asked["uri"], code=1, input="n\n").output
    assert bob.created["identity_key"] in shown
    assert "120.00 CNY" in shown
    assert "lamp" in shown
    assert alice.balance() == 20_000

    accepted = alice("pay", asked["uri"], input="y\n")
    assert "paid" in accepted.output
    assert alice.balance() == 8_000
    assert bob.balance() == 12_000


def test_an_expired_request_is_refused_with_its_code(make_wallet, client, monkeypatch):
    alice, bob = make_wallet("alice"), make_wallet("bob")
    fund(client, alice.receive_key(), "CNY", 20_000)
    asked = bob.json("request", "--amount", "1.00", "--asset", "CNY", "--expires", "60s")
    assert asked["expires_ms"] - wallet_cli.clock() in range(55_000, 60_001)
    now = wallet_cli.clock()
    monkeypatch.setattr(wallet_cli, "clock", lambda: now + 61_000)
    line = alice.fails("pay", asked["uri"], "--yes")
    assert line.startswith("error: payment_request.expired: ")
    assert alice.balance() == 20_000
    assert bob.balance() == 0


def test_a_forged_or_mangled_request_is_refused(make_wallet, client):
    alice, bob = make_wallet("alice"), make_wallet("bob")
    fund(client, alice.receive_key(), "CNY", 20_000)
    uri = bob.json("request", "--amount", "120.00", "--asset", "CNY")["uri"]
    assert "amount=12000&" in uri

    cheaper = uri.replace("amount=12000&", "amount=1200&")
    assert alice.fails("pay", cheaper, "--json").startswith("error: payment_request.signature: ")
    other_asset = uri.replace("asset=CNY&", "asset=USD&")
    assert "payment_request.signature" in alice.fails("pay", other_asset, "--yes")
    no_signature = uri[: uri.index("&sig=")]
    assert "payment_request.malformed" in alice.fails("pay", no_signature, "--yes")
    with_amount = alice.fails("pay", uri, "--amount", "1.00")
    assert "drop --amount" in with_amount
    assert alice.balance() == 20_000
    assert bob.balance() == 0


def test_paying_a_public_key_needs_an_amount_and_keeps_to_the_limit(make_wallet, client):
    alice, bob = make_wallet("alice"), make_wallet("bob")
    fund(client, alice.receive_key(), "CNY", 10_000)
    bob_key = bob.receive_key()

    assert "needs --amount and --asset" in alice.fails("pay", bob_key, "--asset", "CNY")
    over = alice.fails("pay", bob_key, "--amount", "20.01", "--asset", "CNY", "--limit", "20.00")
    assert over.startswith("error: limit.exceeded: ")
    short = alice.fails("pay", bob_key, "--amount", "100.01", "--asset", "CNY")
    assert short.startswith("error: funds.insufficient: ")
    address = bob.created["address"]
    assert "public key of 64 hex digits" in alice.fails(
        "pay", address, "--amount", "1.00", "--asset", "CNY"
    )
    assert "1.234" in alice.fails("pay", bob_key, "--amount", "1.234", "--asset", "CNY")
    assert alice.balance() == 10_000

    paid = alice.json(
        "pay", bob_key, "--amount", "20.00", "--asset", "cny", "--memo", "rent", "--limit", "20.00"
    )
    assert (paid["amount"], paid["amount_formatted"], paid["memo"]) == (2_000, "20.00", "rent")
    assert paid["request"] is None
    assert alice.balance() == 8_000
    assert bob.json("sync")["balances"] == {"CNY": {"amount": 2_000, "amount_formatted": "20.00"}}


# -- the merchant counter ------------------------------------------------------------------------


def test_counter_codes_change_every_sale_without_waiting(make_wallet):
    shop = make_wallet("shop")
    result = shop(
        "counter", "--asset", "CNY", "--amount", "1.00", "--amount", "2.50", "--no-wait", "--json"
    )
    sales = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(s["event"], s["sequence"], s["amount"]) for s in sales] == [
        ("sale", 1, 100), ("sale", 2, 250),
    ]  # fmt: skip
    assert sales[0]["uri"] != sales[1]["uri"]
    assert sales[0]["payee"] != sales[1]["payee"]
    for sale in sales:
        assert sale["merchant"] == shop.created["identity_key"]
        request = verify_request(
            parse_uri(sale["uri"], HRP), chain_id=CHAIN_ID, now_ms=wallet_cli.clock()
        )
        assert request.sequence == sale["sequence"]


def test_counter_reports_a_sale_not_paid_in_time(make_wallet):
    shop = make_wallet("shop")
    result = shop(
        "counter", "--asset", "CNY", "--amount", "3.00", "--wait-timeout", "0.3", "--json", code=1
    )
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["sale", "unpaid"]
    assert "1 sale(s) not paid" in result.output


def _read_lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_counter_waits_for_each_payment_and_prints_paid_with_the_txid(make_wallet, client):
    alice, shop = make_wallet("alice"), make_wallet("shop")
    fund(client, alice.receive_key(), "CNY", 10_000)
    env = python_env(
        PYTHONUNBUFFERED="1", TALLY_WALLET=str(shop.directory), TALLY_WALLET_PASSWORD=PASSWORD
    )
    command = "from tally.cli.wallet import app; app(prog_name='tally wallet')"
    process = subprocess.Popen(
        [sys.executable, "-c", command, "counter", "--asset", "CNY", "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()

    def event() -> Any:  # Any: one JSON line of the counter
        return json.loads(lines.get(timeout=30))

    try:
        payees = []
        for amount, minor in (("3.00", 300), ("4.50", 450)):
            process.stdin.write(amount + "\n")
            process.stdin.flush()
            sale = event()
            assert (sale["event"], sale["amount"]) == ("sale", minor)
            payees.append(sale["payee"])
            paid_by_alice = alice.json("pay", sale["uri"])
            paid = event()
            assert paid == {
                "event": "paid",
                "sequence": sale["sequence"],
                "asset": "CNY",
                "amount": minor,
                "amount_formatted": amount,
                "txids": [paid_by_alice["txid"]],
            }
        assert payees[0] != payees[1]
        process.stdin.write("q\n")
        process.stdin.close()
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        reader.join(timeout=10)
        process.stdout.close()
        errors = process.stderr.read() if process.stderr else ""
        if process.stderr:
            process.stderr.close()
    assert code == 0, errors
    assert shop.balance() == 750
    assert alice.balance() == 10_000 - 750


# -- pre-payment ---------------------------------------------------------------------------------


def test_preauth_then_capture_pays_part_and_returns_the_rest(make_wallet, client):
    alice, shop = make_wallet("alice"), make_wallet("shop")
    fund(client, alice.receive_key(), "CNY", 10_000)
    shop_key = shop.receive_key()

    auth = alice.json(
        "preauth", "--to", shop_key, "--amount", "50.00", "--asset", "CNY", "--blocks", "20"
    )
    assert (auth["code"], auth["amount"], auth["payee"]) == ("ok", 5_000, shop_key)
    assert auth["height"] < auth["expiry"] <= auth["height"] + 19  # synced height + 20
    escrow_id = auth["escrow_id"]
    assert alice.balance() == 5_000

    [offered] = shop.json("escrows")["escrows"]
    assert (offered["escrow_id"], offered["role"], offered["amount"]) == (escrow_id, "payee", 5_000)
    assert (offered["expiry"], offered["expired"]) == (auth["expiry"], False)
    [made] = alice.json("escrows")["escrows"]
    assert (made["escrow_id"], made["role"], made["payee"]) == (escrow_id, "payer", shop_key)
    assert escrow_id[:16] in alice("escrows").output

    over = shop.fails("capture", escrow_id, "--amount", "50.01")
    assert over.startswith("error: escrow.over_capture: ")
    captured = shop.json("capture", escrow_id, "--amount", "42.00")
    assert (captured["code"], captured["captured"], captured["refunded"]) == ("ok", 4_200, 800)
    assert captured["refunded_formatted"] == "8.00"
    outputs = client.tx(captured["txid"])["tx"]["outputs"]
    assert [int(o["amount"]) for o in outputs] == [4_200, 800]

    assert shop.balance() == 4_200
    assert alice.balance() == 5_800
    assert shop.json("escrows")["escrows"] == []
    again = shop.fails("capture", escrow_id, "--amount", "1.00")
    assert again.startswith("error: wallet.coin_unavailable: ")
    assert "64 hex digits" in shop.fails("capture", "nope", "--amount", "1.00")


def test_reclaim_is_refused_before_expiry_and_capture_after_it(make_wallet, client):
    alice, shop = make_wallet("alice"), make_wallet("shop")
    fund(client, alice.receive_key(), "CNY", 3_000)
    shop_key = shop.receive_key()
    args = ("--to", shop_key, "--amount", "10.00", "--asset", "CNY")
    late = alice.json("preauth", *args, "--blocks", "3")["escrow_id"]
    early = alice.json("preauth", *args, "--blocks", "500")["escrow_id"]
    assert alice.balance() == 1_000

    refused = alice.fails("reclaim", early)
    assert refused.startswith("error: the node refused: escrow.not_expired: ")
    assert "coin_unavailable" in shop.fails("reclaim", early)

    advance(client, 4)
    expired = shop.fails("capture", late, "--amount", "5.00")
    assert expired.startswith("error: the node refused: escrow.expired: ")
    rows = {row["escrow_id"]: row for row in shop.json("escrows", "--no-sync")["escrows"]}
    assert (rows[late]["expired"], rows[early]["expired"]) == (True, False)

    reclaimed = alice.json("reclaim")["reclaimed"]
    assert [(r["escrow_id"], r["reclaimed"], r["code"]) for r in reclaimed] == [(late, 1_000, "ok")]
    assert alice.json("reclaim")["reclaimed"] == []
    assert [row["escrow_id"] for row in alice.json("escrows")["escrows"]] == [early]
    assert alice.balance() == 2_000
    assert "no expired escrow" in alice("reclaim").output
