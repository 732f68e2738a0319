"""`tally explorer`: serve the explorer against any node through its HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer

from tally.cli.context import NetworkOption, open_network
from tally.cli.output import CliError, console, reports_errors

__all__ = ["explorer"]


@reports_errors
def explorer(
    node: Annotated[
        str | None,
        typer.Option(
            "--node", help="The node's API URL (default: the network's).", show_default=False
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to serve the explorer on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="Port to serve the explorer on.")] = 7550,
    network: NetworkOption = None,
) -> None:
    """Serve the ledger explorer for a node that runs elsewhere, until Ctrl-C.

    Every node already serves its own explorer at /explorer/; this command is for looking at
    a node from another machine or process, reading only its public HTTP API.
    """
    import uvicorn

    from tally.explorer import create_explorer_app

    hrp: str | None = None
    url = node
    if url is None:
        net = open_network(network)
        url, hrp = net.api, net.hrp
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--node must be an http:// or https:// URL, not {url!r}")
    app = create_explorer_app(url, hrp=hrp)
    console.print(f"explorer of {url}: http://{host}:{port}/explorer/")
    uvicorn.run(app, host=host, port=port, log_level="warning")
