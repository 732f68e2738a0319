"""The `tally` command: a development network, a node, keys, payments and queries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tally.cli import (
    banking,
    bench,
    demo,
    explorer,
    issuer,
    keys,
    node,
    offline,
    operator,
    payments,
    queries,
    transactions,
    wallet,
)
from tally.cli.context import JsonOption
from tally.cli.network import (
    DEFAULT_ASSETS,
    DEFAULT_CHAIN_ID,
    DEFAULT_PORT,
    MIN_CONSORTIUM,
    NETWORK_FILE,
    NODE_NAME,
    P2P_PORT_OFFSET,
    create_network,
)
from tally.cli.output import console, emit_json, reports_errors

__all__ = ["app", "main"]

app = typer.Typer(
    name="tally",
    help="Tally: a two-tier digital currency. `tally demo` runs a whole local network; "
    "`tally init` and `tally node start` run a bare node.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback's local variables may hold secret keys; never print them.
    pretty_exceptions_show_locals=False,
)


@app.command("init")
@reports_errors
def init(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to create the network.")],
    chain_id: Annotated[str, typer.Option("--chain-id", help="The network's chain id.")] = (
        DEFAULT_CHAIN_ID
    ),
    port: Annotated[
        int,
        typer.Option("--port", help="The node API's port on 127.0.0.1; node I serves on PORT+I."),
    ] = DEFAULT_PORT,
    assets: Annotated[
        list[str] | None,
        typer.Option(
            "--asset",
            help="Register this asset with its own issuer key; repeatable (default: CNY and USD).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a network already in DIR (its keys and data are lost)."
        ),
    ] = False,
    nodes: Annotated[
        int,
        typer.Option(
            "--nodes",
            help=f"How many nodes: 1 (a solo development node) or {MIN_CONSORTIUM} or more "
            f"(a PBFT consortium; n = 3f+1 nodes tolerate f faults, so {MIN_CONSORTIUM} "
            "tolerate one).",
        ),
    ] = 1,
    p2p_port: Annotated[
        int | None,
        typer.Option(
            "--p2p-port",
            help="Consortium: node0's peer port; node I listens on P2P_PORT+I "
            f"(default: PORT+{P2P_PORT_OFFSET}).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a development network: keys, genesis and each node's configuration.

    With --nodes 4 or more it is a PBFT consortium: a root certificate authority whose
    certificate genesis carries, and per node a consensus key, a TLS certificate issued under
    the root and its key. The root's private key, keys/root.key, admits members: keep it
    offline (move it off the machine once the network is made).
    """
    codes = tuple(asset.upper() for asset in assets) if assets else DEFAULT_ASSETS
    network = create_network(
        directory,
        chain_id=chain_id,
        port=port,
        assets=codes,
        force=force,
        nodes=nodes,
        p2p_port=p2p_port,
    )
    view = {
        "directory": str(network.root),
        "chain_id": network.chain_id,
        "hrp": network.hrp,
        "api": network.api,
        "apis": list(network.apis),
        "genesis": str(network.genesis_file),
        "admin_key": str(network.admin_key),
        "node_keys": {name: str(path) for name, path in network.node_keys.items()},
        "issuer_keys": {asset: str(path) for asset, path in network.issuer_keys.items()},
    }
    root_key = network.root / "keys" / "root.key"
    if nodes > 1:
        view["root_certificate"] = str(network.root / "keys" / "root.crt")
        view["root_key"] = str(root_key)
    if as_json:
        emit_json(view)
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("network", f"{network.root / NETWORK_FILE}")
    grid.add_row("chain id", network.chain_id)
    grid.add_row("api", ", ".join(network.apis))
    grid.add_row("genesis", str(network.genesis_file))
    grid.add_row("admin key", str(network.admin_key))
    for asset, path in network.issuer_keys.items():
        grid.add_row(f"{asset} issuer key", str(path))
    for name, path in network.node_keys.items():
        grid.add_row(f"{name} key", str(path))
    if nodes > 1:
        grid.add_row("root certificate", str(network.root / "keys" / "root.crt"))
        grid.add_row("root key", f"{root_key}  (keep it offline: it admits members)")
    console.print(grid)
    if nodes == 1:
        console.print(
            f"start the node with: [bold]tally node start {directory}[/bold]  "
            f"(config {directory / NODE_NAME / 'node.toml'})"
        )
    else:
        console.print(
            f"start each node with: [bold]tally node start {directory / 'nodeI'}[/bold]  "
            f"for I in 0 … {nodes - 1} (config {directory / 'nodeI' / 'node.toml'})"
        )


app.command("issue")(payments.issue)
app.command("transfer")(payments.transfer)
app.command("balance")(queries.balance)
app.command("supply")(queries.supply)
app.command("status")(queries.status)
app.command("bench")(bench.bench)
app.command("explorer")(explorer.explorer)
app.command("demo")(demo.demo)
app.add_typer(queries.block_app)
app.add_typer(transactions.app)
app.add_typer(keys.app)
app.add_typer(node.app)
app.add_typer(wallet.app)
wallet.app.add_typer(offline.app)
banking.register_commands(wallet.app)
app.add_typer(issuer.app)
app.add_typer(operator.app)


def main() -> None:
    """Run the `tally` command (the console script's entry point)."""
    app()


if __name__ == "__main__":
    main()
