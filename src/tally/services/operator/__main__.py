"""`python -m tally.services.operator DIR`: serve the operator of a service directory.

Runs until SIGTERM or SIGINT, then stops the worker and closes the database cleanly.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tally.services.common.errors import UpstreamError
from tally.services.common.process import configure_logging, serve
from tally.services.operator.api import create_app
from tally.services.operator.config import OperatorConfigError, load_config
from tally.services.operator.service import open_service

__all__ = ["main"]

log = logging.getLogger("tally.services.operator")


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the operator whose directory (or `operator.toml`) is the one argument.

    Returns:
        0 after a clean stop, 2 for a usage or configuration error, 1 if the node never
        answered.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m tally.services.operator SERVICE_DIR", file=sys.stderr)
        return 2
    configure_logging()
    # httpx logs every request at INFO: one line per call to the node would bury the rest.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        config = load_config(Path(args[0]))
        service = open_service(config)
    except OperatorConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        service.start()
    except UpstreamError as exc:
        log.error("cannot start: %s", exc.message)
        service.stop()
        return 1
    try:
        serve(create_app(service, start=False), config.api_host, config.api_port)
    finally:
        service.stop()
    log.info("operator %s stopped", config.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
