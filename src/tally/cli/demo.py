"""`tally demo` (and `make run`): a whole two-tier network on loopback, with something to see.

The first run creates, under one directory, a node (with its explorer), the issuer, two
operators (Bank A and Bank B), and demo customers: Alice (self-custody, tier 2 at A), Bob (a
merchant, self-custody, tier 2 at B) and Carol (a hosted wallet at A). It then runs the money
flows once, checking after each that the ledger's supply equals the issuer's frozen reserves
and that wallets and floats hold exactly the supply:

1. the issuer credits both operators' reserve accounts; A tops its float up by issuance;
2. Alice deposits cash at A and loads 500.00 into her wallet;
3. Bob shows a signed payment request for 120.00 and Alice's wallet checks and pays it;
4. Bob unloads 100.00 to his deposit account at B; B redeems its excess float, and the
   issuer releases that reserve;
5. Alice pre-authorises 50.00 to Bob, who captures 42.00 (8.00 goes back in the same tx);
6. Carol's hosted wallet at A is loaded and pays Bob 25.00 through the operator.

Later runs resume the same network (same keys, data and ports) without repeating the flows.
Secrets of this local demo (admin tokens, wallet passwords) are kept in `demo.json`, mode 0600.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tally.cli.amounts import format_amount
from tally.cli.network import DEFAULT_CHAIN_ID, NETWORK_FILE, create_network, load_network
from tally.cli.output import CliError, console, reports_errors
from tally.cli.supervisor import Child, Supervisor, SupervisorError
from tally.client.node_client import NodeClient
from tally.model.address import address_of
from tally.model.lock import KeyLock
from tally.model.types import PublicKey
from tally.node.keyfile import read_key
from tally.services.issuer.client import IssuerClient
from tally.services.issuer.config import init_issuer_dir
from tally.services.operator.client import OperatorClient
from tally.services.operator.config import FloatPolicy, init_operator_dir
from tally.wallet.payment_request import (
    new_request,
    parse_uri,
    sign_request,
    to_uri,
    verify_request,
)
from tally.wallet.wallet import WALLET_FILE, Wallet

__all__ = [
    "DemoState",
    "Books",
    "prepare",
    "start_processes",
    "run_flows",
    "check_books",
    "summary",
    "demo",
]

STATE_FILE = "demo.json"
ASSET = "CNY"
DEFAULT_PORT_BASE = 7545
_RESERVE = 1_000_000_00
_WALLET_PASSWORD_BYTES = 12


@dataclass
class DemoState:
    """What the first run made, kept in `demo.json` so later runs resume it."""

    root: str
    ports: dict[str, int]
    issuer_admin_token: str
    operators: dict[str, dict[str, Any]]
    """Per operator (`a`, `b`): name, admin_token, identity_key, float_key, issuer_id."""
    customers: dict[str, dict[str, Any]]
    """Per customer: operator, customer_id, tier, wallet dir or hosted token."""
    wallet_password: str
    flows_done: bool = False

    @property
    def directory(self) -> Path:
        """The demo's root directory."""
        return Path(self.root)

    def url(self, name: str) -> str:
        """The API URL of `node`, `issuer`, `a` or `b`."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def save(self) -> None:
        """Write `demo.json` atomically with mode 0600 (it holds the demo's tokens)."""
        path = self.directory / STATE_FILE
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(self), out, indent=2)
        temporary.replace(path)

    @classmethod
    def load(cls, directory: Path) -> DemoState | None:
        """The state of an earlier run in `directory`, or None."""
        path = directory / STATE_FILE
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


def _ports(base: int) -> dict[str, int]:
    return {"node": base, "issuer": base + 1, "a": base + 2, "b": base + 3}


