"""`tally wallet`: a person's or a merchant's wallet on the command line.

Every command opens the wallet directory `--wallet` (default `$TALLY_WALLET`, else
`./wallet`) with its password, read from `--password-file` (the file's first line), else
from `$TALLY_WALLET_PASSWORD`, else asked for without echo. Commands that read balances sync
with the node first (`--no-sync` skips that); a sync also takes back expired pre-payments
and merges many small coins.

Amounts are typed as `parse_amount` reads them: major units with a decimal point and at most
two decimals (`120.00`), or minor units without one (`12000`). `--json` documents give every
amount twice: `amount` in minor units as an integer, and `amount_formatted` in major units.

Payment requests (`request`, `counter`) are signed by the wallet's identity key and name a
fresh receive key as payee; `pay` checks a request's signature, network and expiry before it
shows the request and pays it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.table import Table

from tally.cli.amounts import format_amount, parse_amount
from tally.cli.context import JsonOption
from tally.cli.network import DEFAULT_PORT
from tally.cli.output import (
    CliError,
    console,
    details_grid,
    emit_json,
    error_console,
    money,
    reports_errors,
)
from tally.crypto.schnorr import is_valid_public_key
from tally.model.lock import EscrowLock, KeyLock
from tally.model.types import PublicKey, is_valid_asset_code
from tally.rules.errors import EscrowOverCaptureError
from tally.wallet.coinstore import ROLE_ESCROW_PAYEE, ROLE_ESCROW_PAYER, StoredCoin
from tally.wallet.payment_request import (
    CounterSession,
    PaymentRequest,
    SignedRequest,
    new_request,
    parse_uri,
    request_id,
    sign_request,
    to_uri,
    verify_request,
)
from tally.wallet.qr import qr_png, qr_terminal
from tally.wallet.vault import DEFAULT_SCRYPT_N
from tally.wallet.wallet import Wallet

__all__ = [
    "app",
    "open_wallet",
    "parse_public_key",
    "clock",
    "parse_duration",
    "DEFAULT_WALLET_DIR",
    "DEFAULT_NODE_URL",
    "WALLET_ENV",
    "PASSWORD_ENV",
    "NODE_ENV",
    "SCRYPT_N_ENV",
]

DEFAULT_WALLET_DIR: Final = "wallet"
"""The wallet directory when neither `--wallet` nor `$TALLY_WALLET` names one."""
DEFAULT_NODE_URL: Final = f"http://127.0.0.1:{DEFAULT_PORT}"
"""The node a new wallet talks to: the development network's API made by `tally init`."""
WALLET_ENV: Final = "TALLY_WALLET"
"""The environment variable naming the wallet directory."""
PASSWORD_ENV: Final = "TALLY_WALLET_PASSWORD"  # noqa: S105 - the variable's name, not a secret
"""The environment variable holding the wallet's password."""
NODE_ENV: Final = "TALLY_NODE"
"""The environment variable naming the node a new wallet talks to."""
SCRYPT_N_ENV: Final = "TALLY_WALLET_SCRYPT_N"
"""For tests only: scrypt's cost for a new wallet file (a low one unlocks fast)."""

_MIN_SCRYPT_N: Final = 2**10
_MAX_SCRYPT_N: Final = 2**20
_PUBLIC_KEY: Final = re.compile(r"[0-9a-fA-F]{64}")
_PAYEE_HINT: Final = (
    " (an address is only a hash: ask for the key, printed by `tally wallet address`, or a "
    "payment request)"
)
_COIN_ID: Final = re.compile(r"[0-9a-fA-F]{64}")
_DURATION: Final = re.compile(r"([0-9]{1,9})([smhd]?)")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_POLL_S: Final = 0.2
"""Seconds between two syncs while a counter waits for a payment."""

