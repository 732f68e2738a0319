"""Running a service's API as a process until SIGINT or SIGTERM."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from tally.node.process import GracefulServer

__all__ = ["serve", "configure_logging"]


def configure_logging(level: str = "info") -> None:
    """Log lines with time, level and source, as the node does."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


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
