"""`tally tx`: send a transaction signed elsewhere, and look transactions up.

Also the one place that reports what became of a submitted transaction, for every command
that sends one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tally.cli.amounts import format_amount
from tally.cli.context import ApiOption, JsonOption, NetworkOption, connect, open_network
from tally.cli.output import CliError, console, emit_json, fail, reports_errors
from tally.model.encoding import decode
from tally.model.tx import SignedTx

__all__ = ["app", "report_result", "read_tx_file", "WaitOption"]

app = typer.Typer(
    name="tx", help="Send signed transactions and look them up.", no_args_is_help=True
)

WaitOption = Annotated[
    bool,
    typer.Option("--wait/--no-wait", help="Wait until the transaction's block is committed."),
]


def report_result(result: dict[str, Any], as_json: bool, what: str = "transaction") -> None:
    """Print what became of a submitted transaction; exit 1 if its block rejected it."""
    status = result.get("status")
    txid = result.get("txid", "?")
    if as_json:
        emit_json(result)
    elif status == "committed":
        console.print(
            f"[green]{what} committed[/green] in block {result.get('height')} "
            f"(index {result.get('index')})\ntxid {txid}"
        )
    elif status == "pending":
        console.print(f"{what} accepted by the node, [yellow]pending[/yellow]\ntxid {txid}")
    if status == "rejected":
        receipt = result.get("receipt") or {}
        fail(
            f"{what} {txid} was rejected in block {result.get('height')}: "
            f"{receipt.get('code', 'unknown')}"
        )


def read_tx_file(path: Path) -> bytes:
    """The canonical bytes in `path`: raw bytes as `--sign-only` writes them, or hex text.

    Raises:
        CliError: the file cannot be read.
        Rejection: it is not a canonical signed transaction.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = raw.decode("ascii").strip()
        raw = bytes.fromhex(text) if text else raw
    except (UnicodeDecodeError, ValueError):
        pass  # not hex text: the raw canonical bytes
    decode(raw, SignedTx)
    return raw


@app.command("submit")
@reports_errors
def submit(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="A signed transaction (from --sign-only).")
    ],
    wait: WaitOption = True,
    network: NetworkOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a transaction signed elsewhere (such as by `tally transfer --sign-only`)."""
    raw = read_tx_file(file)
    net = open_network(network)
    with connect(net, api) as client:
        report_result(client.submit(raw, wait=wait), as_json)


def _print_tx(view: dict[str, Any]) -> None:
    tx = view.get("tx") or {}
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("txid", str(view.get("txid")))
    grid.add_row("status", str(view.get("status")))
    if "height" in view:
        grid.add_row("block", f"{view['height']} (index {view.get('index')})")
    receipt = view.get("receipt")
    if receipt:
        grid.add_row("receipt", str(receipt.get("code")))
    for name in ("kind", "asset", "issuer", "reserve_ref", "nonce", "account", "valid_until"):
        if name in tx:
            grid.add_row(name.replace("_", " "), escape(str(tx[name])))
    for index, coin_id in enumerate(tx.get("inputs", [])):
        grid.add_row(f"input {index}", coin_id)
    console.print(grid)
    outputs = tx.get("outputs", [])
    if outputs:
        table = Table("#", "amount", "asset", title="outputs")
        table.add_column("to", overflow="fold")
        table.add_column("coin id", overflow="fold")
        for index, coin in enumerate(outputs):
            table.add_row(
                str(index),
                format_amount(coin["amount"]),
                coin["asset"],
                coin["lock"]["address"],
                coin["coin_id"],
            )
        console.print(table)


@app.command("show")
@reports_errors
def show(
    txid: Annotated[
        str, typer.Argument(metavar="TXID", help="The transaction id (64 hex digits).")
    ],
    network: NetworkOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a transaction: pending, or committed with its block and receipt."""
    net = open_network(network)
    with connect(net, api) as client:
        try:
            view = client.tx(txid)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    if as_json:
        emit_json(view)
    else:
        _print_tx(view)
