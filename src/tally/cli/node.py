"""`tally node`: run a node of a network directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tally.cli.context import JsonOption, NetworkOption, network_dir
from tally.cli.network import NETWORK_FILE, NODE_NAME
from tally.cli.output import CliError, console, emit_json, reports_errors

__all__ = ["app", "node_config_path"]

app = typer.Typer(name="node", help="Run a node.", no_args_is_help=True)


def node_config_path(directory: Path) -> Path:
    """The `node.toml` a directory stands for: its own, or that of its network's node0.

    Raises:
        CliError: the directory is neither a node nor a network directory.
    """
    if (directory / "node.toml").is_file():
        return directory / "node.toml"
    if (directory / NETWORK_FILE).is_file() and (directory / NODE_NAME / "node.toml").is_file():
        return directory / NODE_NAME / "node.toml"
    raise CliError(
        f"{directory} is neither a node directory (with node.toml) nor a network directory "
        f"(with {NETWORK_FILE} and {NODE_NAME}/node.toml); run `tally init {directory}` first"
    )


@app.command("start")
@reports_errors
def start(
    directory: Annotated[
        Path | None,
        typer.Argument(
            metavar="DIR",
            help="A network directory (runs its node0) or a node directory with node.toml "
            "(default: --network).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "info",
    network: NetworkOption = None,
) -> None:
    """Run a node in the foreground until Ctrl-C or SIGTERM; its explorer is at /explorer/."""
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise CliError(f"--log-level is debug, info, warning or error, not {log_level!r}")
    config = node_config_path(directory if directory is not None else network_dir(network))
    # Imported here: the node process pulls in the store, uvicorn and the orderer, which
    # no other command needs.
    from tally.explorer import mount_explorer
    from tally.node.config import ConfigError
    from tally.node.core import GenesisMismatchError
    from tally.node.keyfile import KeyFileError
    from tally.node.process import run_node

    try:
        code = run_node(config, log_level.lower(), configure=mount_explorer)
    except (GenesisMismatchError, ConfigError, KeyFileError) as exc:
        raise CliError(str(exc)) from None
    raise typer.Exit(code)


@app.command("check")
@reports_errors
def check(
    directory: Annotated[
        Path | None,
        typer.Argument(
            metavar="DIR",
            help="A network or node directory whose node is stopped (default: --network).",
            show_default=False,
        ),
    ] = None,
    network: NetworkOption = None,
    as_json: JsonOption = False,
) -> None:
    """Audit a stopped node's store: recompute the state commitment and check conservation."""
    from tally.node.audit import audit_store
    from tally.node.config import load_config
    from tally.store.ledger import LedgerStore
    from tally.store.lmdb_store import LmdbStore

    config = load_config(
        node_config_path(directory if directory is not None else network_dir(network))
    )
    if not config.data_dir.is_dir():
        raise CliError(f"{config.data_dir} holds no data yet: start the node once first")
    store = LedgerStore.open(LmdbStore(config.data_dir))
    try:
        report = audit_store(store)
    finally:
        store.close()
    view = {
        "ok": report.ok,
        "height": report.height,
        "stored_root": report.stored_root,
        "recomputed_root": report.recomputed_root,
        "header_root": report.header_root,
        "conserved": report.conserved,
        "unspent": {asset: str(total) for asset, total in report.unspent.items()},
        "outstanding": {asset: str(total) for asset, total in report.outstanding.items()},
    }
    if as_json:
        emit_json(view)
    else:
        verdict = "[green]ok[/green]" if report.ok else "[red]FAILED[/red]"
        console.print(f"audit of {config.data_dir} at height {report.height}: {verdict}")
        console.print(f"  state root stored    {report.stored_root}")
        console.print(f"  state root recomputed {report.recomputed_root}")
        for asset in sorted(set(report.unspent) | set(report.outstanding)):
            console.print(
                f"  {asset}: unspent {report.unspent.get(asset, 0)}, "
                f"outstanding {report.outstanding.get(asset, 0)}"
            )
    if not report.ok:
        raise typer.Exit(1)
