"""`python -m tally.services.operator DIR`: run the operator service of a directory.

Runs until SIGTERM or SIGINT, then stops the worker and closes the database cleanly.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tally.services.common.process import directory_argument
from tally.services.operator.api import run_operator

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the operator whose directory (or `operator.toml`) is the one argument.

    Returns:
        0 after a clean stop, 2 for a usage or configuration error, 1 if the node never
        answered.
    """
    directory = directory_argument(argv, "tally.services.operator")
    return 2 if directory is None else run_operator(directory)


if __name__ == "__main__":
    sys.exit(main())
