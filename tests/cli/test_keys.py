"""`tally key new` and `tally key show`."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer.testing import CliRunner

from tally.cli.main import app
from tally.model import KeyLock, PublicKey, address_of
from tally.node.keyfile import read_key

runner = CliRunner()


def test_key_new_writes_a_private_file_and_prints_its_address(tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    result = runner.invoke(
        app, ["key", "new", str(path), "--label", "alice", "--json", "--network", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    key = read_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert view["public_key"] == key.public_key.hex()
    assert view["address"] == address_of(KeyLock(key=PublicKey(key.public_key)), "tly")
    assert view["label"] == "alice"
    assert key.to_bytes().hex() not in result.output

    shown = runner.invoke(app, ["key", "show", str(path), "--hrp", "tst"])
    assert shown.exit_code == 0, shown.output
    assert key.public_key.hex() in shown.stdout
    assert address_of(KeyLock(key=PublicKey(key.public_key)), "tst") in shown.stdout
    assert "alice" in shown.stdout


def test_key_new_never_overwrites_and_show_reports_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    assert runner.invoke(app, ["key", "new", str(path)]).exit_code == 0
    before = path.read_text()
    again = runner.invoke(app, ["key", "new", str(path)])
    assert again.exit_code == 1
    assert "never overwritten" in again.stderr
    assert path.read_text() == before
    junk = tmp_path / "junk.key"
    junk.write_text("{}")
    shown = runner.invoke(app, ["key", "show", str(junk)])
    assert shown.exit_code == 1
    assert "not a Tally key file" in shown.stderr
    assert "Traceback" not in shown.output
