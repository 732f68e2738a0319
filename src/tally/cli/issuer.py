"""`tally issuer`: set up and run an issuer service, and administer it from the command line.

`init` makes the service directory from a network directory (the asset's issuer key and the
node's API come from it), prints the admin token once and keeps it in `DIR/admin.token`
(mode 0600) for the admin commands; `start` runs the service in the foreground.

The admin commands (`add-operator`, `fund`, `operators`) talk to the issuer at `--url`
(default: the URL in `--dir`'s `issuer.toml`, else `$TALLY_ISSUER_URL`, else
http://127.0.0.1:7546) with the admin token read from `--admin-token-file`, else
`--dir DIR/admin.token`, else `$TALLY_ISSUER_ADMIN_TOKEN` (see `tally.cli.services`).
`audit` and `certificate` are public. Amounts appear in `--json` documents as minor units
beside a `_formatted` twin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.table import Table

from tally.cli.amounts import format_amount, parse_amount
from tally.cli.context import JsonOption, NetworkOption, open_network
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
    PortOption,
    Service,
    amount_option,
    idempotency_option,
    new_idempotency_key,
)
from tally.node.keyfile import read_key
from tally.services.issuer.client import (
    Audit,
    CertificateView,
    IssuerClient,
    OperatorAccount,
)
from tally.services.issuer.config import (
    CONFIG_FILE,
    IssuerConfig,
    IssuerConfigError,
    init_issuer_dir,
    load_issuer_config,
)
from tally.services.operator.config import load_config as load_operator_config

__all__ = ["app", "ISSUER"]

ISSUER: Final[Service[IssuerConfig]] = Service(
    name="issuer",
    config_file=CONFIG_FILE,
    default_port=7546,  # the node's is 7545
    load_config=load_issuer_config,
    config_error=IssuerConfigError,
)
"""How the command line finds the issuer and its admin token (`tally.cli.services`)."""

_ACCOUNT_AMOUNTS: Final = ("available", "frozen", "issued", "redeemed", "pending")

app = typer.Typer(
    name="issuer",
    help="Run an issuer service (reserve accounts, issuance against frozen reserve) and "
    "administer it: register operators, fund their reserves, audit supply against reserves.",
    no_args_is_help=True,
)


# -- options -----------------------------------------------------------------------------------

UrlOption = Annotated[str | None, ISSUER.url_option()]
AdminTokenFileOption = Annotated[Path | None, ISSUER.admin_token_file_option()]
DirOption = Annotated[Path | None, ISSUER.dir_option()]
AmountOption = Annotated[str, amount_option("1000000.00")]


# -- helpers -----------------------------------------------------------------------------------


def _admin(url: str | None, token_file: Path | None, directory: Path | None) -> IssuerClient:
    return IssuerClient(
        ISSUER.url(url, directory), admin_token=ISSUER.admin_token(token_file, directory)
    )


def _account_view(account: OperatorAccount) -> dict[str, Any]:  # Any: JSON
    return money_fields(account.to_json(), _ACCOUNT_AMOUNTS)


def _audit_view(audit: Audit) -> dict[str, Any]:  # Any: JSON
    document = audit.to_json()
    return {
        "asset": document["asset"],
        "issuer": document["issuer"],
        "chain_id": document["chain_id"],
        "balanced": document["balanced"],
        "ledger": money_fields(document["ledger"], ("issued", "redeemed", "outstanding")),
        "reserves": money_fields(document["reserves"], _ACCOUNT_AMOUNTS),
        "operators": [_account_view(account) for account in audit.operators],
        "certificates": [money_fields(entry, ("amount",)) for entry in document["certificates"]],
        "follower_height": document["follower_height"],
        "time_ms": document["time_ms"],
    }


def _certificate_view(view: CertificateView) -> dict[str, Any]:  # Any: JSON
    document = view.to_json()
    document["certificate"] = money_fields(document["certificate"], ("amount",))
    return document


def _print_accounts(accounts: list[dict[str, Any]], title: str) -> None:
    if not accounts:
        console.print("no operators yet: register one with `tally issuer add-operator`")
        return
    table = Table("id", "name", "available", "frozen", "issued", "redeemed", "pending", title=title)
    for column in table.columns[2:]:
        column.justify = "right"
    for account in accounts:
        table.add_row(
            str(account["id"]),
            account["name"],
            *(account[f"{name}_formatted"] for name in _ACCOUNT_AMOUNTS),
        )
    console.print(table)


# -- set up and run ----------------------------------------------------------------------------


@app.command("init")
@reports_errors
def init(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="The issuer's directory to create.")
    ],
    network: NetworkOption = None,
    asset: Annotated[str, typer.Option("--asset", help="The asset this issuer issues.")] = "CNY",
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            metavar="FILE",
            help="The asset's issuer key file (default: the network directory's).",
            show_default=False,
        ),
    ] = None,
    port: PortOption = ISSUER.default_port,
    database: Annotated[str | None, ISSUER.database_option()] = None,
    name: Annotated[str, typer.Option("--name", help="The issuer's name, for logs.")] = "issuer",
    as_json: JsonOption = False,
) -> None:
    """Create an issuer's directory from a network directory made by `tally init`.

    The asset's issuer key (registered in genesis) is copied into DIR and the node's API is
    taken from the network. The admin token is printed once and kept in DIR/admin.token
    (mode 0600) for the admin commands.
    """
    code = asset.upper()
    net = open_network(network)
    issuer_key = read_key(key if key is not None else net.issuer_key(code))
    token = init_issuer_dir(
        directory,
        asset=code,
        issuer_key=issuer_key,
        node_url=net.api,
        port=port,
        database=database,
        name=name,
    )
    config, view = ISSUER.describe_setup(
        directory, token, {"issuer_key": issuer_key.public_key.hex()}
    )
    if as_json:
        emit_json(view)
        return
    ISSUER.print_setup(
        view,
        f"{config.name} of {config.asset}",
        [("issuer key", view["issuer_key"]), ("node", config.node_url)],
        f"; start the issuer with: [bold]tally issuer start {directory}[/bold]",
    )


@app.command("start")
@reports_errors
def start(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="The issuer's directory (made by `init`).")
    ],
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Run the issuer service in the foreground until Ctrl-C or SIGTERM."""
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise CliError(f"--log-level is debug, info, warning or error, not {log_level!r}")
    ISSUER.existing_config(directory)
    # Imported here: the service pulls in uvicorn, FastAPI and the database drivers.
    from tally.services.issuer.api import run_issuer

    raise typer.Exit(run_issuer(directory, log_level.lower()))