app = typer.Typer(
    name="wallet",
    help="A wallet: receive keys, balance and history, pay, payment requests and pre-payments.",
    no_args_is_help=True,
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


clock: Callable[[], int] = _now_ms
"""Wall-clock milliseconds since the Unix epoch, for request expiries; tests swap it."""


# -- options -----------------------------------------------------------------------------------

WalletOption = Annotated[
    Path | None,
    typer.Option(
        "--wallet",
        "-w",
        metavar="DIR",
        help=f"The wallet directory (default: ${WALLET_ENV}, then ./{DEFAULT_WALLET_DIR}).",
        show_default=False,
    ),
]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        metavar="FILE",
        help=f"Read the password from FILE's first line (default: ${PASSWORD_ENV}, else ask).",
        show_default=False,
    ),
]
NodeOption = Annotated[
    str | None,
    typer.Option(
        "--node",
        metavar="URL",
        help="Talk to this node instead of the one the wallet was made with.",
        show_default=False,
    ),
]
AssetFilterOption = Annotated[
    str | None, typer.Option("--asset", help="Only this asset.", show_default=False)
]
NoSyncOption = Annotated[
    bool,
    typer.Option("--no-sync", help="Do not sync with the node first; show what the wallet knows."),
]
AssetOption = Annotated[
    str, typer.Option("--asset", help="The asset's code, such as CNY.", show_default=False)
]
AmountOption = Annotated[
    str,
    typer.Option(
        "--amount",
        help="Major units with up to 2 decimals (120.00), or minor units without a point (12000).",
        show_default=False,
    ),
]
MemoOption = Annotated[
    str,
    typer.Option("--memo", help="A note: shown to the payer in a request, kept in history."),
]
ExpiresOption = Annotated[
    str,
    typer.Option(
        "--expires",
        metavar="DURATION",
        help="How long the request stays valid: 300s, 15m, 1h, 2d (plain digits: seconds).",
    ),
]


# -- helpers -----------------------------------------------------------------------------------


def _wallet_dir(option: Path | None) -> Path:
    if option is not None:
        return option
    return Path(os.environ.get(WALLET_ENV) or DEFAULT_WALLET_DIR)


