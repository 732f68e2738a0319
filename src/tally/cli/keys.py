"""`tally key`: make and inspect key files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tally.cli.context import JsonOption, NetworkOption, key_address, network_dir
from tally.cli.network import DEFAULT_HRP, NetworkError, load_network
from tally.cli.output import CliError, console, emit_json, reports_errors
from tally.crypto.schnorr import PrivateKey
from tally.node.keyfile import new_key, read_key, write_key

__all__ = ["app"]

app = typer.Typer(
    name="key",
    help="Make and inspect key files (JSON, readable by their owner alone).",
    no_args_is_help=True,
)

HrpOption = Annotated[
    str | None,
    typer.Option(
        "--hrp",
        help="Address prefix (default: the network's, else tly).",
        show_default=False,
    ),
]


def _hrp(option: str | None, network: Path | None) -> str:
    if option is not None:
        return option
    try:
        return load_network(network_dir(network)).hrp
    except NetworkError:
        return DEFAULT_HRP


def _report(path: Path, key: PrivateKey, label: str, hrp: str, as_json: bool) -> None:
    view = {
        "file": str(path),
        "label": label,
        "public_key": key.public_key.hex(),
        "address": key_address(key, hrp),
    }
    if as_json:
        emit_json(view)
        return
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("file", str(path))
    if label:
        table.add_row("label", label)
    table.add_row("public key", view["public_key"])
    table.add_row("address", view["address"])
    console.print(table)


@app.command("new")
@reports_errors
def new(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="Where to write the key; must not exist.")
    ],
    label: Annotated[str, typer.Option(help="A note stored with the key.")] = "",
    hrp: HrpOption = None,
    network: NetworkOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a new key, write it to FILE (mode 0600), and print its public key and address."""
    if file.exists():
        raise CliError(f"{file} exists; a key file is never overwritten")
    key = new_key()
    write_key(file, key, label=label)
    _report(file, key, label, _hrp(hrp, network), as_json)


@app.command("show")
@reports_errors
def show(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A key file.")],
    hrp: HrpOption = None,
    network: NetworkOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a key file's public key and address (never its secret)."""
    key = read_key(file)
    label = json.loads(file.read_text()).get("label", "")
    _report(file, key, str(label), _hrp(hrp, network), as_json)
