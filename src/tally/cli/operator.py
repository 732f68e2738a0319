"""`tally operator`: set up and run an operator service, and administer it.

`init` makes the service directory (fresh identity and float keys, a seed for hosted
wallets, `operator.toml`), prints the admin token once and keeps it in `DIR/admin.token`
(mode 0600), and prints the two keys the issuer's admin registers with
`tally issuer add-operator`; `start` runs the service in the foreground.

The admin commands talk to the operator at `--url` (default: the URL in `--dir`'s
`operator.toml`, else `$TALLY_OPERATOR_URL`, else http://127.0.0.1:7547) with the admin
token read from `--admin-token-file`, else `--dir DIR/admin.token`, else
`$TALLY_OPERATOR_ADMIN_TOKEN`. Amounts are typed as `parse_amount` reads them (`500.00` or
`50000`) and appear in `--json` documents as minor units beside a `_formatted` twin.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.table import Table

from tally.cli.amounts import AmountError, format_amount, parse_amount
from tally.cli.context import JsonOption, NetworkOption, open_network
from tally.cli.issuer import ISSUER
from tally.cli.output import (
    CliError,
    console,
    details_grid,
    emit_json,
    money,
    money_fields,
    reports_errors,
)
from tally.cli.services import (
    AmountOption,
    PortOption,
    Service,
    idempotency_option,
    new_idempotency_key,
)
from tally.cli.wallet import parse_public_key
from tally.services.operator.client import OperatorClient
from tally.services.operator.config import (
    CONFIG_NAME,
    DEFAULT_FLOAT_POLICY,
    DEFAULT_TIERS,
    FloatPolicy,
    OperatorConfig,
    OperatorConfigError,
    TierLimits,
    init_operator_dir,
    load_config,
)

__all__ = [
    "app",
    "OPERATOR",
    "parse_tier",
    "movement_view",
    "print_movement",
]

OPERATOR: Final[Service[OperatorConfig]] = Service(
    name="operator",
    config_file=CONFIG_NAME,
    default_port=7547,
    load_config=load_config,
    config_error=OperatorConfigError,
)
"""How the command line finds the operator and its admin token (`tally.cli.services`)."""

_TIER: Final = re.compile(r"\s*([0-9]{1,3})\s*[:=]\s*([^:/]+?)\s*[:/]\s*([^:/]+?)\s*")
_ZERO: Final = re.compile(r"0+(?:\.0*)?")
_MOVEMENT_AMOUNTS: Final = ("amount", "deposit")
_CUSTOMER_AMOUNTS: Final = ("deposit",)

app = typer.Typer(
    name="operator",
    help="Run an operator service (customers, deposits, loads and unloads, the float) and "
    "administer it: add customers, take deposits, manage the float, read the journal.",
    no_args_is_help=True,
)


# -- options -----------------------------------------------------------------------------------

UrlOption = Annotated[str | None, OPERATOR.url_option()]
AdminTokenFileOption = Annotated[Path | None, OPERATOR.admin_token_file_option()]
DirOption = Annotated[Path | None, OPERATOR.dir_option()]
IdempotencyOption = Annotated[str | None, idempotency_option("a request")]


# -- helpers -----------------------------------------------------------------------------------


def parse_tier(text: str) -> tuple[int, TierLimits]:
    """A tier's limits as `--tier` gives them: `N:BALANCE_LIMIT:PAYMENT_LIMIT`.

    Args:
        text: Such as `1:10000.00:2000.00` (amounts as `parse_amount` reads them).

    Raises:
        CliError: not of that form, or a tier below 1.
        AmountError: a limit that is not an amount.
    """
    match = _TIER.fullmatch(text)
    if match is None or int(match.group(1)) < 1:
        raise CliError(
            f"--tier {text!r}: write TIER:BALANCE_LIMIT:PAYMENT_LIMIT, such as 1:10000.00:2000.00"
        )
    return int(match.group(1)), TierLimits(
        balance_limit=parse_amount(match.group(2)), payment_limit=parse_amount(match.group(3))
    )


def _mark(text: str | None, default: int, what: str) -> int:
    """A float mark: an amount, or 0 (never top up / never redeem)."""
    if text is None:
        return default
    if _ZERO.fullmatch(text.strip()):
        return 0
    try:
        return parse_amount(text)
    except AmountError as exc:
        raise CliError(f"{what}: {exc}") from None


def _admin(url: str | None, token_file: Path | None, directory: Path | None) -> OperatorClient:
    return OperatorClient(
        OPERATOR.url(url, directory), admin_token=OPERATOR.admin_token(token_file, directory)
    )


def movement_view(document: dict[str, Any], idempotency_key: str) -> dict[str, Any]:  # Any: JSON
    """A deposit, load, unload or payment answer for `--json`, with its idempotency key."""
    return {**money_fields(document, _MOVEMENT_AMOUNTS), "idempotency_key": idempotency_key}


def print_movement(view: dict[str, Any]) -> None:  # Any: JSON
    """Show a deposit, load, unload or payment as `movement_view` made it, for people."""
    status = view.get("status")
    color = {"done": "green", "pending": "yellow"}.get(str(status), "red")
    line = f"{view.get('kind', 'movement')} of {view.get('amount_formatted', '?')}: "
    line += f"[{color}]{status}[/{color}]"
    if view.get("deposit_formatted") is not None:
        line += f"; deposit now {view['deposit_formatted']}"
    console.print(line)
    if view.get("txid"):
        where = f" at height {view['height']}" if view.get("height") is not None else ""
        console.print(f"txid {view['txid']}{where}")
    console.print(f"idempotency key {view['idempotency_key']} (repeat it to retry safely)")
    if status == "pending":
        console.print(
            "[yellow]the ledger has not confirmed it yet: run the same command with "
            f"--idempotency-key {view['idempotency_key']} to learn how it ended[/yellow]"
        )


# -- set up and run ----------------------------------------------------------------------------


@app.command("init")
@reports_errors
def init(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="The operator's directory to create.")
    ],
    name: Annotated[str, typer.Option("--name", help="The operator's name.", show_default=False)],
    network: NetworkOption = None,
    issuer_url: Annotated[str | None, ISSUER.url_option("--issuer-url", from_dir=False)] = None,
    asset: Annotated[
        str, typer.Option("--asset", help="The asset this operator distributes.")
    ] = "CNY",
    port: PortOption = OPERATOR.default_port,
    database: Annotated[str | None, OPERATOR.database_option()] = None,
    tiers: Annotated[
        list[str] | None,
        typer.Option(
            "--tier",
            metavar="N:BALANCE:PAYMENT",
            help="Limits of KYC tier N: most a wallet may hold, most one hosted payment, such "
            "as 1:10000.00:2000.00; repeatable; tiers not given keep their defaults "
            "(1: 10000.00/2000.00, 2: 100000.00/20000.00, 3: 1000000.00/200000.00).",
            show_default=False,
        ),
    ] = None,
    float_low: Annotated[
        str | None,
        typer.Option(
            "--float-low",
            metavar="AMOUNT",
            help=f"Below this the float is topped up from the issuer (default "
            f"{format_amount(DEFAULT_FLOAT_POLICY.low)}; 0: never).",
            show_default=False,
        ),
    ] = None,
    float_target: Annotated[
        str | None,
        typer.Option(
            "--float-target",
            metavar="AMOUNT",
            help=f"What a rebalance brings the float to (default "
            f"{format_amount(DEFAULT_FLOAT_POLICY.target)}).",
            show_default=False,
        ),
    ] = None,
    float_high: Annotated[
        str | None,
        typer.Option(
            "--float-high",
            metavar="AMOUNT",
            help=f"Above this the excess is redeemed (default "
            f"{format_amount(DEFAULT_FLOAT_POLICY.high)}).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an operator's directory: fresh keys, a hosted-wallet seed and operator.toml.

    The node's API comes from the network directory. Prints the admin token once (kept in
    DIR/admin.token, mode 0600) and the identity and float keys that the issuer's admin
    registers with `tally issuer add-operator --operator-dir DIR` (or --key/--float-key).
    """
    net = open_network(network)
    limits = dict(DEFAULT_TIERS)
    for text in tiers or ():
        tier, tier_limits = parse_tier(text)
        limits[tier] = tier_limits
    policy = FloatPolicy(
        low=_mark(float_low, DEFAULT_FLOAT_POLICY.low, "--float-low"),
        target=_mark(float_target, DEFAULT_FLOAT_POLICY.target, "--float-target"),
        high=_mark(float_high, DEFAULT_FLOAT_POLICY.high, "--float-high"),
    )
    if not policy.low <= policy.target <= policy.high:
        raise CliError(
            f"the float's marks need low <= target <= high, got {format_amount(policy.low)}, "
            f"{format_amount(policy.target)}, {format_amount(policy.high)}"
        )
    identity = init_operator_dir(
        directory,
        name=name,
        asset=asset.upper(),
        node_url=net.api,
        issuer_url=ISSUER.url(issuer_url),
        port=port,
        database=database,
        tiers=limits,
        float_policy=policy,
    )
    keys = {
        "identity_key": bytes(identity.identity_key).hex(),
        "float_key": bytes(identity.float_key).hex(),
    }
    config, view = OPERATOR.describe_setup(directory, identity.admin_token, keys)
    marks = config.float_policy
    view.update(
        issuer_url=config.issuer_url,
        tiers={
            str(tier): {
                **money(limits.balance_limit, "balance_limit"),
                **money(limits.payment_limit, "payment_limit"),
            }
            for tier, limits in sorted(config.tiers.items())
        },
        float_policy={
            **money(marks.low, "low"),
            **money(marks.target, "target"),
            **money(marks.high, "high"),
        },
    )
    if as_json:
        emit_json(view)
        return
    OPERATOR.print_setup(
        view,
        f"{config.name} ({config.asset})",
        [
            ("identity key", keys["identity_key"]),
            ("float key", keys["float_key"]),
            ("node", config.node_url),
            ("issuer", config.issuer_url),
        ],
        ". Next: the issuer's admin runs [bold]tally issuer add-operator --name "
        f"{config.name} --key {keys['identity_key']} --float-key {keys['float_key']}[/bold] "
        f"(or --operator-dir {directory}); then [bold]tally operator start {directory}[/bold]",
    )


