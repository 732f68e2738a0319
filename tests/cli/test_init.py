"""`tally init` writes a complete development network and refuses to overwrite one."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

from typer.testing import CliRunner, Result

from tally.cli.main import app
from tally.cli.network import load_network
from tally.model import Genesis, Params, decode
from tally.node.config import load_config
from tally.node.keyfile import read_key

runner = CliRunner()


def _init(directory: Path, *args: str, code: int = 0) -> Result:
    result = runner.invoke(app, ["init", str(directory), *args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def test_init_writes_keys_genesis_and_configs(tmp_path: Path) -> None:
    net = tmp_path / "net"
    result = _init(net, "--chain-id", "demo-1", "--port", "7999")
    assert "tally node start" in result.stdout

    keys = {
        name: net / "keys" / f"{name}.key"
        for name in ("admin", "issuer-CNY", "issuer-USD", "node0")
    }
    for path in keys.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    genesis = decode((net / "genesis.bin").read_bytes(), Genesis)
    assert genesis.chain_id == "demo-1"
    assert genesis.hrp == "tly"
    assert genesis.params == Params()
    assert genesis.admins == (read_key(keys["admin"]).public_key,)
    assert genesis.admin_threshold == 1
    assert [(a.asset, a.issuer) for a in genesis.assets] == [
        ("CNY", read_key(keys["issuer-CNY"]).public_key),
        ("USD", read_key(keys["issuer-USD"]).public_key),
    ]
    assert [(m.name, m.key) for m in genesis.members] == [
        ("node0", read_key(keys["node0"]).public_key)
    ]

    config = load_config(net / "node0" / "node.toml")
    assert config.key_file == keys["node0"].resolve()
    assert config.genesis_file == (net / "genesis.bin").resolve()
    assert config.api_port == 7999
    network = load_network(net)
    assert (network.chain_id, network.hrp, network.api) == (
        "demo-1",
        "tly",
        "http://127.0.0.1:7999",
    )
    assert network.issuer_keys == {
        "CNY": keys["issuer-CNY"].resolve(),
        "USD": keys["issuer-USD"].resolve(),
    }
    assert network.admin_key == keys["admin"].resolve()
    assert tomllib.loads((net / "network.toml").read_text())["keys"]["node0"] == "keys/node0.key"


def test_init_refuses_a_non_empty_directory_unless_forced(tmp_path: Path) -> None:
    net = tmp_path / "net"
    _init(net)
    first = (net / "genesis.bin").read_bytes()
    (net / "node0" / "data").mkdir()
    (net / "notes.txt").write_text("mine")
    refused = _init(net, code=1)
    assert "not empty" in refused.stderr
    assert "Traceback" not in refused.output
    assert (net / "genesis.bin").read_bytes() == first

    _init(net, "--force", "--asset", "eur")
    assert (net / "genesis.bin").read_bytes() != first
    assert not (net / "node0" / "data").exists()
    assert (net / "notes.txt").read_text() == "mine"
    assert [a.asset for a in decode((net / "genesis.bin").read_bytes(), Genesis).assets] == ["EUR"]
    assert not (net / "keys" / "issuer-CNY.key").exists()


def test_init_json_and_argument_errors(tmp_path: Path) -> None:
    view = json.loads(_init(tmp_path / "a", "--json").stdout)
    assert view["chain_id"] == "tally-dev"
    assert view["api"] == "http://127.0.0.1:7545"
    assert set(view["issuer_keys"]) == {"CNY", "USD"}
    bad = _init(tmp_path / "b", "--chain-id", "bad id!", code=1)
    assert "chain id 'bad id!'" in bad.stderr
    assert not (tmp_path / "b").exists()
    bad_asset = _init(tmp_path / "c", "--asset", "1X", code=1)
    assert "assets 1X" in bad_asset.stderr