def _password(file: Path | None, *, confirm: bool) -> str:
    """The password: `--password-file`'s first line, else the environment, else a prompt."""
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read the password file {file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CliError(f"the password file {file} is not UTF-8 text") from None
        lines = text.splitlines()
        return lines[0] if lines else ""
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env is not None:
        return from_env
    prompted: str = typer.prompt(
        "wallet password", hide_input=True, confirmation_prompt=confirm, err=True
    )
    return prompted


@contextmanager
def open_wallet(
    directory: Path | None, password_file: Path | None, node: str | None, *, sync: bool = False
) -> Iterator[Wallet]:
    """Open the wallet the options name, with the password from file, environment or prompt.

    Args:
        directory: `--wallet`.
        password_file: `--password-file`.
        node: `--node`, instead of the wallet's own node.
        sync: Catch up with the node first (taking back expired pre-payments, merging).
    """
    password = _password(password_file, confirm=False)
    with Wallet.open(_wallet_dir(directory), password, node_url=node) as wallet:
        if sync:
            wallet.sync()
        yield wallet


def _when(ms: int) -> str:
    """Milliseconds since the epoch as an ISO 8601 time in UTC, to the second."""
    try:
        moment = datetime.fromtimestamp(ms // 1000, UTC)
    except (OverflowError, ValueError, OSError):
        return f"{ms} ms"
    return moment.isoformat().replace("+00:00", "Z")


def parse_public_key(text: str, what: str, hint: str = "") -> PublicKey:
    """A public key given as 64 hex digits.

    Args:
        text: The option's or argument's text.
        what: Its name in messages (`--to`).
        hint: Said after "must be a public key" when `text` is not one.

    Raises:
        CliError: not 64 hex digits, or not a valid x-only key.
    """
    if not _PUBLIC_KEY.fullmatch(text):
        raise CliError(f"{what} must be a public key of 64 hex digits, got {text!r}{hint}")
    raw = bytes.fromhex(text)
    if not is_valid_public_key(raw):
        raise CliError(f"{what} {text} is not a valid public key (no point on the curve)")
    return PublicKey(raw)


def _coin_id(text: str) -> str:
    if not _COIN_ID.fullmatch(text):
        raise CliError(f"an escrow id is a coin id of 64 hex digits, got {text!r}")
    return text.lower()


def parse_duration(text: str) -> int:
    """Seconds that `text` names: digits with an optional unit `s`, `m`, `h` or `d`.

    Args:
        text: Such as `300s`, `15m`, `1h`, `2d` or `90` (seconds).

    Returns:
        The number of seconds, at least 1.

    Raises:
        CliError: not a duration, or zero.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise CliError(f"{text!r} is not a duration: write 300s, 15m, 1h or 2d")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 1:
        raise CliError(f"a duration is at least 1 second, got {text!r}")
    return seconds


def _balances_view(wallet: Wallet, asset: str | None) -> dict[str, Any]:
    totals = wallet.balance(asset)
    return {
        "height": wallet.height,
        "balances": {name: money(amount) for name, amount in sorted(totals.items())},
    }


def _print_balances(view: dict[str, Any]) -> None:
    balances: dict[str, dict[str, Any]] = view["balances"]
    if not balances:
        console.print(f"no coins (synced to height {view['height']})")
        return
    table = Table("asset", "balance", title=f"balance at height {view['height']}")
    table.columns[1].justify = "right"
    for asset, amount in balances.items():
        table.add_row(asset, amount["amount_formatted"])
    console.print(table)


def _request_view(req: PaymentRequest, uri: str, address: str) -> dict[str, Any]:
    return {
        "uri": uri,
        "request_id": request_id(req).hex(),
        "chain_id": req.chain_id,
        "payee": bytes(req.payee).hex(),
        "address": address,
        "merchant": bytes(req.merchant).hex(),
        "asset": str(req.asset),
        **money(req.amount),
        "memo": req.memo,
        "expires_ms": req.expires_ms,
        "expires": _when(req.expires_ms),
        "sequence": req.sequence,
    }


def _committed(result: dict[str, Any]) -> dict[str, Any]:  # Any: JSON
    """Where a transaction the wallet sent ended: its id, block height and result code."""
    return {"txid": result["txid"], "height": result["height"], "code": result["code"]}


def _show_code(uri: str, *, show_qr: bool) -> None:
    # typer.echo, not rich: rich would wrap the URI and the QR at the console's width.
    if show_qr:
        typer.echo(qr_terminal(uri), nl=False)
    typer.echo(uri)


def _escrow_view(stored: StoredCoin, height: int) -> dict[str, Any]:
    lock = stored.coin.lock
    if not isinstance(lock, EscrowLock):  # the store gives escrow roles to escrow locks only
        raise CliError(f"coin {stored.coin_id.hex()} is not an escrow")
    return {
        "escrow_id": stored.coin_id.hex(),
        "role": "payer" if stored.role == ROLE_ESCROW_PAYER else "payee",
        "asset": str(stored.coin.asset),
        **money(stored.coin.amount),
        "expiry": int(lock.expiry),
        "expired": height >= lock.expiry,
        "payer": bytes(lock.payer).hex(),
        "payee": bytes(lock.payee).hex(),
        "pending_txid": stored.pending_txid.hex() if stored.pending_txid else None,
    }


# -- create and keys ---------------------------------------------------------------------------


@app.command("create")
@reports_errors
def create(
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: Annotated[
        str | None,
        typer.Option(
            "--node",
            metavar="URL",
            help=f"The node's API (default: ${NODE_ENV}, then {DEFAULT_NODE_URL}).",
            show_default=False,
        ),
    ] = None,
    scrypt_n: Annotated[
        int,
        typer.Option(
            "--scrypt-n",
            envvar=SCRYPT_N_ENV,
            hidden=True,
            help="For tests only: scrypt's cost for the wallet file, a power of two.",
        ),
    ] = DEFAULT_SCRYPT_N,
    as_json: JsonOption = False,
) -> None:
    """Create a new wallet (never over an existing one); print its identity key and first address.

    The network's chain id and address prefix come from the node.
    """
    if not (_MIN_SCRYPT_N <= scrypt_n <= _MAX_SCRYPT_N and scrypt_n & (scrypt_n - 1) == 0):
        raise CliError(
            f"--scrypt-n must be a power of two in {_MIN_SCRYPT_N} … {_MAX_SCRYPT_N}, "
            f"got {scrypt_n}"
        )
    directory = _wallet_dir(wallet_dir)
    url = node or os.environ.get(NODE_ENV) or DEFAULT_NODE_URL
    password = _password(password_file, confirm=True)
    if not password:
        raise CliError("the wallet password is empty; choose one")
    with Wallet.create(directory, password, url, scrypt_n=scrypt_n) as wallet:
        receive = wallet.new_receive_key()
        view: dict[str, Any] = {
            "wallet": str(directory),
            "chain_id": wallet.chain_id,
            "hrp": wallet.hrp,
            "node": url,
            "height": wallet.height,
            "identity_key": wallet.identity_key.public_key.hex(),
            "address": wallet.address(receive),
            "public_key": receive.public_key.hex(),
        }
    if as_json:
        emit_json(view)
        return
    grid = details_grid()
    for label, name in (
        ("wallet", "wallet"),
        ("chain id", "chain_id"),
        ("node", "node"),
        ("identity key", "identity_key"),
        ("address", "address"),
        ("public key", "public_key"),
    ):
        grid.add_row(label, str(view[name]))
    console.print(grid)
    console.print(
        "payers need the public key (an address is only a hash); "
        "`tally wallet address` gives a fresh one for every payment"
    )


@app.command("address")
@reports_errors
def address(
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a fresh receive key: print its address and the public key a payer needs."""
    with open_wallet(wallet_dir, password_file, None) as wallet:
        key = wallet.new_receive_key()
        view = {"address": wallet.address(key), "public_key": key.public_key.hex()}
    if as_json:
        emit_json(view)
        return
    grid = details_grid()
    grid.add_row("address", view["address"])
    grid.add_row("public key", view["public_key"])
    console.print(grid)


# -- state -------------------------------------------------------------------------------------


@app.command("sync")
@reports_errors
def sync(
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Catch up with the node; expired pre-payments come back and small coins are merged."""
    with open_wallet(wallet_dir, password_file, node, sync=True) as wallet:
        view = _balances_view(wallet, None)
    if as_json:
        emit_json(view)
        return
    console.print(f"synced to height {view['height']}")
    _print_balances(view)


@app.command("balance")
@reports_errors
def balance(
    asset: AssetFilterOption = None,
    no_sync: NoSyncOption = False,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the spendable balance per asset (coins in pending payments and escrows left out)."""
    with open_wallet(wallet_dir, password_file, node, sync=not no_sync) as wallet:
        view = _balances_view(wallet, asset.upper() if asset else None)
    if as_json:
        emit_json(view)
    else:
        _print_balances(view)


@app.command("history")
@reports_errors
def history(
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Show at most N entries.", show_default=False),
    ] = None,
    asset: AssetFilterOption = None,
    no_sync: NoSyncOption = False,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what each transaction did to the wallet, newest first."""
    with open_wallet(wallet_dir, password_file, node, sync=not no_sync) as wallet:
        entries = wallet.history(limit, asset.upper() if asset else None)
        height = wallet.height
    rows = [
        {
            "txid": entry.txid.hex(),
            "height": entry.height,
            "time_ms": entry.time_ms,
            "kind": entry.kind,
            "asset": entry.asset,
            **money(entry.amount_in, "amount_in"),
            **money(entry.amount_out, "amount_out"),
            **money(entry.amount_in - entry.amount_out, "net"),
            "memo": entry.memo,
        }
        for entry in entries
    ]
    if as_json:
        emit_json({"height": height, "entries": rows})
        return
    if not rows:
        console.print(f"no history (synced to height {height})")
        return
    table = Table("height", "kind", "asset", "amount", "memo", "txid")
    table.columns[3].justify = "right"
    for row in rows:
        net = row["net"]
        style = "green" if net > 0 else "red" if net < 0 else ""
        sign = "+" if net > 0 else ""
        table.add_row(
            str(row["height"]),
            row["kind"],
            row["asset"],
            f"[{style}]{sign}{row['net_formatted']}[/]" if style else row["net_formatted"],
            row["memo"],
            row["txid"][:16] + "…",
        )
    console.print(table)


# -- payments ----------------------------------------------------------------------------------


def _confirm_request(req: PaymentRequest, address: str, now_ms: int) -> None:
    """Show the request and ask before paying it.

    Raises:
        CliError: the payer declined.
    """
    grid = details_grid()
    grid.add_row("merchant", bytes(req.merchant).hex())
    grid.add_row("pay to", address)
    grid.add_row("amount", f"{format_amount(int(req.amount))} {req.asset}")
    grid.add_row("memo", req.memo or "-")
    left = max(0, (req.expires_ms - now_ms) // 1000)
    grid.add_row("expires", f"{_when(req.expires_ms)} (in {left} s)")
    console.print(grid)
    if not typer.confirm("pay this request?", default=False):
        raise CliError("payment cancelled; nothing was paid")


@app.command("pay")
@reports_errors
def pay(
    target: Annotated[
        str,
        typer.Argument(
            metavar="TARGET",
            help="A payment request (a tally: URI), or the payee's public key (64 hex digits).",
            show_default=False,
        ),
    ],
    amount: Annotated[
        str | None,
        typer.Option(
            "--amount",
            help="With a public key: major units (12.34), or minor units without a point.",
            show_default=False,
        ),
    ] = None,
    asset: Annotated[
        str | None,
        typer.Option(
            "--asset", help="With a public key: the asset, such as CNY.", show_default=False
        ),
    ] = None,
    memo: Annotated[
        str | None,
        typer.Option(
            "--memo",
            help="A note kept in the history (default: the request's memo).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        str | None,
        typer.Option(
            "--limit",
            help="Refuse to pay more than this in one payment (major units, like --amount).",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Pay a request without asking (--json implies it).")
    ] = False,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pay a merchant's payment request, or an amount to a public key.

    A request's signature, network and expiry are checked first.
    Then its merchant, amount, memo and expiry are shown for you to confirm.
    --yes (or --json) pays without asking.
    """
    per_payment_limit = parse_amount(limit) if limit is not None else None
    with open_wallet(wallet_dir, password_file, node) as wallet:
        asked: PaymentRequest | None = None
        if target.startswith("tally:"):
            if amount is not None or asset is not None:
                raise CliError(
                    "a payment request names its amount and asset; drop --amount/--asset"
                )
            signed = parse_uri(target, wallet.hrp)
            asked = verify_request(signed, chain_id=wallet.chain_id, now_ms=clock())
            payee = asked.payee
            pay_asset = str(asked.asset)
            minor = int(asked.amount)
            note = asked.memo if memo is None else memo
            if not (yes or as_json):
                _confirm_request(asked, wallet.address(payee), clock())
                # The expiry again: the payer may have taken a while to answer.
                verify_request(signed, chain_id=wallet.chain_id, now_ms=clock())
        else:
            if amount is None or asset is None:
                raise CliError("paying a public key needs --amount and --asset")
            payee = parse_public_key(target, "the payee", _PAYEE_HINT)
            pay_asset = asset.upper()
            minor = parse_amount(amount)
            note = memo or ""
        result = wallet.pay(payee, pay_asset, minor, memo=note, per_payment_limit=per_payment_limit)
        view = {
            **_committed(result),
            "asset": pay_asset,
            **money(minor),
            "payee": bytes(payee).hex(),
            "address": wallet.address(payee),
            "memo": note,
            "request": None
            if asked is None
            else {
                "request_id": request_id(asked).hex(),
                "merchant": bytes(asked.merchant).hex(),
                "sequence": asked.sequence,
                "expires_ms": asked.expires_ms,
            },
            "balance": money(wallet.balance(pay_asset)[pay_asset]),
        }
    if as_json:
        emit_json(view)
        return
    console.print(
        f"[green]paid[/green] [bold]{format_amount(minor)} {pay_asset}[/bold] to {view['address']}"
        f" in block {view['height']}\ntxid {view['txid']}\n"
        f"balance {view['balance']['amount_formatted']} {pay_asset}"
    )


@app.command("request")
@reports_errors
def request(
    amount: AmountOption,
    asset: AssetOption,
    memo: MemoOption = "",
    expires: ExpiresOption = "15m",
    png: Annotated[
        Path | None,
        typer.Option(
            "--png",
            metavar="FILE",
            help="Also write the QR code to FILE as a PNG.",
            show_default=False,
        ),
    ] = None,
    no_qr: Annotated[
        bool, typer.Option("--no-qr", help="Print the URI without the QR code.")
    ] = False,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask to be paid: a signed, expiring payment request to a fresh key, as a URI and a QR code.

    The wallet's identity key signs the request.
    The payer's wallet checks the signature and the expiry before paying.
    """
    minor = parse_amount(amount)
    lifetime = parse_duration(expires)
    with open_wallet(wallet_dir, password_file, None) as wallet:
        payee = PublicKey(wallet.new_receive_key().public_key)
        identity = wallet.identity_key
        req = new_request(
            chain_id=wallet.chain_id,
            payee=payee,
            asset=asset.upper(),
            amount=minor,
            memo=memo,
            expires_ms=clock() + lifetime * 1000,
            merchant=PublicKey(identity.public_key),
        )
        uri = to_uri(sign_request(req, identity), wallet.hrp)
        view = _request_view(req, uri, wallet.address(payee))
    if png is not None:
        qr_png(uri, png)
    view["png"] = str(png) if png is not None else None
    if as_json:
        emit_json(view)
        return
    _show_code(uri, show_qr=not no_qr)
    console.print(
        f"request for [bold]{view['amount_formatted']} {view['asset']}[/bold]"
        + (f" ({memo})" if memo else "")
        + f", valid until {view['expires']}"
        + (f"; QR code written to {png}" if png is not None else "")
    )


def _amounts_from(amounts: list[str] | None) -> Iterator[str]:
    """The sale amounts: the options, else stdin's lines until EOF or `q`."""
    if amounts:
        yield from amounts
        return
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            error_console.print("amount (q to stop)> ", end="")
        line = sys.stdin.readline()
        if not line:
            return
        text = line.strip()
        if text.lower() in ("q", "quit", "exit"):
            return
        if text:
            yield text


def _wait_for_payment(
    wallet: Wallet, payee: PublicKey, asset: str, amount: int, timeout: float
) -> list[StoredCoin] | None:
    """Sync until coins of `asset` worth `amount` reach `payee`; None after `timeout` s."""
    lock = KeyLock(key=payee)
    deadline = time.monotonic() + timeout
    while True:
        # No merge: it could spend the coin being looked for.
        wallet.sync(auto_merge=False)
        received = [coin for coin in wallet.coins(asset) if coin.coin.lock == lock]
        if sum(int(coin.coin.amount) for coin in received) >= amount:
            return received
        if time.monotonic() >= deadline:
            return None
        time.sleep(_POLL_S)


def _emit_line(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, separators=(",", ":")))


@app.command("counter")
@reports_errors
def counter(
    asset: AssetOption,
    amounts: Annotated[
        list[str] | None,
        typer.Option(
            "--amount",
            help="A sale's amount (repeatable); without it, one amount per line is read from "
            "stdin until EOF or `q`.",
            show_default=False,
        ),
    ] = None,
    memo: MemoOption = "",
    expires: ExpiresOption = "5m",
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Show each code without waiting for its payment.")
    ] = False,
    wait_timeout: Annotated[
        float,
        typer.Option("--wait-timeout", min=0, help="Seconds to wait for each sale's payment."),
    ] = 300.0,
    png: Annotated[
        Path | None,
        typer.Option(
            "--png",
            metavar="FILE",
            help="Write each sale's QR code to FILE as a PNG (replaced on every sale).",
            show_default=False,
        ),
    ] = None,
    no_qr: Annotated[bool, typer.Option("--no-qr", help="Print URIs without QR codes.")] = False,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a merchant counter: a new dynamic payment code for every sale, then wait for payment.

    Each sale gets a fresh payee key and the next sequence number: the code changes every sale.
    With --json, one JSON object per line: `sale` (with the code), then `paid` or `unpaid`.
    """
    asset = asset.upper()
    if not is_valid_asset_code(asset):
        raise CliError(
            f"{asset!r} is not an asset code (like CNY: a capital letter, then 1 … 11 more)"
        )
    lifetime = parse_duration(expires)
    unpaid = 0
    invalid = 0
    with open_wallet(wallet_dir, password_file, node) as wallet:
        if not no_wait:
            wallet.sync(auto_merge=False)
        session = CounterSession(
            wallet.identity_key,
            wallet.chain_id,
            asset,
            lifetime,
            lambda: PublicKey(wallet.new_receive_key().public_key),
        )
        for text in _amounts_from(amounts):
            try:
                minor = parse_amount(text)
            except ValueError as exc:
                invalid += 1
                error_console.print(f"error: {exc}", style="bold red", markup=False)
                continue
            signed: SignedRequest = session.new_sale(minor, memo, clock())
            req = signed.request
            uri = to_uri(signed, wallet.hrp)
            if png is not None:
                qr_png(uri, png)
            sale = _request_view(req, uri, wallet.address(req.payee))
            if as_json:
                _emit_line({"event": "sale", **sale})
            else:
                console.print(
                    f"sale {req.sequence}: [bold]{format_amount(minor)} {asset}[/bold]"
                    + ("" if no_wait else f", waiting up to {wait_timeout:g} s for payment")
                )
                _show_code(uri, show_qr=not no_qr)
            if no_wait:
                continue
            received = _wait_for_payment(wallet, req.payee, asset, minor, wait_timeout)
            if received is None:
                unpaid += 1
                if as_json:
                    _emit_line({"event": "unpaid", "sequence": req.sequence, "uri": uri})
                else:
                    console.print(
                        f"[red]not paid[/red] within {wait_timeout:g} s: sale {req.sequence}"
                    )
                continue
            total = sum(int(coin.coin.amount) for coin in received)
            txids = sorted({coin.created_txid.hex() for coin in received})
            if as_json:
                _emit_line(
                    {
                        "event": "paid",
                        "sequence": req.sequence,
                        "asset": asset,
                        **money(total),
                        "txids": txids,
                    }
                )
            else:
                console.print(
                    f"[green]paid[/green] sale {req.sequence}: {format_amount(total)} {asset}, "
                    f"txid {', '.join(txids)}"
                )
    problems = []
    if unpaid:
        problems.append(f"{unpaid} sale(s) not paid")
    if invalid:
        problems.append(f"{invalid} amount(s) not understood")
    if problems:
        raise CliError("; ".join(problems))


# -- pre-payment -------------------------------------------------------------------------------


@app.command("preauth")
@reports_errors
def preauth(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="KEY",
            help="The merchant's public key (64 hex digits).",
            show_default=False,
        ),
    ],
    amount: AmountOption,
    asset: AssetOption,
    blocks: Annotated[
        int,
        typer.Option(
            "--blocks",
            min=1,
            help="The merchant may capture until the current height + N; after, it comes back.",
            show_default=False,
        ),
    ],
    memo: MemoOption = "",
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pre-authorise an amount to a merchant: coins into an escrow until an expiry height.

    The merchant captures any part of it until the expiry; the rest comes back at once.
    After the expiry this wallet takes it back when it syncs, or with `reclaim`.
    """
    payee = parse_public_key(to, "--to", _PAYEE_HINT)
    minor = parse_amount(amount)
    asset = asset.upper()
    with open_wallet(wallet_dir, password_file, node) as wallet:
        expiry = wallet.sync() + blocks
        result = wallet.preauth(payee, asset, minor, expiry, memo=memo)
    view = {
        **_committed(result),
        "escrow_id": result["escrow_coin_id"],
        "expiry": result["expiry"],
        "asset": asset,
        **money(minor),
        "payee": bytes(payee).hex(),
    }
    if as_json:
        emit_json(view)
        return
    console.print(
        f"[green]pre-authorised[/green] [bold]{format_amount(minor)} {asset}[/bold] until "
        f"height {view['expiry']}\nescrow {view['escrow_id']}\ntxid {view['txid']}"
    )


@app.command("capture")
@reports_errors
def capture(
    escrow_id: Annotated[
        str,
        typer.Argument(
            metavar="ESCROW_ID", help="The escrow's coin id (see `escrows`).", show_default=False
        ),
    ],
    amount: AmountOption,
    memo: MemoOption = "",
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Capture up to the pre-authorised amount of an escrow paid to you; the rest goes back."""
    cid = _coin_id(escrow_id)
    minor = parse_amount(amount)
    with open_wallet(wallet_dir, password_file, node) as wallet:
        wallet.sync(auto_merge=False)
        stored = wallet.store.coin(bytes.fromhex(cid))
        if stored is not None and stored.role == ROLE_ESCROW_PAYEE and minor > stored.coin.amount:
            # The node's own rule, checked before anything is signed.
            raise EscrowOverCaptureError(
                f"cannot capture {format_amount(minor)}: escrow {cid} holds "
                f"{format_amount(int(stored.coin.amount))} {stored.coin.asset}",
                escrow_id=cid,
                amount=minor,
                escrowed=int(stored.coin.amount),
            )
        result = wallet.capture(cid, minor, memo=memo)
        asset = str(stored.coin.asset) if stored is not None else ""
    view = {
        **_committed(result),
        "escrow_id": cid,
        "asset": asset,
        **money(result["captured"], "captured"),
        **money(result["refunded"], "refunded"),
    }
    if as_json:
        emit_json(view)
        return
    console.print(
        f"[green]captured[/green] [bold]{view['captured_formatted']} {asset}[/bold], "
        f"{view['refunded_formatted']} back to the payer\ntxid {view['txid']}"
    )


@app.command("reclaim")
@reports_errors
def reclaim(
    escrow_id: Annotated[
        str | None,
        typer.Argument(
            metavar="ESCROW_ID",
            help="The escrow to take back (default: every expired escrow this wallet paid).",
            show_default=False,
        ),
    ] = None,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take back pre-payments this wallet made whose expiry has passed."""
    with open_wallet(wallet_dir, password_file, node) as wallet:
        if escrow_id is not None:
            results = [wallet.reclaim(_coin_id(escrow_id))]
        else:
            wallet.sync(auto_reclaim=False, auto_merge=False)
            results = wallet.reclaim_expired()
    rows = [
        {
            **_committed(result),
            "escrow_id": result["escrow_coin_id"],
            **money(result["reclaimed"], "reclaimed"),
        }
        for result in results
    ]
    if as_json:
        emit_json({"reclaimed": rows})
        return
    if not rows:
        console.print("no expired escrow to reclaim")
    for row in rows:
        console.print(
            f"[green]reclaimed[/green] {row['reclaimed_formatted']} from escrow {row['escrow_id']}"
            f"\ntxid {row['txid']}"
        )


@app.command("escrows")
@reports_errors
def escrows(
    no_sync: NoSyncOption = False,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List open escrows: pre-payments you made (payer) and received (payee), with expiries."""
    with open_wallet(wallet_dir, password_file, node, sync=not no_sync) as wallet:
        height = wallet.height
        rows = [_escrow_view(stored, height) for stored in wallet.escrows()]
    if as_json:
        emit_json({"height": height, "escrows": rows})
        return
    if not rows:
        console.print(f"no open escrows (synced to height {height})")
        return
    table = Table(
        "escrow", "role", "amount", "asset", "expiry", title=f"escrows at height {height}"
    )
    table.columns[0].overflow = "fold"  # the full id: `capture` and `reclaim` need it
    table.columns[2].justify = "right"
    for row in rows:
        expiry = f"{row['expiry']}" + (" (expired)" if row["expired"] else "")
        table.add_row(row["escrow_id"], row["role"], row["amount_formatted"], row["asset"], expiry)
    console.print(table)
