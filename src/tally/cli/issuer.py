"""`tally issuer`: set up and run an issuer service, and administer it from the command line.

`init` makes the service directory from a network directory (the asset's issuer key and the
node's API come from it), prints the admin token once and keeps it in `DIR/admin.token`
(mode 0600) for the admin commands; `start` runs the service in the foreground.

The admin commands (`add-operator`, `fund`, `operators`) talk to the issuer at `--url`
(default: the URL in `--dir`'s `issuer.toml`, else `$TALLY_ISSUER_URL`, else
http://127.0.0.1:7546) with the admin token read from `--admin-token-file`, else
`--dir DIR/admin.token`, else `$TALLY_ISSUER_ADMIN_TOKEN`. `audit` and `certificate` are
public.

The helpers every service command shares live here too: `reports_service_errors` turns a
service's refusal into one line naming its code, `money_fields` writes amounts in `--json`
documents as `X` (minor units, an integer) beside `X_formatted` (major units, `"12.50"`),
the same way `tally wallet` does.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, ParamSpec, TypeVar

import typer
from rich.table import Table

from tally.cli.amounts import format_amount, parse_amount
from tally.cli.context import JsonOption, NetworkOption, open_network
from tally.cli.output import CliError, console, emit_json, fail, reports_errors
from tally.node.keyfile import read_key
from tally.services.common.client import ServiceCallError
from tally.services.issuer.client import (
    Audit,
    CertificateView,
    IssuerClient,
    OperatorAccount,
)
from tally.services.issuer.config import (
    IssuerConfigError,
    init_issuer_dir,
    load_issuer_config,
)

__all__ = [
    "app",
    "ADMIN_TOKEN_FILE",
    "DEFAULT_ISSUER_PORT",
    "ISSUER_URL_ENV",
    "ISSUER_TOKEN_ENV",
    "reports_service_errors",
    "describe_service_error",
    "money_fields",
    "new_idempotency_key",
    "write_token_file",
    "read_token_file",
    "local_url",
]

ADMIN_TOKEN_FILE: Final = "admin.token"  # noqa: S105 - a file name, not a secret
"""Where `init` keeps a service's admin token, inside the service directory (mode 0600)."""
DEFAULT_ISSUER_PORT: Final = 7546
"""The issuer API's port on 127.0.0.1 unless told otherwise (the node is on 7545)."""
ISSUER_URL_ENV: Final = "TALLY_ISSUER_URL"
"""The environment variable naming the issuer's API."""
ISSUER_TOKEN_ENV: Final = "TALLY_ISSUER_ADMIN_TOKEN"  # noqa: S105 - the variable's name
"""The environment variable holding the issuer's admin token."""

_ACCOUNT_AMOUNTS: Final = ("available", "frozen", "issued", "redeemed", "pending")

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="issuer",
    help="Run an issuer service (reserve accounts, issuance against frozen reserve) and "
    "administer it: register operators, fund their reserves, audit supply against reserves.",
    no_args_is_help=True,
)


# -- helpers shared by the service commands ----------------------------------------------------


def describe_service_error(exc: ServiceCallError, service: str) -> str:
    """One line telling what a service call's failure was, with the service's code."""
    if exc.status == 0:
        return f"the {service} service is not reachable: {exc.message} (is it running?)"
    return f"the {service} refused (HTTP {exc.status}): {exc.code}: {exc.message}"


