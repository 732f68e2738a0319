"""The `tally` command line (typer + rich); `tally.cli.main:main` is its entry point."""

from tally.cli.main import app, main

__all__ = ["app", "main"]
