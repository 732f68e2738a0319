"""`python -m tally.node NODE_DIR`: run one node from its `node.toml`, as `tally node start`."""

from __future__ import annotations

import sys
from pathlib import Path

from tally.node.process import run_node


def main() -> None:
    """Run the node whose directory or config file is the first argument."""
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: python -m tally.node NODE_DIR_OR_NODE_TOML", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_node(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
