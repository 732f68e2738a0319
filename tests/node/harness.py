"""Real node processes on loopback for tests: a network directory, start, kill -9, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tally.model import Genesis, encode
from tally.node.config import render_config
from tally.node.keyfile import write_key
from tests.rules.helpers import MEMBER, key

__all__ = ["ServiceProcess", "NodeProcess", "free_port", "make_node_dir"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_node_dir(root: Path, genesis: Genesis, port: int) -> Path:
    """A network directory with genesis, the member's key and one node's `node.toml`."""
    (root / "genesis.bin").write_bytes(encode(genesis))
    write_key(root / "keys" / "node0.key", key(MEMBER), label="node0")
    node_dir = root / "node0"
    node_dir.mkdir(parents=True)
    (node_dir / "node.toml").write_text(
        render_config(genesis.members[0].name, "../keys/node0.key", "../genesis.bin", port)
    )
    return node_dir


@dataclass
class ServiceProcess:
    """One process serving HTTP on loopback (a node or a service); its output goes to a log
    file in `directory`, one per start, kept for reading when a test fails."""

    directory: Path
    port: int
    module: str = "tally.node"
    """The module run with `python -m MODULE DIRECTORY`."""
    health_path: str = "/v1/status"
    """A GET that answers 200 once the process serves."""
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The API base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def name(self) -> str:
        """The module's last part, for log names."""
        return self.module.rsplit(".", 1)[-1]

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until its API answers."""
        self.starts += 1
        log = self.directory / f"{self.name}-{self.starts}.log"
        self.logs.append(log)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, str(self.directory)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}: {log.read_text()}"
                )
            try:
                if httpx.get(self.url + self.health_path, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not answer within {timeout} s: {log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM, then wait; SIGKILL if it does not stop in 15 s. Returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)


def NodeProcess(node_dir: Path, port: int) -> ServiceProcess:  # noqa: N802 - reads as a class
    """A node process serving from `node_dir` on `port`."""
    return ServiceProcess(node_dir, port)
