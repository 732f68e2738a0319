"""`python -m tally.services.issuer DIR`: run the issuer service of a directory.

Runs until SIGTERM or SIGINT, then stops the follower and closes the database cleanly.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tally.services.common.process import directory_argument
from tally.services.issuer.api import run_issuer

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the issuer whose directory (or `issuer.toml`) is the one argument.

    Returns:
        0 after a clean stop, 2 for a usage or configuration error.
    """
    directory = directory_argument(argv, "tally.services.issuer")
    return 2 if directory is None else run_issuer(directory)


if __name__ == "__main__":
    sys.exit(main())
