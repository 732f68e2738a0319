"""`tally init --nodes N`: a PBFT consortium's genesis, certificates, keys and node configs."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tally.cli.main import app
from tally.cli.network import NetworkError, create_network, load_network
from tally.consensus.membership import check_member_certificate, load_certificate
from tally.model import Genesis, decode
from tally.node.config import PeerAddress, load_config
from tally.node.keyfile import read_key

runner = CliRunner()


def _init(directory: Path, *args: str, code: int = 0) -> Result:
    result = runner.invoke(app, ["init", str(directory), *args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def test_init_nodes_4_writes_a_consortium_whose_certificates_verify(tmp_path: Path) -> None:
    net = tmp_path / "net"
    result = _init(net, "--nodes", "4", "--port", "8100")
    assert "keep it offline" in result.stdout
    keys = net / "keys"
    genesis = decode((net / "genesis.bin").read_bytes(), Genesis)
    names = [f"node{i}" for i in range(4)]
    assert [m.name for m in genesis.members] == names
    assert [m.key for m in genesis.members] == [
        read_key(keys / f"{name}.key").public_key for name in names
    ]
    assert genesis.root_certificate == (keys / "root.crt").read_bytes()
    root = load_certificate(genesis.root_certificate)
    assert load_certificate((keys / "root.pem").read_bytes()) == root
    for name in names:
        identity = check_member_certificate(
            (keys / f"{name}.crt").read_bytes(),
            genesis.root_certificate,
            genesis.members,
            expected_name=name,
        )
        assert identity.consensus_key == read_key(keys / f"{name}.key").public_key
    secrets = ["root.key", "admin.key", *(f"{n}.key" for n in names)]
    secrets += [f"{n}-tls.key" for n in names]
    for secret in secrets:
        assert stat.S_IMODE((keys / secret).stat().st_mode) == 0o600, secret


def test_init_nodes_4_configures_each_node_with_all_the_others_as_peers(tmp_path: Path) -> None:
    net = tmp_path / "net"
    _init(net, "--nodes", "4", "--port", "8100", "--p2p-port", "9100")
    for index in range(4):
        config = load_config(net / f"node{index}")
        assert config.name == f"node{index}"
        assert config.consensus == "pbft"
        assert (config.api_port, config.p2p_port) == (8100 + index, 9100 + index)
        assert config.tls_cert == (net / "keys" / f"node{index}.crt").resolve()
        assert config.tls_key == (net / "keys" / f"node{index}-tls.key").resolve()
        assert config.key_file == (net / "keys" / f"node{index}.key").resolve()
        assert config.data_dir == (net / f"node{index}" / "data").resolve()
        assert not config.test_faults
        assert config.peers == {
            f"node{i}": PeerAddress(p2p=("127.0.0.1", 9100 + i), api=f"http://127.0.0.1:{8100 + i}")
            for i in range(4)
            if i != index
        }
    network = load_network(net)
    assert network.api == "http://127.0.0.1:8100"
    assert network.apis == tuple(f"http://127.0.0.1:{8100 + i}" for i in range(4))
    assert sorted(network.node_keys) == [f"node{i}" for i in range(4)]


def test_the_p2p_ports_default_to_a_hundred_above_the_api_ports(tmp_path: Path) -> None:
    view = json.loads(_init(tmp_path / "net", "--nodes", "5", "--json").stdout)
    assert view["apis"] == [f"http://127.0.0.1:{7545 + i}" for i in range(5)]
    assert view["root_certificate"].endswith("root.crt")
    assert load_config(tmp_path / "net" / "node4").p2p_port == 7645 + 4


@pytest.mark.parametrize("nodes", ["2", "3"])
def test_init_refuses_two_or_three_nodes_and_says_why(tmp_path: Path, nodes: str) -> None:
    refused = _init(tmp_path / "net", "--nodes", nodes, code=1)
    assert f"--nodes {nodes}" in refused.stderr
    assert "3f + 1" in refused.stderr
    assert "4 nodes to tolerate one fault" in refused.stderr
    assert not (tmp_path / "net").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"nodes": 0}, "--nodes 0"),
        ({"nodes": 4, "port": 65534}, "port 65534 is not in"),
        ({"nodes": 4, "port": 8000, "p2p_port": 8002}, "overlap"),
        ({"nodes": 4, "p2p_port": 0}, "p2p port 0"),
    ],
)
def test_create_network_refuses_bad_node_counts_and_ports(
    tmp_path: Path, arguments: dict[str, int], message: str
) -> None:
    with pytest.raises(NetworkError, match=message):
        create_network(tmp_path / "net", **arguments)


def test_init_nodes_1_is_the_single_node_network_it_always_was(tmp_path: Path) -> None:
    one = tmp_path / "one"
    _init(one, "--nodes", "1")
    genesis = decode((one / "genesis.bin").read_bytes(), Genesis)
    assert genesis.root_certificate == b""
    assert [m.name for m in genesis.members] == ["node0"]
    assert sorted(path.name for path in (one / "keys").iterdir()) == [
        "admin.key",
        "issuer-CNY.key",
        "issuer-USD.key",
        "node0.key",
    ]
    assert sorted(path.name for path in one.iterdir()) == [
        "genesis.bin",
        "keys",
        "network.toml",
        "node0",
    ]
    assert "apis" not in tomllib.loads((one / "network.toml").read_text())
    config = load_config(one / "node0")
    assert (config.consensus, config.peers, config.tls_cert) == ("solo", {}, None)
    assert "[consensus]" not in (one / "node0" / "node.toml").read_text()
    assert load_network(one).apis == ("http://127.0.0.1:7545",)


def test_force_replaces_a_consortium_with_a_single_node(tmp_path: Path) -> None:
    net = tmp_path / "net"
    _init(net, "--nodes", "4")
    (net / "node2" / "data").mkdir()
    (net / "keys" / "mine.txt").write_text("kept")
    _init(net, "--force")
    assert sorted(path.name for path in net.iterdir()) == [
        "genesis.bin",
        "keys",
        "network.toml",
        "node0",
    ]
    assert sorted(path.name for path in (net / "keys").iterdir()) == [
        "admin.key",
        "issuer-CNY.key",
        "issuer-USD.key",
        "mine.txt",
        "node0.key",
    ]
    _init(net, "--force", "--nodes", "4")
    assert len(decode((net / "genesis.bin").read_bytes(), Genesis).members) == 4
