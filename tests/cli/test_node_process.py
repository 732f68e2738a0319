"""The whole command line against a real node process started by `tally node start`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tally
from tally.client import NodeClient, NodeUnreachable
from tests.node.harness import free_port

SRC = str(Path(tally.__file__).resolve().parents[1])


def _env(network: Path) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "TALLY_NETWORK": str(network),
        "PYTHONPATH": SRC + (os.pathsep + path if path else ""),
        "PYTHONUNBUFFERED": "1",
    }


def _tally(network: Path, *args: str) -> Any:  # Any: the command's JSON
    done = subprocess.run(
        [sys.executable, "-m", "tally.cli", *args, "--json"],
        env=_env(network),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


@contextlib.contextmanager
def _node(network: Path, api: str, log: Path) -> Iterator[NodeClient]:
    """`tally node start` in a process; stopped with SIGTERM, which must exit with status 0."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tally.cli", "node", "start", str(network)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(network),
        )
    try:
        with NodeClient(api, timeout=10) as client:
            for _ in range(300):
                assert process.poll() is None, log.read_text()
                with contextlib.suppress(NodeUnreachable):
                    client.status()
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.1)
            else:
                raise AssertionError(f"the node did not serve within 30 s: {log.read_text()}")
            yield client
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise
    assert code == 0, log.read_text()


@pytest.mark.network
def test_cli_drives_a_node_process_from_init_to_sigterm(tmp_path: Path) -> None:
    network = tmp_path / "net"
    port = free_port()
    init = _tally(network, "init", str(network), "--port", str(port))
    assert init["api"] == f"http://127.0.0.1:{port}"
    alice = _tally(network, "key", "new", str(tmp_path / "alice.key"))
    bob = _tally(network, "key", "new", str(tmp_path / "bob.key"))

    with _node(network, init["api"], tmp_path / "node-1.log") as client:
        with contextlib.closing(client.events(read_timeout=20)) as events:
            assert next(events)["type"] == "hello"

            alice_key, bob_key = str(tmp_path / "alice.key"), str(tmp_path / "bob.key")
            issued = _tally(network, "issue", "1000.00", "CNY", "--to", alice_key)
            assert issued["status"] == "committed"
            paid = _tally(network, "transfer", "120.50", "CNY", "--key", alice_key, "--to", bob_key)
            assert paid["status"] == "committed"
            assert paid["height"] > issued["height"]

            seen = [next(events), next(events)]
            assert [e["type"] for e in seen] == ["block", "block"]
            assert seen[1]["receipts"] == [{"txid": paid["txid"], "code": "ok"}]

        assert _tally(network, "balance", alice["address"])["balance"] == {"CNY": "87950"}
        assert _tally(network, "balance", bob_key)["balance"] == {"CNY": "12050"}
        supply = _tally(network, "supply")["assets"]["CNY"]
        assert supply == {"issued": "100000", "redeemed": "0", "outstanding": "100000"}
        block = _tally(network, "block", "show", str(paid["height"]))
        assert [t["txid"] for t in block["txs"]] == [paid["txid"]]
        assert len(block["certificate"]["signatures"]) == 1
        shown = _tally(network, "tx", "show", paid["txid"])
        assert shown["status"] == "committed"
        assert shown["tx"]["outputs"][0]["lock"]["address"] == bob["address"]
        assert _tally(network, "status")["height"] == paid["height"]

    with _node(network, init["api"], tmp_path / "node-2.log"):
        assert _tally(network, "status")["height"] == paid["height"]
        assert _tally(network, "balance", bob_key)["balance"] == {"CNY": "12050"}

    audit = _tally(network, "node", "check", str(network))
    assert audit["ok"] is True
    assert audit["stored_root"] == audit["recomputed_root"]
    assert audit["unspent"] == {"CNY": "100000"} == audit["outstanding"]
