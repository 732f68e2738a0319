"""`node.toml`: a solo node's file as it always was, a consortium node's sections, and errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tally.node.config import (
    ConfigError,
    NodeConfig,
    PeerAddress,
    load_config,
    parse_host_port,
    render_config,
)

SOLO = """\
# Tally node configuration. Paths are relative to this file.
[node]
name = "node0"
data_dir = "data"
key_file = "../keys/node0.key"
genesis_file = "../genesis.bin"
verify_threads = 0  # 0: one per core

[api]
host = "127.0.0.1"
port = 7545

[mempool]
max_size = 200000
"""

PEERS = {
    "node1": PeerAddress(p2p=("127.0.0.1", 7646), api="http://127.0.0.1:7546"),
    "node2": PeerAddress(p2p=("::1", 7647), api="http://[::1]:7547"),
}


def write(tmp_path: Path, text: str) -> Path:
    node_dir = tmp_path / "node0"
    node_dir.mkdir(exist_ok=True)
    (node_dir / "node.toml").write_text(text)
    return node_dir


def pbft_text(**changes: object) -> str:
    arguments: dict[str, Any] = {
        "consensus": "pbft",
        "p2p_port": 7645,
        "tls_cert": "../keys/node0.crt",
        "tls_key": "../keys/node0-tls.key",
        "peers": PEERS,
    }
    arguments.update(changes)
    return render_config("node0", "../keys/node0.key", "../genesis.bin", 7545, **arguments)


def test_a_solo_node_file_is_written_as_before_and_reads_with_the_consensus_defaults(
    tmp_path: Path,
) -> None:
    assert render_config("node0", "../keys/node0.key", "../genesis.bin", 7545) == SOLO
    config = load_config(write(tmp_path, SOLO))
    assert config == NodeConfig(
        name="node0",
        data_dir=(tmp_path / "node0" / "data").resolve(),
        key_file=(tmp_path / "keys" / "node0.key").resolve(),
        genesis_file=(tmp_path / "genesis.bin").resolve(),
    )
    assert (config.consensus, config.peers, config.tls_cert, config.tls_key) == (
        "solo",
        {},
        None,
        None,
    )
    assert (config.p2p_port, config.checkpoint_interval, config.view_timeout_ms) == (
        7645,
        16,
        2000,
    )
    assert not config.test_faults


def test_a_consortium_node_file_round_trips(tmp_path: Path) -> None:
    text = pbft_text(checkpoint_interval=8, view_timeout_ms=500)
    assert text.startswith(SOLO)
    assert "[peers.node1]" in text
    assert 'p2p = "[::1]:7647"' in text
    config = load_config(write(tmp_path, text))
    assert config.consensus == "pbft"
    assert (config.p2p_host, config.p2p_port) == ("127.0.0.1", 7645)
    assert config.tls_cert == (tmp_path / "keys" / "node0.crt").resolve()
    assert config.tls_key == (tmp_path / "keys" / "node0-tls.key").resolve()
    assert config.peers == PEERS
    assert (config.checkpoint_interval, config.view_timeout_ms) == (8, 500)
    assert not config.test_faults


def test_the_test_section_turns_the_fault_layer_on(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, pbft_text() + "\n[test]\nfaults = true\n"))
    assert config.test_faults


def test_an_observer_needs_no_certificate(tmp_path: Path) -> None:
    text = (
        SOLO
        + '\n[consensus]\nkind = "observer"\n\n[peers.node1]\np2p = "h:1"\napi = "http://h:2/"\n'
    )
    config = load_config(write(tmp_path, text))
    assert config.consensus == "observer"
    assert config.tls_cert is None
    assert config.peers == {"node1": PeerAddress(p2p=("h", 1), api="http://h:2")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SOLO + '\n[consensus]\nkind = "raft"\n', "unknown consensus kind 'raft'"),
        (SOLO + '\n[consensus]\nkind = "pbft"\n', r"pbft needs \[p2p\] cert"),
        (
            SOLO + '\n[consensus]\nkind = "pbft"\n[p2p]\ncert = "a.crt"\n',
            r"pbft needs \[p2p\] key",
        ),
        (SOLO + "\n[p2p]\nport = 70000\n", r"\[p2p\] port must be a port"),
        (SOLO + '\n[p2p]\nport = "7645"\n', r"\[p2p\] port must be a port"),
        (SOLO + "\n[p2p]\ncert = 5\n", r"\[p2p\] cert must be a file path"),
        (SOLO + "\n[consensus]\ncheckpoint_interval = 0\n", "checkpoint_interval must be"),
        (SOLO + "\n[consensus]\nview_timeout_ms = -5\n", "view_timeout_ms must be"),
        (SOLO + '\n[test]\nfaults = "yes"\n', r"\[test\] faults must be true or false"),
        ("consensus = 3\n" + SOLO, r"\[consensus\] must be a table"),
        (SOLO + '\n[peers]\nnode1 = "127.0.0.1:7646"\n', r"\[peers.node1\] must be a table"),
        (
            SOLO + '\n[peers.node1]\np2p = "127.0.0.1"\napi = "http://x"\n',
            "peers.node1.p2p: '127.0.0.1' is not HOST:PORT",
        ),
        (
            SOLO + '\n[peers.node1]\np2p = "127.0.0.1:0"\napi = "http://x"\n',
            "is not HOST:PORT",
        ),
        (SOLO + '\n[peers.node1]\napi = "http://x"\n', "peers.node1.p2p must be"),
        (SOLO + '\n[peers.node1]\np2p = "h:1"\napi = "h:2"\n', "peers.node1.api must be an http"),
    ],
)
def test_wrong_consensus_settings_are_config_errors_naming_the_setting(
    tmp_path: Path, text: str, message: str
) -> None:
    node_dir = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(node_dir)
    assert str(node_dir / "node.toml") in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7645", ("127.0.0.1", 7645)),
        ("node-1.example:1", ("node-1.example", 1)),
        ("[::1]:65535", ("::1", 65535)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["", ":7645", "host", "host:", "host:x", "host:65536", "h:-1"])
def test_parse_host_port_refuses_what_is_not_host_and_port(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_host_port(text)
