"""The explorer mounted into a real node process by its runner's `configure` hook."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tally.model import encode, tx_id
from tests.node.harness import free_port, make_node_dir
from tests.rules.helpers import ALICE, coin, make_genesis, make_issue

pytestmark = pytest.mark.network

RUNNER = (
    "import sys; from pathlib import Path; "
    "from tally.explorer import mount_explorer; "
    "from tally.node.process import run_node; "
    "sys.exit(run_node(Path(sys.argv[1]), 'warning', configure=mount_explorer))"
)


def test_node_process_serves_the_explorer_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    node_dir = make_node_dir(tmp_path, make_genesis(), port)
    log = (tmp_path / "node.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(node_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "node.log").read_text()
            try:
                if httpx.get(url + "/explorer/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the node did not serve the explorer"
            time.sleep(0.1)
        issue = make_issue("CNY", [coin("CNY", 12_345, ALICE)])
        committed = httpx.post(
            url + "/v1/txs?wait=commit",
            content=encode(issue),
            headers={"content-type": "application/octet-stream"},
            timeout=30,
        ).json()
        page = httpx.get(f"{url}/explorer/tx/{tx_id(issue.body).hex()}", timeout=10)
        assert page.status_code == 200
        assert "123.45" in page.text
        assert httpx.get(f"{url}/explorer/block/{committed['height']}").status_code == 200
        assert httpx.get(f"{url}/explorer/coin/nonsense").status_code == 404
        assert httpx.get(f"{url}/v1/status").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
        log.close()
    assert code == 0, (tmp_path / "node.log").read_text()
