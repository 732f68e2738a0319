"""`python -m tally.cli`: the `tally` command."""

from tally.cli.main import main

main()
