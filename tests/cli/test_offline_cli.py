"""`tally wallet offline` between wallets through files, against a real node process.

The node is stopped while the devices pay and receive, so the offline commands can reach
no node; it is started again (same directory, same port) for settlement and migration.
Commands run in-process through typer's runner on an app that registers the sub-apps the
way `tally.cli.main` does.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from tally.cli import offline as offline_cli
from tally.cli import wallet as wallet_cli
from tally.client import NodeClient, make_issue
from tally.model import Params, encode
from tally.model.lock import OfflineLock
from tally.wallet.offline.messages import decode_payment
from tally.wallet.offline.transport import message_bytes, to_text
from tests.node.harness import NodeProcess, ServiceProcess, free_port, make_node_dir
from tests.rules.helpers import CHAIN_ID, CNY_ISSUER, RESERVE_REF, key, make_genesis
from tests.wallet.offline.chains import outputs_of

pytestmark = pytest.mark.network

PASSWORD = "offline cli password"  # noqa: S105 - a test password
FAST_N = "1024"
GENESIS = make_genesis(params=Params(block_interval_ms=10))
_nonces = itertools.count(1)

# The registration `tally.cli.main` makes: `wallet.app.add_typer(offline.app)`.
if not any(group.typer_instance is offline_cli.app for group in wallet_cli.app.registered_groups):
    wallet_cli.app.add_typer(offline_cli.app)
root = typer.Typer(name="tally")
root.add_typer(wallet_cli.app)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    directory = tmp_path_factory.mktemp("network")
    port = free_port()
    process = NodeProcess(make_node_dir(directory, GENESIS, port), port)
    process.start()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TALLY_WALLET", "TALLY_WALLET_PASSWORD", "TALLY_NODE", "TALLY_WALLET_SCRYPT_N"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class WalletCli:
    """Runs `tally wallet` commands on one wallet directory with its password file."""

    directory: Path
    password_file: Path
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, code: int = 0) -> Result:
        options = ["--wallet", str(self.directory), "--password-file", str(self.password_file)]
        result = self.runner.invoke(root, ["wallet", *args, *options])
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    def json(self, *args: str) -> Any:  # Any: the command's JSON document
        return json.loads(self(*args, "--json").stdout)

    def fails(self, *args: str) -> str:
        result = self(*args, code=1)
        lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, result.output
        return lines[0]


@pytest.fixture
def make_wallet(node: ServiceProcess, tmp_path: Path) -> Any:
    genesis_file = tmp_path / "genesis.bin"
    genesis_file.write_bytes(encode(GENESIS))

    def make(name: str, *setup: str) -> WalletCli:
        password_file = tmp_path / f"{name}.password"
        password_file.write_text(PASSWORD + "\n")
        cli = WalletCli(tmp_path / name, password_file)
        cli.json("create", "--node", node.url, "--scrypt-n", FAST_N)
        cli.json("offline", "setup", "--genesis", str(genesis_file), *setup)
        return cli

    return make


def fund(node: ServiceProcess, wallet: WalletCli, amount: int) -> None:
    public_key = wallet.json("address")["public_key"]
    with NodeClient(node.url) as client:
        height = client.status()["height"]
        tx = make_issue(
            "CNY",
            key(CNY_ISSUER),
            [(bytes.fromhex(public_key), amount)],
            RESERVE_REF,
            next(_nonces),
            height + 50,
            CHAIN_ID,
        )
        assert client.submit(tx, wait=True)["status"] == "committed"


def test_offline_pay_receive_settle_and_migrate_through_files(node, make_wallet, tmp_path):
    alice = make_wallet("alice")
    merchant = make_wallet("merchant", "--max-payment", "100.00", "--max-hops", "2")
    stranger = make_wallet("stranger")
    fund(node, alice, 8000)
    funded = alice.json(
        "offline", "fund", "--asset", "CNY", "--coin", "50.00", "--unlock-in", "200"
    )
    assert len(funded["coin_ids"]) == 1
    assert funded["purse"] == {"CNY": {"amount": 5000, "amount_formatted": "50.00"}}
    merchant.json("sync")

    node.stop()  # offline from here: no node answers
    hello = tmp_path / "hello.bin"
    said = merchant.json("offline", "hello", "--out", str(hello))
    assert said["assets"] == ["CNY", "USD"]
    assert said["max_amount"] == 10_000
    payment = tmp_path / "payment.bin"
    paid = alice.json(
        "offline", "pay", "--hello", str(hello), "--asset", "CNY", "--amount", "35.20",
        "--out", str(payment),
    )  # fmt: skip
    assert (paid["amount"], paid["hops"]) == (3520, 1)
    assert paid["purse"]["CNY"]["amount"] == 1480
    message = decode_payment(payment.read_bytes())
    assert outputs_of(message.chain.hops[0])[0].lock == OfflineLock(
        owner=bytes.fromhex(said["receive_key"]), unlock_height=funded["unlock_height"]
    )

    assert "offline.replay" in stranger.fails("offline", "receive", str(payment))
    got = merchant.json("offline", "receive", str(payment))
    assert (got["amount"], got["amount_formatted"], got["hops"]) == (3520, "35.20", 1)
    assert "offline.replay" in merchant.fails("offline", "receive", str(payment))
    status = merchant.json("offline", "status")
    assert status["balance"] == {"CNY": "3520"}
    assert [p["status"] for p in status["payments"]] == ["unsettled"]
    assert "cannot reach the node" in merchant.fails("offline", "settle")

    node.start()
    settled = merchant.json("offline", "settle")
    assert settled["settled"] == [got["payment_id"]]
    assert settled["double_spends"] == []
    assert alice.json("offline", "settle")["settled"] == [got["payment_id"]]
    assert [p["status"] for p in merchant.json("offline", "status")["payments"]] == ["settled"]

    new = make_wallet("merchant-new")
    moved = merchant.json(
        "offline", "migrate", "--to", str(new.directory),
        "--to-password-file", str(new.password_file),
    )  # fmt: skip
    assert moved["moved"] == {"CNY": "3520"}
    assert moved["purse"] == {"CNY": {"amount": 3520, "amount_formatted": "35.20"}}
    assert merchant.json("offline", "status")["balance"] == {}
    assert [p["status"] for p in new.json("offline", "status")["payments"]] == ["settled"]


def test_offline_commands_explain_what_is_wrong(node, make_wallet, tmp_path):
    alice = make_wallet("alice")
    bare = WalletCli(tmp_path / "bare", tmp_path / "bare.password")
    bare.password_file.write_text(PASSWORD + "\n")
    bare.json("create", "--node", node.url, "--scrypt-n", FAST_N)
    assert "offline.setup" in bare.fails("offline", "hello", "--out", str(tmp_path / "h.bin"))
    assert "give --amount" in alice.fails("offline", "fund", "--asset", "CNY")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a message")
    assert "offline.message" in alice.fails("offline", "receive", str(garbage))
    hello = tmp_path / "hello.bin"
    alice.json("offline", "hello", "--out", str(hello))
    assert "offline.message" in alice.fails("offline", "receive", str(hello))
    assert "funds.insufficient" in alice.fails(
        "offline", "pay", "--hello", str(hello), "--asset", "CNY", "--amount", "1.00",
        "--out", str(tmp_path / "p.bin"),
    )  # fmt: skip
    assert "not a genesis file" in alice.fails("offline", "setup", "--genesis", str(garbage))


def funded_pair(node: ServiceProcess, make_wallet: Any) -> tuple[WalletCli, WalletCli]:
    """Alice with one 50.00 CNY purse coin, and a merchant synced to see its block."""
    alice = make_wallet("alice")
    merchant = make_wallet("merchant")
    fund(node, alice, 8000)
    alice.json("offline", "fund", "--asset", "CNY", "--coin", "50.00", "--unlock-in", "200")
    merchant.json("sync")
    return alice, merchant


def test_offline_payment_over_a_loopback_socket(node, make_wallet):
    alice, merchant = funded_pair(node, make_wallet)
    address = f"127.0.0.1:{free_port()}"
    options = ["--wallet", str(merchant.directory), "--password-file", str(merchant.password_file)]
    listener = subprocess.Popen(  # the payee's terminal; the payer retries until it listens
        [sys.executable, "-m", "tally.cli", "wallet", "offline", "receive",
         "--listen", address, "--timeout", "60", "--json", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        paid = alice.json(
            "offline", "pay", "--connect", address, "--asset", "CNY", "--amount", "12.00",
            "--timeout", "60",
        )  # fmt: skip
        out, err = listener.communicate(timeout=60)
    finally:
        listener.kill()
    assert listener.returncode == 0, err
    got = json.loads(out)
    assert paid["answer"]["accepted"] is True
    assert paid["answer"]["payment_id"] == got["payment_id"] == paid["payment_id"]
    assert (got["amount"], got["asset"], got["hops"]) == (1200, "CNY", 1)
    assert paid["answer"]["settle_by"] == got["settle_by"]
    assert paid["purse"]["CNY"]["amount"] == 3800
    assert merchant.json("offline", "status")["balance"] == {"CNY": "1200"}

    # Nothing listens any more: the payer says so, and has paid nothing.
    assert "offline.transport" in alice.fails(
        "offline", "pay", "--connect", address, "--asset", "CNY", "--amount", "1.00",
        "--timeout", "0.3",
    )  # fmt: skip
    assert alice.json("offline", "status")["balance"] == {"CNY": "3800"}
    assert "no --hello" in alice.fails(
        "offline", "pay", "--connect", address, "--hello", "h.bin", "--asset", "CNY",
        "--amount", "1.00",
    )  # fmt: skip
    assert "give a payment FILE, or --listen" in merchant.fails("offline", "receive")


def test_offline_hello_and_payment_as_qr_codes(node, make_wallet, tmp_path):
    alice, merchant = funded_pair(node, make_wallet)
    png = tmp_path / "hello.png"
    shown = merchant("offline", "hello", "--qr", "--qr-png", str(png)).stdout
    assert sum(line.count("█") for line in shown.splitlines()) > 100  # a code was drawn
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "give --out FILE, --qr or --qr-png FILE" in merchant.fails("offline", "hello")

    # What a scanner reads from the code: the text form, fed back to `pay --hello`.
    hello = tmp_path / "hello.bin"
    said = merchant.json("offline", "hello", "--out", str(hello))
    assert said["text"].startswith("tally-offline:")
    assert message_bytes(said["text"].encode()) == hello.read_bytes()
    scanned = tmp_path / "hello.txt"
    scanned.write_text(said["text"] + "\n")
    payment = tmp_path / "payment.bin"
    payment_png = tmp_path / "payment.png"
    paid = alice.json(
        "offline", "pay", "--hello", str(scanned), "--asset", "CNY", "--amount", "35.20",
        "--out", str(payment), "--qr-png", str(payment_png),
    )  # fmt: skip
    assert paid["qr_png"] == str(payment_png)
    assert payment_png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    as_text = tmp_path / "payment.txt"  # what scanning the payment's code gives
    as_text.write_text(to_text(payment.read_bytes()))
    got = merchant.json("offline", "receive", str(as_text))
    assert (got["amount"], got["payment_id"]) == (3520, paid["payment_id"])

    # A payment from five purse coins, each with its own root proof, is too large for a code.
    fund(node, alice, 4000)
    for _ in range(4):
        alice.json("offline", "fund", "--asset", "CNY", "--coin", "10.00", "--unlock-in", "200")
    merchant.json("sync")
    merchant.json("offline", "hello", "--out", str(hello))
    big = tmp_path / "big.bin"
    big_png = tmp_path / "big.png"
    refused = alice.fails(
        "offline", "pay", "--hello", str(hello), "--asset", "CNY", "--amount", "50.00",
        "--out", str(big), "--qr-png", str(big_png),
    )  # fmt: skip
    size = len(big.read_bytes())
    assert f"the payment is {size} bytes, too large for a QR code" in refused
    assert f"hand over {big}" in refused
    assert not big_png.exists()
    got = merchant.json("offline", "receive", str(big))  # the file still carries it
    assert got["amount"] == 5000
    assert merchant.json("offline", "status")["balance"] == {"CNY": "8520"}
