"""`tally node`: run a node of a network directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tally.cli.context import NetworkOption, network_dir
from tally.cli.network import NETWORK_FILE, NODE_NAME
from tally.cli.output import CliError, reports_errors

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
            metavar="[DIR]",
            help="A network directory (runs its node0) or a node directory with node.toml "
            "[default: --network].",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "info",
    network: NetworkOption = None,
) -> None:
    """Run a node in the foreground until Ctrl-C or SIGTERM."""
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise CliError(f"--log-level is debug, info, warning or error, not {log_level!r}")
    config = node_config_path(directory if directory is not None else network_dir(network))
    # Imported here: the node process pulls in the store, uvicorn and the orderer, which
    # no other command needs.
    from tally.node.core import GenesisMismatchError
    from tally.node.process import run_node

    try:
        code = run_node(config, log_level.lower())
    except GenesisMismatchError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)
