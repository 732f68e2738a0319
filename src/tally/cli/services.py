"""What the service commands share: where a service is, its admin token, idempotency keys.

`tally issuer` and `tally operator` administer a service at `--url` (default: the URL in
`--dir`'s configuration file, else an environment variable, else the service's port on
127.0.0.1) with the admin token read from `--admin-token-file`, else `--dir`'s `admin.token`,
else another environment variable. `tally wallet load|unload|...` reach the operator the same
way, without a directory. A `Service` names these for one kind of service and resolves them;
the options' help texts come from it, so every command describes them alike.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Generic, Protocol, TypeVar

import typer

from tally.cli.output import CliError, console, details_grid

__all__ = [
    "ADMIN_TOKEN_FILE",
    "AmountOption",
    "Service",
    "ServiceConfig",
    "PortOption",
    "amount_option",
    "idempotency_option",
    "new_idempotency_key",
    "read_token_file",
    "write_token_file",
]

ADMIN_TOKEN_FILE: Final = "admin.token"  # noqa: S105 - a file name, not a secret
"""Where `init` keeps a service's admin token, inside the service directory (mode 0600)."""


class ServiceConfig(Protocol):
    """What the command line reads from a service's configuration."""

    @property
    def name(self) -> str:
        """The service's name, for logs and people."""
        ...

    @property
    def asset(self) -> str:
        """The asset it serves (`CNY`)."""
        ...

    @property
    def node_url(self) -> str:
        """The ledger node's API."""
        ...

    @property
    def api_host(self) -> str:
        """The address the API listens on."""
        ...

    @property
    def api_port(self) -> int:
        """The API's port."""
        ...


ConfigT = TypeVar("ConfigT", bound=ServiceConfig)


@dataclass(frozen=True)
class Service(Generic[ConfigT]):
    """One kind of service as the command line finds it: URL, directory and admin token."""

    name: str
    """`issuer` or `operator`: the command group, and the word in messages and help."""
    config_file: str
    """The configuration file inside a service directory (`issuer.toml`)."""
    default_port: int
    """The API's port on 127.0.0.1 unless told otherwise."""
    load_config: Callable[[Path], ConfigT]
    """Reads a service directory's configuration."""
    config_error: type[Exception]
    """What `load_config` raises for a missing or wrong configuration."""

    @property
    def url_env(self) -> str:
        """The environment variable naming the service's API (`TALLY_ISSUER_URL`)."""
        return f"TALLY_{self.name.upper()}_URL"

    @property
    def token_env(self) -> str:
        """The environment variable holding its admin token (`TALLY_ISSUER_ADMIN_TOKEN`)."""
        return f"TALLY_{self.name.upper()}_ADMIN_TOKEN"

    @property
    def default_url(self) -> str:
        """The API's URL when neither an option nor the environment names one."""
        return f"http://127.0.0.1:{self.default_port}"

    def existing_config(self, directory: Path) -> ConfigT:
        """The configuration of a directory that `tally NAME init` made, for `start`.

        Raises:
            CliError: the directory holds no readable configuration; the message says how
                to make one.
        """
        try:
            return self.load_config(directory)
        except self.config_error as exc:
            raise CliError(f"{exc} (make the directory with `tally {self.name} init`)") from None

    def url(self, option: str | None, directory: Path | None = None) -> str:
        """The API's URL: the option, else `directory`'s, else the environment's, else the default.

        Raises:
            Exception: `config_error`, when `directory` holds no readable configuration.
        """
        if option:
            return option.rstrip("/")
        if directory is not None:
            config = self.load_config(directory)
            return _local_url(config.api_host, config.api_port)
        return (os.environ.get(self.url_env) or self.default_url).rstrip("/")

    def admin_token(self, file: Path | None, directory: Path | None) -> str:
        """The admin token: `file`'s, else `directory`'s `admin.token`, else the environment's.

        Raises:
            CliError: none of them gives one, or a file cannot be read or is empty.
        """
        if file is not None:
            return read_token_file(file, "admin token")
        if directory is not None:
            return read_token_file(directory / ADMIN_TOKEN_FILE, "admin token")
        token = os.environ.get(self.token_env, "").strip()
        if token:
            return token
        raise CliError(
            f"this is an admin command: give the {self.name}'s admin token with "
            f"--admin-token-file FILE, --dir {self.name.upper()}_DIR (its {ADMIN_TOKEN_FILE}) "
            f"or ${self.token_env}"
        )

    def describe_setup(
        self, directory: Path, token: str, keys: Mapping[str, str]
    ) -> tuple[ConfigT, dict[str, Any]]:  # Any: JSON
        """After `init` made `directory`: keep its admin token there and describe it.

        Args:
            directory: The new service directory.
            token: The admin token (the service keeps only its hash): written to
                `DIR/admin.token`, mode 0600, and shown once.
            keys: The service's public keys by name (hex), for the `--json` document.

        Returns:
            The directory's configuration, and `init`'s `--json` document.
        """
        config = self.load_config(directory)
        token_file = directory / ADMIN_TOKEN_FILE
        write_token_file(token_file, token)
        return config, {
            "directory": str(directory),
            "config": str(directory / self.config_file),
            "name": config.name,
            "asset": config.asset,
            **keys,
            "node_url": config.node_url,
            "url": _local_url(config.api_host, config.api_port),
            "admin_token": token,
            "admin_token_file": str(token_file),
        }

    def print_setup(
        self, view: Mapping[str, Any], title: str, rows: Iterable[tuple[str, str]], next_step: str
    ) -> None:  # Any: JSON
        """Show `init`'s document (`describe_setup`'s) for people, and what to do next.

        Args:
            view: The document.
            title: What the service is, beside its kind (`bank-a (CNY)`).
            rows: The labelled values between the directory and the API.
            next_step: The sentence after the note that the token is shown once.
        """
        grid = details_grid()
        grid.add_row(self.name, title)
        grid.add_row("directory", view["directory"])
        for label, value in rows:
            grid.add_row(label, value)
        grid.add_row("api", view["url"])
        grid.add_row("admin token", view["admin_token"])
        grid.add_row("token file", view["admin_token_file"])
        console.print(grid)
        console.print(
            f"the admin token is shown this once (the service keeps only its hash){next_step}"
        )

    # Any (below): typer's OptionInfo, which typer itself types as Any.

    def url_option(self, flag: str = "--url", *, from_dir: bool = True) -> Any:
        """The option naming the service's API, for `Annotated[str | None, ...]`."""
        from_dir_text = "--dir's, else " if from_dir else ""
        return _option(
            flag,
            "URL",
            f"The {self.name}'s API (default: {from_dir_text}${self.url_env}, else "
            f"{self.default_url}).",
        )

    def admin_token_file_option(self) -> Any:
        """`--admin-token-file FILE`, for `Annotated[Path | None, ...]`."""
        return _option(
            "--admin-token-file",
            "FILE",
            f"Read the admin token from FILE (default: --dir's {ADMIN_TOKEN_FILE}, else "
            f"${self.token_env}).",
        )

    def database_option(self) -> Any:
        """`init`'s `--database URL`, for `Annotated[str | None, ...]`."""
        return _option(
            "--database",
            "URL",
            "SQLAlchemy URL, such as postgresql+psycopg://user@host/db "
            f"(default: {self.name}.sqlite in DIR).",
        )

    def dir_option(self) -> Any:
        """`--dir DIR`, the service directory, for `Annotated[Path | None, ...]`."""
        return _option(
            "--dir",
            "DIR",
            f"The {self.name}'s directory: its {ADMIN_TOKEN_FILE} and the URL in its "
            f"{self.config_file}.",
        )


