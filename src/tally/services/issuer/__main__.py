"""`python -m tally.services.issuer DIR`: run the issuer service of a directory."""

from __future__ import annotations

import sys
from pathlib import Path

from tally.services.issuer.api import run_issuer

__all__ = ["main"]


def main() -> None:
    """Run the issuer whose directory (or `issuer.toml`) is the first argument."""
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: python -m tally.services.issuer ISSUER_DIR_OR_ISSUER_TOML", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_issuer(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
