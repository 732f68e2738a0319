"""How commands talk to people and scripts: rich output, `--json`, and one-line errors.

Every command is wrapped by `reports_errors`: a user error (a bad argument, a missing file,
a refusal by the node) prints one red line on stderr and exits with status 1, never a
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from tally.cli.amounts import AmountError
from tally.cli.network import NetworkError
from tally.cli.selection import SelectionError
from tally.client.builders import BuilderError
from tally.client.errors import NodeError, NodeRejection
from tally.client.wire import WireError
from tally.crypto.schnorr import InvalidKeyError
from tally.model.rejection import Rejection
from tally.node.config import ConfigError
from tally.node.keyfile import KeyFileError

__all__ = ["CliError", "console", "error_console", "fail", "emit_json", "reports_errors"]

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


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn user errors raised by `command` into a red line and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except NodeRejection as exc:
            fail(f"the node refused: {exc.code}: {exc.message}")
        except Rejection as exc:
            fail(f"{exc.code}: {exc.message}")
        except _USER_ERRORS as exc:
            fail(str(exc))

    return wrapper