def prepare(
    directory: Path,
    port_base: int = DEFAULT_PORT_BASE,
    *,
    ports: dict[str, int] | None = None,
    databases: dict[str, str] | None = None,
) -> tuple[DemoState, bool]:
    """The demo's directories, keys and configuration; created on the first run.

    Args:
        directory: The demo's root (a network directory made by `tally init` is reused).
        port_base: The node's port; the issuer and operators A and B take the next three.
        ports: Ports by name (`node`, `issuer`, `a`, `b`) instead of `port_base`.
        databases: SQLAlchemy URLs by service (`issuer`, `a`, `b`); SQLite files by default.

    Returns:
        The state, and whether it was created now (so the flows have yet to run).
    """
    directory = directory.resolve()
    state = DemoState.load(directory)
    if state is not None:
        return state, False
    ports = dict(ports) if ports is not None else _ports(port_base)
    databases = databases or {}
    if (directory / NETWORK_FILE).exists():
        network = load_network(directory)
        ports["node"] = int(network.api.rsplit(":", 1)[1])
    else:
        network = create_network(
            directory, chain_id=DEFAULT_CHAIN_ID, port=ports["node"], assets=(ASSET, "USD")
        )
    node_url = f"http://127.0.0.1:{ports['node']}"
    issuer_url = f"http://127.0.0.1:{ports['issuer']}"
    issuer_token = init_issuer_dir(
        directory / "issuer",
        asset=ASSET,
        issuer_key=read_key(network.issuer_keys[ASSET]),
        node_url=node_url,
        port=ports["issuer"],
        name="Central Bank",
        database=databases.get("issuer"),
    )
    policies = {
        # A keeps a float to load its customers from; B starts with none and redeems any
        # excess its customers unload.
        "a": FloatPolicy(low=1_000_00, target=5_000_00, high=20_000_00),
        "b": FloatPolicy(low=0, target=0, high=50_00),
    }
    operators: dict[str, dict[str, Any]] = {}
    for label, name in (("a", "Bank A"), ("b", "Bank B")):
        identity = init_operator_dir(
            directory / f"operator-{label}",
            name=name,
            asset=ASSET,
            node_url=node_url,
            issuer_url=issuer_url,
            port=ports[label],
            float_policy=policies[label],
            database=databases.get(label),
        )
        operators[label] = {
            "name": name,
            "admin_token": identity.admin_token,
            "identity_key": identity.identity_key.hex(),
            "float_key": identity.float_key.hex(),
            "issuer_id": None,
        }
    state = DemoState(
        root=str(directory),
        ports=ports,
        issuer_admin_token=issuer_token,
        operators=operators,
        customers={},
        wallet_password=secrets.token_urlsafe(_WALLET_PASSWORD_BYTES),
    )
    state.save()
    return state, True


def start_processes(state: DemoState, supervisor: Supervisor) -> None:
    """Start the node, the issuer and both operators, each once the one before answers."""
    root = state.directory
    children = [
        Child("node", ("tally.cli", "node", "start", str(root)), root,
              f"{state.url('node')}/v1/status"),
        Child("issuer", ("tally.services.issuer", str(root / "issuer")), root / "issuer",
              f"{state.url('issuer')}/v1/health"),
        Child("operator-a", ("tally.services.operator", str(root / "operator-a")),
              root / "operator-a", f"{state.url('a')}/v1/health"),
        Child("operator-b", ("tally.services.operator", str(root / "operator-b")),
              root / "operator-b", f"{state.url('b')}/v1/health"),
    ]  # fmt: skip
    for child in children:
        with console.status(f"starting {child.name} …"):
            supervisor.start(child)
        console.print(f"[green]✓[/green] {child.name} on {child.health_url.rsplit('/v1', 1)[0]}")


def _wallet(state: DemoState, name: str) -> Wallet:
    path = state.directory / "wallets" / name
    if (path / WALLET_FILE).exists():
        return Wallet.open(path, state.wallet_password)
    return Wallet.create(path, state.wallet_password, state.url("node"))


def _issuer(state: DemoState, operator: str | None = None) -> IssuerClient:
    if operator is None:
        return IssuerClient(state.url("issuer"), admin_token=state.issuer_admin_token)
    key = read_key(state.directory / f"operator-{operator}" / "keys" / "identity.key")
    return IssuerClient(state.url("issuer"), key=key)


def _operator_admin(state: DemoState, label: str) -> OperatorClient:
    return OperatorClient(state.url(label), admin_token=state.operators[label]["admin_token"])


@dataclass(frozen=True)
class Books:
    """The figures that must agree after every step."""

    supply: int
    frozen: int
    held: int
    """What wallets and floats hold together."""

    @property
    def balanced(self) -> bool:
        """Supply equals frozen reserves and equals what everyone holds."""
        return self.supply == self.frozen == self.held


def check_books(state: DemoState, wallets: dict[str, Wallet], settle_s: float = 5.0) -> Books:
    """Ledger supply, the issuer's frozen reserves, and the sum of every wallet and float.

    The services settle some work just after answering (an operator redeems its excess
    float, the issuer releases a reserve when it sees the Redeem), and the figures are read
    one after another; so they are read again until they agree or `settle_s` has passed.
    """
    deadline = time.monotonic() + settle_s
    books = _read_books(state, wallets)
    while not books.balanced and time.monotonic() < deadline:
        time.sleep(0.2)
        books = _read_books(state, wallets)
    return books


