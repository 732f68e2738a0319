"""The explorer: web pages for blocks, transactions, coins, addresses, supply and health.

Served by every node under `/explorer` (`mount_explorer`, called by the node's process
runner) and stand-alone against any node's HTTP API (`create_explorer_app`, behind
`tally explorer --node URL`). Pages are rendered on the server from Jinja2 templates;
htmx (vendored in `static/`) swaps in fresh fragments when the explorer's event stream
announces a committed block. Nothing is fetched from the internet.
"""

from tally.explorer.app import PREFIX, create_explorer_app, mount_explorer, mount_source
from tally.explorer.source import LedgerSource, LocalSource

__all__ = [
    "mount_explorer",
    "create_explorer_app",
    "mount_source",
    "PREFIX",
    "LedgerSource",
    "LocalSource",
]
