from __future__ import annotations

from typer.testing import CliRunner

from tally.cli.main import app


def test_explorer_refuses_a_node_url_that_is_not_http() -> None:
    result = CliRunner().invoke(app, ["explorer", "--node", "ftp://example"])
    assert result.exit_code == 1
    assert "must be an http:// or https:// URL" in result.output


def test_explorer_help_says_what_it_serves() -> None:
    result = CliRunner().invoke(app, ["explorer", "--help"])
    assert result.exit_code == 0
    assert "explorer" in result.output.lower()
    assert "--node" in result.output
