"""Read-only commands: `tally balance`, `tally supply`, `tally status`, `tally block show`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tally.cli.amounts import format_amount
from tally.cli.context import (
    ApiOption,
    JsonOption,
    NetworkOption,
    connect,
    open_network,
    resolve_address,
)
from tally.cli.output import CliError, console, emit_json, reports_errors

__all__ = ["balance", "supply", "status", "block_app"]

block_app = typer.Typer(name="block", help="Look at committed blocks.", no_args_is_help=True)


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    return grid


@reports_errors
def balance(
    who: Annotated[
        str,
        typer.Argument(
            metavar="ADDRESS_OR_KEYFILE",
            help="An address, a key file, or a public key (64 hex digits).",
        ),
    ],
    coins: Annotated[bool, typer.Option("--coins", help="List the coins too.")] = False,
    network: NetworkOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the balance per asset (and with --coins, the coins) of an address."""
    net = open_network(network)
    address = resolve_address(who, net)
    with connect(net, api) as client:
        listing = client.address_coins(address, limit=10_000)
    if as_json:
        emit_json(listing)
        return
    console.print(f"[bold]{address}[/bold]")
    totals: dict[str, Any] = listing.get("balance", {})
    if not totals:
        console.print("no coins")
        return
    table = Table("asset", "balance", "coins")
    counts: dict[str, int] = {}
    for coin in listing.get("coins", []):
        counts[coin["asset"]] = counts.get(coin["asset"], 0) + 1
    for asset, total in totals.items():
        table.add_row(asset, format_amount(total), str(counts.get(asset, 0)))
    console.print(table)
    if coins:
        listed = Table("asset", "amount")
        listed.add_column("coin id", overflow="fold")
        for coin in listing.get("coins", []):
            listed.add_row(coin["asset"], format_amount(coin["amount"]), coin["coin_id"])
        console.print(listed)


@reports_errors
def supply(
    network: NetworkOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show issued, redeemed and outstanding amounts per asset."""
    net = open_network(network)
    with connect(net, api) as client:
        view = client.supply()
    if as_json:
        emit_json(view)
        return
    assets: dict[str, Any] = view.get("assets", {})
    if not assets:
        console.print("nothing issued yet")
        return
    table = Table("asset", "issued", "redeemed", "outstanding")
    for asset, row in assets.items():
        table.add_row(
            asset,
            format_amount(row["issued"]),
            format_amount(row["redeemed"]),
            format_amount(row["outstanding"]),
        )
    console.print(table)


@reports_errors
def status(
    network: NetworkOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the node's chain id, height, tip, state commitment and mempool size."""
    net = open_network(network)
    with connect(net, api) as client:
        view = client.status()
    if as_json:
        emit_json(view)
        return
    grid = _grid()
    grid.add_row("api", api or net.api)
    for name, value in view.items():
        if name == "healthy":
            value = "[green]yes[/green]" if value else "[red]no: stopped by a fatal error[/red]"
        else:
            value = escape(str(value))
        grid.add_row(name.replace("_", " "), value)
    console.print(grid)


@block_app.command("show")
@reports_errors
def block_show(
    height: Annotated[
        str, typer.Argument(metavar="HEIGHT|latest", help="A block height, or latest.")
    ] = "latest",
    network: NetworkOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a block: header, commit certificate, and each transaction with its receipt."""
    if height != "latest" and not height.isdigit():
        raise CliError(f"a block is a height (1, 2, …) or 'latest', got {height!r}")
    net = open_network(network)
    with connect(net, api) as client:
        view = client.block(height)
    if as_json:
        emit_json(view)
        return
    header = view["header"]
    grid = _grid()
    for name in ("height", "hash", "prev_hash", "time_ms", "tx_count", "tx_root", "state_root"):
        grid.add_row(name.replace("_", " "), str(header.get(name)))
    certificate = view.get("certificate")
    grid.add_row(
        "certificate",
        f"{len(certificate['signatures'])} signature(s), view {certificate['view']}"
        if certificate
        else "[red]none[/red]",
    )
    console.print(grid)
    if view.get("txs"):
        table = Table("#", "kind", "receipt")
        table.add_column("txid", overflow="fold")
        for index, tx in enumerate(view["txs"]):
            code = tx["receipt"]["code"]
            style = "green" if tx["receipt"]["accepted"] else "red"
            table.add_row(str(index), tx.get("kind", "?"), f"[{style}]{code}[/]", tx["txid"])
        console.print(table)
