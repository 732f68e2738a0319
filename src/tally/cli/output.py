"""How commands talk to people and scripts: rich output, `--json`, and one-line errors.

Every command is wrapped by `reports_errors`: a user error (a bad argument, a missing file,
a refusal by the node or by a service, a service that cannot be reached) prints one red line
on stderr and exits with status 1, never a traceback. Anything else is a bug and keeps its
traceback.

`--json` documents give every amount twice: `X` in minor units as an integer, and
`X_formatted` in major units (`"12.50"`); `money` and `money_fields` write them so.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tally.cli.amounts import AmountError, format_amount
from tally.cli.network import NetworkError
from tally.cli.selection import SelectionError
from tally.client.builders import BuilderError
from tally.client.errors import NodeError, NodeRejection
from tally.client.wire import WireError
from tally.crypto.schnorr import InvalidKeyError
from tally.model.rejection import Rejection
from tally.node.config import ConfigError
from tally.node.keyfile import KeyFileError
from tally.services.common.client import ServiceCallError
from tally.services.issuer.config import IssuerConfigError
from tally.services.operator.config import OperatorConfigError

__all__ = [
    "CliError",
    "console",
    "error_console",
    "fail",
    "emit_json",
    "reports_errors",
    "details_grid",
    "money",
    "money_fields",
]

console = Console(highlight=False)
"""Standard output, for results."""
error_console = Console(stderr=True, highlight=False)
"""Standard error, for errors and notes."""

P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    """A user error found by the command line itself; its message is the whole story."""


_USER_ERRORS: tuple[type[Exception], ...] = (
    CliError,
    NodeError,
    NetworkError,
    AmountError,
    SelectionError,
    BuilderError,
    WireError,
    KeyFileError,
    ConfigError,
    IssuerConfigError,
    OperatorConfigError,
    InvalidKeyError,
    Rejection,
    OSError,  # a file that cannot be read or written: the message names it
)


def fail(message: str) -> NoReturn:
    """Print `message` as one red line on stderr and exit with status 1."""
    error_console.print(Text(f"error: {message}", style="bold red"), soft_wrap=True)
    raise typer.Exit(1)


def emit_json(document: Any) -> None:  # Any: any JSON-serialisable document
    """Print `document` as JSON on stdout, for scripts."""
    typer.echo(json.dumps(document, indent=2, sort_keys=False))


def _service_error_line(exc: ServiceCallError) -> str:
    """One line telling what a call to a service (issuer, operator) came to.

    A refusal names the HTTP status and the service's code; status 0 means the service was
    not reached, and the client's message names its URL.
    """
    if exc.status == 0:
        return f"the service is not reachable: {exc.message} (is it running?)"
    return f"the service refused (HTTP {exc.status}): {exc.code}: {exc.message}"


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn user errors raised by `command` into a red line and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except NodeRejection as exc:
            fail(f"the node refused: {exc.code}: {exc.message}")
        except ServiceCallError as exc:
            fail(_service_error_line(exc))
        except Rejection as exc:
            fail(f"{exc.code}: {exc.message}")
        except _USER_ERRORS as exc:
            fail(str(exc))

    return wrapper


def details_grid() -> Table:
    """A borderless two-column grid, bold labels beside values, for one thing's details."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    return grid


def money(amount: int | str, name: str = "amount") -> dict[str, Any]:  # Any: JSON
    """`{name: minor units, name_formatted: "12.34"}` for a `--json` document.

    The amount may be an integer or a decimal string of minor units (services send either).
    """
    minor = int(str(amount))
    return {name: minor, f"{name}_formatted": format_amount(minor)}


def money_fields(document: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:  # Any: JSON
    """`document` with each amount in `names` as an integer beside its `_formatted` twin.

    Amounts may come as integers or decimal strings of minor units; a missing or null amount
    stays as it is.
    """
    wanted = set(names)
    result: dict[str, Any] = {}
    for name, value in document.items():
        if name in wanted and value is not None:
            result.update(money(value, name))
        else:
            result[name] = value
    return result