def _read_books(state: DemoState, wallets: dict[str, Wallet]) -> Books:
    with _issuer(state) as issuer:
        audit = issuer.audit()
    held = 0
    for wallet in wallets.values():
        wallet.sync(auto_merge=False)
        held += wallet.balance(ASSET).get(ASSET, 0)
        # A pre-payment still in escrow is the payer's money until it is captured.
        held += sum(c.coin.amount for c in wallet.escrows() if c.role == "escrow_payer")
    for label in ("a", "b"):
        with _operator_admin(state, label) as admin:
            held += int(admin.float_status()["total"])
    hosted = [c["hosted_key"] for c in state.customers.values() if c.get("hosted_key")]
    with NodeClient(state.url("node")) as node:
        hrp = str(node.status()["hrp"])
        for key in hosted:
            address = address_of(KeyLock(key=PublicKey(bytes.fromhex(key))), hrp)
            held += int(node.address_coins(address)["balance"].get(ASSET, 0))
    return Books(supply=audit.ledger.outstanding, frozen=audit.reserves.frozen, held=held)


def run_flows(state: DemoState, report: Callable[[str, Books], None]) -> dict[str, Any]:
    """Run the demo's money flows once; `report` is called after each step with the books."""
    ops = state.operators
    outcome: dict[str, Any] = {}
    with _issuer(state) as issuer:
        for label in ("a", "b"):
            registered = issuer.register_operator(
                ops[label]["name"], ops[label]["identity_key"], ops[label]["float_key"]
            )
            ops[label]["issuer_id"] = registered.id
            issuer.fund_reserve(registered.id, _RESERVE, f"demo-reserve-{label}")
    state.save()
    alice, bob = _wallet(state, "alice"), _wallet(state, "bob")
    wallets = {"alice": alice, "bob": bob}
    try:
        admin_a, admin_b = _operator_admin(state, "a"), _operator_admin(state, "b")
        admin_a.rebalance()
        report("issuer funded both reserves; Bank A's float topped up by issuance",
               check_books(state, wallets))  # fmt: skip

        alice_c = admin_a.create_customer("Alice", 2, alice.identity_key.public_key)
        bob_c = admin_b.create_customer("Bob (merchant)", 2, bob.identity_key.public_key)
        carol_c = admin_a.create_customer("Carol", 1)
        state.customers = {
            "alice": {"operator": "a", "customer_id": alice_c["customer_id"], "wallet": "alice"},
            "bob": {"operator": "b", "customer_id": bob_c["customer_id"], "wallet": "bob"},
            "carol": {
                "operator": "a",
                "customer_id": carol_c["customer_id"],
                "token": carol_c["token"],
                "hosted_key": carol_c["hosted_key"],
            },
        }
        state.save()
        admin_a.deposit(alice_c["customer_id"], 2_000_00, "demo-alice-cash")
        with OperatorClient(state.url("a"), key=alice.identity_key) as alice_at_a:
            receive = alice.new_receive_key()
            alice_at_a.load(500_00, "demo-alice-load", to=receive.public_key)
        report("Alice deposited 2,000.00 at Bank A and loaded 500.00", check_books(state, wallets))

        payee = bob.new_receive_key()
        with OperatorClient(state.url("b"), key=bob.identity_key) as bob_at_b:
            bob_at_b.register_keys([payee.public_key])
            signed = sign_request(
                new_request(
                    chain_id=bob.chain_id,
                    payee=PublicKey(payee.public_key),
                    asset=ASSET,
                    amount=120_00,
                    memo="coffee beans",
                    expires_ms=int(time.time() * 1000) + 15 * 60 * 1000,
                    merchant=PublicKey(bob.identity_key.public_key),
                ),
                bob.identity_key,
            )
            uri = to_uri(signed, bob.hrp)
            request = verify_request(
                parse_uri(uri, alice.hrp), chain_id=alice.chain_id, now_ms=int(time.time() * 1000)
            )
            paid = alice.pay(request.payee, request.asset, request.amount, memo=request.memo)
            outcome["request_uri"] = uri
            report("Alice paid Bob's signed request for 120.00", check_books(state, wallets))

            bob.sync()
            float_b = bytes.fromhex(ops["b"]["float_key"])
            unload_tx = bob.build_payment(float_b, ASSET, 100_00, memo="unload")
            bob_at_b.unload("demo-bob-unload", tx=unload_tx, amount=100_00)
        report("Bob unloaded 100.00 to his deposit account at Bank B", check_books(state, wallets))
        redeemed = admin_b.rebalance()
        outcome["b_redeemed"] = redeemed.get("amount")
        report("Bank B redeemed its excess float; the issuer released that reserve",
               check_books(state, wallets))  # fmt: skip

        escrow_payee = bob.new_receive_key()
        with NodeClient(state.url("node")) as node:
            height = int(node.status()["height"])
        preauth = alice.preauth(escrow_payee.public_key, ASSET, 50_00, height + 50)
        bob.sync()
        bob.capture(preauth["escrow_coin_id"], 42_00)
        report("Alice pre-authorised 50.00 to Bob; he captured 42.00, 8.00 went back",
               check_books(state, wallets))  # fmt: skip

        admin_a.deposit(carol_c["customer_id"], 300_00, "demo-carol-cash")
        with OperatorClient(state.url("a"), token=carol_c["token"]) as carol_at_a:
            carol_at_a.load(200_00, "demo-carol-load")
            carol_at_a.pay(payee.public_key, 25_00, "demo-carol-pay")
        report("Carol's hosted wallet at Bank A loaded 200.00 and paid Bob 25.00",
               check_books(state, wallets))  # fmt: skip
        outcome["paid_txid"] = paid["txid"]
        admin_a.close()
        admin_b.close()
    finally:
        for wallet in wallets.values():
            wallet.close()
    state.flows_done = True
    state.save()
    return outcome