@app.command("start")
@reports_errors
def start(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="The operator's directory (made by `init`).")
    ],
) -> None:
    """Run the operator service in the foreground until Ctrl-C or SIGTERM."""
    OPERATOR.existing_config(directory)
    # Imported here: the service pulls in uvicorn, FastAPI and the database drivers.
    from tally.services.operator.__main__ import main as run_operator

    raise typer.Exit(run_operator([str(directory)]))


# -- admin -------------------------------------------------------------------------------------


@app.command("add-customer")
@reports_errors
def add_customer(
    name: Annotated[str, typer.Option("--name", help="The customer's name.", show_default=False)],
    tier: Annotated[
        int, typer.Option("--tier", min=1, help="The customer's KYC tier.", show_default=False)
    ],
    wallet_key: Annotated[
        str | None,
        typer.Option(
            "--wallet-key",
            metavar="HEX",
            help="A self-custody customer: its wallet's identity key "
            "(`tally wallet enroll` prints it).",
            show_default=False,
        ),
    ] = None,
    hosted: Annotated[
        bool,
        typer.Option(
            "--hosted",
            help="A hosted wallet held by the operator; its bearer token is printed once.",
        ),
    ] = False,
    url: UrlOption = None,
    admin_token_file: AdminTokenFileOption = None,
    operator_dir: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a customer: self-custody (--wallet-key) or hosted (--hosted)."""
    if hosted == (wallet_key is not None):
        raise CliError("give exactly one of --wallet-key HEX (self-custody) and --hosted")
    # Checked here: an empty key sent as none at all would make a hosted customer.
    key = None if wallet_key is None else parse_public_key(wallet_key, "--wallet-key")
    with _admin(url, admin_token_file, operator_dir) as operator:
        answer = operator.create_customer(name, tier, key)
    view = {**answer, "hosted": hosted}
    if as_json:
        emit_json(view)
        return
    grid = details_grid()
    grid.add_row("customer id", str(answer["customer_id"]))
    grid.add_row("name", str(answer["name"]))
    grid.add_row("tier", str(answer["tier"]))
    if hosted:
        grid.add_row("hosted key", str(answer.get("hosted_key")))
        grid.add_row("hosted address", str(answer.get("hosted_address")))
        grid.add_row("token", str(answer.get("token")))
    else:
        grid.add_row("wallet key", str(answer.get("wallet_key")))
    console.print(grid)
    if hosted:
        console.print(
            "the customer's token is shown this once: hand it over; it is used with "
            "`tally wallet me|load|unload|hosted-pay --token TOKEN`"
        )


@app.command("deposit")
@reports_errors
def deposit(
    customer_id: Annotated[int, typer.Argument(metavar="CUSTOMER_ID", min=1)],
    amount: AmountOption,
    idempotency_key: IdempotencyOption = None,
    url: UrlOption = None,
    admin_token_file: AdminTokenFileOption = None,
    operator_dir: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Credit a customer's deposit account (cash paid in at the counter), once per key."""
    minor = parse_amount(amount)
    key = idempotency_key or new_idempotency_key("deposit")
    with _admin(url, admin_token_file, operator_dir) as operator:
        view = movement_view(operator.deposit(customer_id, minor, key), key)
    if as_json:
        emit_json(view)
    else:
        print_movement(view)


@app.command("customers")
@reports_errors
def customers(
    url: UrlOption = None,
    admin_token_file: AdminTokenFileOption = None,
    operator_dir: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the customers: tier, kind of wallet, keys and deposit."""
    with _admin(url, admin_token_file, operator_dir) as operator:
        rows = [money_fields(row, _CUSTOMER_AMOUNTS) for row in operator.customers()]
    if as_json:
        emit_json({"customers": rows})
        return
    if not rows:
        console.print("no customers yet: add one with `tally operator add-customer`")
        return
    table = Table("id", "name", "tier", "wallet", "key", "deposit", title="customers")
    table.columns[5].justify = "right"
    for row in rows:
        kind = "hosted" if row["hosted"] else "self-custody"
        key = row["hosted_key"] if row["hosted"] else row["wallet_key"]
        table.add_row(
            str(row["customer_id"]),
            str(row["name"]),
            str(row["tier"]),
            kind,
            str(key),
            row["deposit_formatted"],
        )
    console.print(table)


@app.command("float")
@reports_errors
def float_status(
    url: UrlOption = None,
    admin_token_file: AdminTokenFileOption = None,
    operator_dir: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the float: its coins, what is reserved for movements under way, and its marks."""
    with _admin(url, admin_token_file, operator_dir) as operator:
        document = operator.float_status()
    view = money_fields(document, ("total", "available", "reserved"))
    view["coins"] = [money_fields(coin, ("amount",)) for coin in document.get("coins", [])]
    view["policy"] = money_fields(document.get("policy", {}), ("low", "target", "high"))
    if as_json:
        emit_json(view)
        return
    policy = view["policy"]
    grid = details_grid()
    grid.add_row("float key", str(view["key"]))
    grid.add_row("address", str(view["address"]))
    grid.add_row("total", f"{view['total_formatted']} {view['asset']}")
    grid.add_row("available", view["available_formatted"])
    grid.add_row("reserved", view["reserved_formatted"])
    grid.add_row("coins", str(len(view["coins"])))
    grid.add_row(
        "marks",
        f"low {policy['low_formatted']}, target {policy['target_formatted']}, "
        f"high {policy['high_formatted']}",
    )
    console.print(grid)


@app.command("rebalance")
@reports_errors
def rebalance(
    url: UrlOption = None,
    admin_token_file: AdminTokenFileOption = None,
    operator_dir: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Bring the float between its marks now: issuance when low, redemption when high."""
    with _admin(url, admin_token_file, operator_dir) as operator:
        document = operator.rebalance()
    view = money_fields(document, ("amount", "total_before", "total_after"))
    if isinstance(document.get("result"), dict):
        view["result"] = money_fields(document["result"], _MOVEMENT_AMOUNTS)
    if as_json:
        emit_json(view)
        return
    if view["action"] == "none":
        console.print(f"the float ({view['total_after_formatted']}) is between its marks")
        return
    color = "green" if view["status"] == "done" else "yellow"
    console.print(
        f"{view['action']} {view['amount_formatted']}: [{color}]{view['status']}[/{color}]; "
        f"float {view['total_before_formatted']} -> {view['total_after_formatted']}"
    )


@app.command("journal")
@reports_errors
def journal(
    customer: Annotated[
        int | None,
        typer.Option(
            "--customer",
            metavar="ID",
            min=1,
            help="Only this customer's entries.",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
    admin_token_file: AdminTokenFileOption = None,
    operator_dir: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the journal of money movements, newest first."""
    with _admin(url, admin_token_file, operator_dir) as operator:
        rows = [money_fields(row, _MOVEMENT_AMOUNTS) for row in operator.journal(customer)]
    if as_json:
        emit_json({"entries": rows})
        return
    if not rows:
        console.print("the journal is empty")
        return
    table = Table("id", "kind", "status", "customer", "amount", "txid", title="journal")
    table.columns[4].justify = "right"
    for row in rows:
        table.add_row(
            str(row["journal_id"]),
            str(row["kind"]),
            str(row["status"]),
            "" if row.get("customer_id") is None else str(row["customer_id"]),
            str(row.get("amount_formatted", "")),
            str(row.get("txid") or ""),
        )
    console.print(table)