# -- admin -------------------------------------------------------------------------------------


@app.command("add-operator")
@reports_errors
def add_operator(
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="The operator's name (default: --operator-dir's).", show_default=False
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            metavar="HEX",
            help="The operator's identity key: it signs the operator's requests.",
            show_default=False,
        ),
    ] = None,
    float_key: Annotated[
        str | None,
        typer.Option(
            "--float-key",
            metavar="HEX",
            help="The operator's float key: issuance is paid to it.",
            show_default=False,
        ),
    ] = None,
    operator_dir: Annotated[
        Path | None,
        typer.Option(
            "--operator-dir",
            metavar="DIR",
            help="Read the name and both keys from an operator's directory "
            "(made by `tally operator init`).",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
    admin_token_file: AdminTokenFileOption = None,
    issuer_dir: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an operator by its identity key and float key; prints its operator id."""
    if operator_dir is not None:
        if key is not None or float_key is not None:
            raise CliError("give either --operator-dir or --key and --float-key, not both")
        config = load_operator_config(operator_dir)
        key = read_key(config.key_file).public_key.hex()
        float_key = read_key(config.float_key_file).public_key.hex()
        name = name or config.name
    if name is None or key is None or float_key is None:
        raise CliError("give --name, --key and --float-key, or --operator-dir DIR")
    with _admin(url, admin_token_file, issuer_dir) as issuer:
        account = issuer.register_operator(name, key.lower(), float_key.lower())
    view = _account_view(account)
    if as_json:
        emit_json(view)
        return
    grid = details_grid()
    grid.add_row("operator id", str(account.id))
    grid.add_row("name", account.name)
    grid.add_row("key", account.key)
    grid.add_row("float key", account.float_key)
    console.print(grid)
    console.print(
        f"fund its reserve with: [bold]tally issuer fund {account.id} --amount 1000000.00[/bold]"
    )


@app.command("fund")
@reports_errors
def fund(
    operator_id: Annotated[int, typer.Argument(metavar="OPERATOR_ID", min=1)],
    amount: AmountOption,
    idempotency_key: Annotated[
        str | None, idempotency_option("a credit", "credits nothing again")
    ] = None,
    url: UrlOption = None,
    admin_token_file: AdminTokenFileOption = None,
    issuer_dir: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Credit an operator's reserve account (money it paid to the issuer), once per key."""
    minor = parse_amount(amount)
    key = idempotency_key or new_idempotency_key("fund")
    with _admin(url, admin_token_file, issuer_dir) as issuer:
        deposit = issuer.fund_reserve(operator_id, minor, key)
    view = {
        "deposit_id": deposit.id,
        "operator_id": deposit.operator_id,
        "idempotency_key": deposit.idempotency_key,
        **money(deposit.amount),
        "created_ms": deposit.created_ms,
        "account": _account_view(deposit.account),
    }
    if as_json:
        emit_json(view)
        return
    account = view["account"]
    console.print(
        f"credited {format_amount(deposit.amount)} to operator {deposit.operator_id} "
        f"({account['name']}): available {account['available_formatted']}, "
        f"frozen {account['frozen_formatted']}"
    )
    console.print(f"idempotency key {deposit.idempotency_key} (repeat it to retry safely)")


@app.command("operators")
@reports_errors
def operators(
    url: UrlOption = None,
    admin_token_file: AdminTokenFileOption = None,
    issuer_dir: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the registered operators and their reserve accounts."""
    with _admin(url, admin_token_file, issuer_dir) as issuer:
        accounts = [_account_view(account) for account in issuer.operators()]
    if as_json:
        emit_json({"operators": accounts})
        return
    _print_accounts(accounts, "operators")


# -- public ------------------------------------------------------------------------------------


@app.command("audit")
@reports_errors
def audit(
    url: UrlOption = None,
    issuer_dir: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the ledger's outstanding supply beside the frozen reserves, and whether they match.

    They may differ for a moment while an issuance is pending or a redemption is not yet
    released; `pending` shows the first.
    """
    with IssuerClient(ISSUER.url(url, issuer_dir)) as issuer:
        view = _audit_view(issuer.audit())
    if as_json:
        emit_json(view)
        return
    ledger, reserves = view["ledger"], view["reserves"]
    grid = details_grid()
    grid.add_row("asset", f"{view['asset']} on {view['chain_id']}")
    grid.add_row("ledger outstanding", ledger["outstanding_formatted"])
    grid.add_row("frozen reserves", reserves["frozen_formatted"])
    grid.add_row("pending issuance", reserves["pending_formatted"])
    grid.add_row("available reserves", reserves["available_formatted"])
    grid.add_row("balanced", "[green]yes[/green]" if view["balanced"] else "[red]NO[/red]")
    grid.add_row("certificates", str(len(view["certificates"])))
    grid.add_row("follower height", str(view["follower_height"]))
    console.print(grid)
    if view["operators"]:
        _print_accounts(view["operators"], "reserve accounts")


@app.command("certificate")
@reports_errors
def certificate(
    certificate_hash: Annotated[
        str,
        typer.Argument(
            metavar="HASH", help="The certificate's hash: an issued coin's reserve_ref (hex)."
        ),
    ],
    url: UrlOption = None,
    issuer_dir: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a signed freeze certificate: the reserve behind an issuance."""
    with IssuerClient(ISSUER.url(url, issuer_dir)) as issuer:
        view = _certificate_view(issuer.certificate(certificate_hash.strip().lower()))
    if as_json:
        emit_json(view)
        return
    body = view["certificate"]
    grid = details_grid()
    grid.add_row("hash", view["hash"])
    grid.add_row("amount", f"{body['amount_formatted']} {body['asset']}")
    grid.add_row("operator", body["operator"])
    grid.add_row("chain", body["chain_id"])
    grid.add_row("sequence", str(body["sequence"]))
    grid.add_row("issuer", view["issuer"])
    grid.add_row("signature", view["signature"])
    grid.add_row("issuance", f"{view['issuance_id']} ({view['status']})")
    if view["txid"]:
        grid.add_row("txid", f"{view['txid']} at height {view['height']}")
    console.print(grid)