def summary(state: DemoState) -> Table:
    """Where everything is, and what to try next."""
    root = state.directory
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("explorer", f"{state.url('node')}/explorer/")
    table.add_row("node API", f"{state.url('node')}/docs")
    table.add_row("issuer API", f"{state.url('issuer')}/docs")
    table.add_row("Bank A API", f"{state.url('a')}/docs")
    table.add_row("Bank B API", f"{state.url('b')}/docs")
    table.add_row("wallets", f"{root / 'wallets'} (password in {root / STATE_FILE})")
    table.add_row("", "")
    alice, bob = root / "wallets" / "alice", root / "wallets" / "bob"
    tries = [
        f"export TALLY_WALLET_PASSWORD={state.wallet_password}",
        f"tally wallet balance --wallet {alice}",
        f"tally wallet request --wallet {bob} --amount 12.00 --asset {ASSET}",
        f"tally wallet pay 'tally:…' --wallet {alice}",
        f"tally issuer audit --url {state.url('issuer')}",
        f"tally operator customers --dir {root / 'operator-a'}",
    ]
    for index, command in enumerate(tries):
        table.add_row("try" if index == 0 else "", command)
    return table


def print_step(text: str, books: Books) -> None:
    """One line per flow step, with the books that must agree."""
    mark = "[green]✓[/green]" if books.balanced else "[red]✗[/red]"
    console.print(
        f"{mark} {text}  [dim](supply {format_amount(books.supply)} = frozen "
        f"{format_amount(books.frozen)} = held {format_amount(books.held)})[/dim]"
    )


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@reports_errors
def demo(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Where the demo network lives.")
    ] = Path("tally-net"),
    port_base: Annotated[
        int,
        typer.Option(
            "--port-base",
            help="Node API port; the issuer and the two operators take the next three. "
            "Used when the network is created; a later run keeps its ports.",
        ),
    ] = DEFAULT_PORT_BASE,
    exit_after_flows: Annotated[
        bool,
        typer.Option(
            "--exit-after-flows", help="Stop everything once the network is up and the flows ran."
        ),
    ] = False,
) -> None:
    """Run a local two-tier network: node and explorer, issuer, Banks A and B, demo wallets.

    The first run creates everything and runs the money flows once; later runs resume the
    same network. Ctrl-C stops every process cleanly.
    """
    state, created = prepare(directory, port_base)
    supervisor = Supervisor()
    # SIGINT explicitly too: a shell that starts us in the background ignores it otherwise.
    previous = {
        sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        start_processes(state, supervisor)
        if not state.flows_done:
            console.print("[bold]running the demo flows once[/bold]")
            books: list[Books] = []

            def report(text: str, figures: Books) -> None:
                books.append(figures)
                print_step(text, figures)

            run_flows(state, report)
            if not all(figures.balanced for figures in books):
                raise CliError("the books did not balance after every step; see the lines above")
        else:
            console.print(f"resumed the network in {state.directory} (created earlier)")
        console.print(summary(state))
        console.print("[bold green]ready[/bold green] — Ctrl-C stops everything")
        if not exit_after_flows:
            dead = supervisor.wait()
            raise CliError(
                f"{dead.name} stopped on its own; its log {dead.log_file}:\n{dead.tail()}"
            )
    except KeyboardInterrupt:
        console.print("stopping …")
    except SupervisorError as exc:
        raise CliError(str(exc)) from None
    finally:
        codes = supervisor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if codes:
            console.print(
                "stopped: " + ", ".join(f"{name} ({code})" for name, code in codes.items())
            )
    if created:
        console.print(f"run it again with the same command to resume ({directory})")