def reports_service_errors(service: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Like `reports_errors`, and a `ServiceCallError` from `service` becomes one red line."""

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return command(*args, **kwargs)
            except ServiceCallError as exc:
                fail(describe_service_error(exc, service))

        return reports_errors(wrapper)

    return decorate


def money_fields(document: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:  # Any: JSON
    """`document` with each amount in `names` as an integer beside its `_formatted` twin.

    Amounts may come as integers or decimal strings (the issuer's API sends strings); a
    missing or null amount stays as it is.
    """
    wanted = set(names)
    result: dict[str, Any] = {}
    for name, value in document.items():
        if name in wanted and value is not None:
            minor = int(str(value))
            result[name] = minor
            result[f"{name}_formatted"] = format_amount(minor)
        else:
            result[name] = value
    return result


def new_idempotency_key(kind: str) -> str:
    """A fresh idempotency key such as `fund-3f9c…`: printed, so a retry can repeat it."""
    return f"{kind}-{secrets.token_hex(12)}"


def write_token_file(path: Path, token: str) -> None:
    """Write a token to `path` (mode 0600, replacing an old one), followed by a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    path.chmod(0o600)  # an old file keeps its mode through O_TRUNC


def read_token_file(path: Path, what: str) -> str:
    """The token in `path` (its first line).

    Raises:
        CliError: the file cannot be read or is empty.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CliError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"the {what} file {path} is not text") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise CliError(f"the {what} file {path} is empty")
    return token


def local_url(host: str, port: int) -> str:
    """The URL a local client reaches a service listening on `host`:`port` at."""
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - a listening address, not a bind here
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    return grid


# -- options -----------------------------------------------------------------------------------

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help=f"The issuer's API (default: --dir's, else ${ISSUER_URL_ENV}, else "
        f"http://127.0.0.1:{DEFAULT_ISSUER_PORT}).",
        show_default=False,
    ),
]
AdminTokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--admin-token-file",
        metavar="FILE",
        help=f"Read the admin token from FILE (default: --dir's {ADMIN_TOKEN_FILE}, else "
        f"${ISSUER_TOKEN_ENV}).",
        show_default=False,
    ),
]
DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        metavar="DIR",
        help=f"The issuer's directory: its {ADMIN_TOKEN_FILE} and the URL in its issuer.toml.",
        show_default=False,
    ),
]
AmountOption = Annotated[
    str,
    typer.Option(
        "--amount",
        help="Major units with up to 2 decimals (1000000.00), or minor units without a point.",
        show_default=False,
    ),
]


def _url(option: str | None, directory: Path | None) -> str:
    if option:
        return option.rstrip("/")
    if directory is not None:
        try:
            config = load_issuer_config(directory)
        except IssuerConfigError as exc:
            raise CliError(str(exc)) from None
        return local_url(config.api_host, config.api_port)
    return (os.environ.get(ISSUER_URL_ENV) or f"http://127.0.0.1:{DEFAULT_ISSUER_PORT}").rstrip("/")


def _admin_token(file: Path | None, directory: Path | None) -> str:
    if file is not None:
        return read_token_file(file, "admin token")
    if directory is not None:
        return read_token_file(directory / ADMIN_TOKEN_FILE, "admin token")
    token = os.environ.get(ISSUER_TOKEN_ENV, "").strip()
    if token:
        return token
    raise CliError(
        "this is an admin command: give the issuer's admin token with --admin-token-file FILE, "
        f"--dir ISSUER_DIR (its {ADMIN_TOKEN_FILE}) or ${ISSUER_TOKEN_ENV}"
    )


def _admin(url: str | None, token_file: Path | None, directory: Path | None) -> IssuerClient:
    return IssuerClient(_url(url, directory), admin_token=_admin_token(token_file, directory))


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
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="The API's port on 127.0.0.1.")
    ] = DEFAULT_ISSUER_PORT,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="URL",
            help="SQLAlchemy URL, such as postgresql+psycopg://user@host/db "
            "(default: issuer.sqlite in DIR).",
            show_default=False,
        ),
    ] = None,
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
    try:
        token = init_issuer_dir(
            directory,
            asset=code,
            issuer_key=issuer_key,
            node_url=net.api,
            port=port,
            database=database,
            name=name,
        )
        config = load_issuer_config(directory)
    except IssuerConfigError as exc:
        raise CliError(str(exc)) from None
    token_file = directory / ADMIN_TOKEN_FILE
    write_token_file(token_file, token)
    view = {
        "directory": str(directory),
        "config": str(directory / "issuer.toml"),
        "name": config.name,
        "asset": config.asset,
        "issuer_key": issuer_key.public_key.hex(),
        "node_url": config.node_url,
        "url": local_url(config.api_host, config.api_port),
        "admin_token": token,
        "admin_token_file": str(token_file),
    }
    if as_json:
        emit_json(view)
        return
    grid = _grid()
    grid.add_row("issuer", f"{config.name} of {config.asset}")
    grid.add_row("directory", str(directory))
    grid.add_row("issuer key", view["issuer_key"])
    grid.add_row("node", config.node_url)
    grid.add_row("api", view["url"])
    grid.add_row("admin token", token)
    grid.add_row("token file", str(token_file))
    console.print(grid)
    console.print(
        "the admin token is shown this once (the service keeps only its hash); start the "
        f"issuer with: [bold]tally issuer start {directory}[/bold]"
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
    try:
        load_issuer_config(directory)
    except IssuerConfigError as exc:
        raise CliError(f"{exc} (make the directory with `tally issuer init`)") from None
    # Imported here: the service pulls in uvicorn, FastAPI and the database drivers.
    from tally.services.issuer.api import run_issuer

    raise typer.Exit(run_issuer(directory, log_level.lower()))


# -- admin -------------------------------------------------------------------------------------


@app.command("add-operator")
@reports_service_errors("issuer")
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
        from tally.services.operator.config import OperatorConfigError, load_config

        try:
            config = load_config(operator_dir)
        except OperatorConfigError as exc:
            raise CliError(str(exc)) from None
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
    grid = _grid()
    grid.add_row("operator id", str(account.id))
    grid.add_row("name", account.name)
    grid.add_row("key", account.key)
    grid.add_row("float key", account.float_key)
    console.print(grid)
    console.print(
        f"fund its reserve with: [bold]tally issuer fund {account.id} --amount 1000000.00[/bold]"
    )


@app.command("fund")
@reports_service_errors("issuer")
def fund(
    operator_id: Annotated[int, typer.Argument(metavar="OPERATOR_ID", min=1)],
    amount: AmountOption,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            metavar="KEY",
            help="Repeat a credit safely: a key already used credits nothing again "
            "(default: a fresh one, printed).",
            show_default=False,
        ),
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
        **money_fields({"amount": deposit.amount}, ("amount",)),
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
@reports_service_errors("issuer")
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
@reports_service_errors("issuer")
def audit(
    url: UrlOption = None,
    issuer_dir: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the ledger's outstanding supply beside the frozen reserves, and whether they match.

    They may differ for a moment while an issuance is pending or a redemption is not yet
    released; `pending` shows the first.
    """
    with IssuerClient(_url(url, issuer_dir)) as issuer:
        view = _audit_view(issuer.audit())
    if as_json:
        emit_json(view)
        return
    ledger, reserves = view["ledger"], view["reserves"]
    grid = _grid()
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
@reports_service_errors("issuer")
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
    with IssuerClient(_url(url, issuer_dir)) as issuer:
        view = _certificate_view(issuer.certificate(certificate_hash.strip().lower()))
    if as_json:
        emit_json(view)
        return
    body = view["certificate"]
    grid = _grid()
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