def _option(flag: str, metavar: str | None, help_text: str) -> Any:  # Any: typer's OptionInfo
    return typer.Option(flag, metavar=metavar, help=help_text, show_default=False)


def amount_option(example: str) -> Any:  # Any: typer's OptionInfo
    """`--amount`, as `parse_amount` reads it, with `example` in major units."""
    return _option(
        "--amount",
        None,
        f"Major units with up to 2 decimals ({example}), or minor units without a point.",
    )


AmountOption = Annotated[str, amount_option("500.00")]
"""`--amount` of a customer's movement."""
PortOption = Annotated[
    int, typer.Option("--port", min=1, max=65535, help="The API's port on 127.0.0.1.")
]
"""`init`'s `--port`."""


def idempotency_option(what: str, outcome: str = "moves no money again") -> Any:
    """`--idempotency-key KEY`: repeating `what` with a used key has `outcome`.

    Returns:
        Typer's option (typed `Any` by typer), for `Annotated[str | None, ...]`.
    """
    return _option(
        "--idempotency-key",
        "KEY",
        f"Repeat {what} safely: a key already used {outcome} (default: a fresh one, printed).",
    )


def new_idempotency_key(kind: str) -> str:
    """A fresh idempotency key such as `fund-3f9c…`: printed, so a retry can repeat it."""
    return f"{kind}-{secrets.token_hex(12)}"


def write_token_file(path: Path, token: str) -> None:
    """Write a token to `path` (mode 0600, replacing an old one), followed by a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # An old file keeps its mode through O_TRUNC: make it private before the token is in it.
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")


def read_token_file(path: Path, what: str) -> str:
    """The token in `path` (its first line).

    Raises:
        CliError: the file cannot be read or is empty.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CliError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"the {what} file {path} is not text") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise CliError(f"the {what} file {path} is empty")
    return token


def _local_url(host: str, port: int) -> str:
    """The URL a local client reaches a service listening on `host`:`port` at."""
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - a listening address, not a bind here
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
