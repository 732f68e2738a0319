"""Running a service's API as a process until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from tally.node.process import GracefulServer

__all__ = ["serve", "configure_logging", "directory_argument"]


def configure_logging(level: str = "info") -> None:
    """Log lines with time, level and source, as the node does."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO: one line per call to the node would bury the rest.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def directory_argument(argv: Sequence[str] | None, module: str) -> Path | None:
    """The service directory of `python -m MODULE DIR`: the one argument.

    Returns:
        The directory (or its TOML file), or None after printing the usage to stderr.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(f"usage: python -m {module} SERVICE_DIR", file=sys.stderr)
        return None
    return Path(args[0])


def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve `app` until SIGINT or SIGTERM, then return so the caller can close its database."""
    server = GracefulServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )
    server.run()
