"""Starting and stopping the processes of a local network: a node and its services.

`make run` brings up several processes at once; each runs as `python -m MODULE ARGS...` with its
output in a log file in its directory, so that the terminal stays readable and a failure can
be read afterwards. The supervisor waits until each answers its health URL, and stops them in
reverse order (services before the node they use) when asked or when one of them dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["Child", "Supervisor", "SupervisorError"]

_POLL_S = 0.1


class SupervisorError(Exception):
    """A process did not start, or stopped on its own; the message names its log."""


@dataclass
class Child:
    """One supervised process."""

    name: str
    """What the user calls it (`node`, `issuer`, `operator-a`)."""
    command: tuple[str, ...]
    """Run as `python -m COMMAND...`, e.g. `("tally.services.issuer", DIR)`."""
    directory: Path
    """The process's directory; its log goes to `DIRECTORY/NAME.log`."""
    health_url: str
    """A GET that answers 200 once the process serves."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_file(self) -> Path:
        """Where the process's output goes."""
        return self.directory / f"{self.name}.log"

    def tail(self, lines: int = 20) -> str:
        """The last lines of the log, to show when something went wrong."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Supervisor:
    """Starts children in order, and stops them in reverse order."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(self, child: Child, timeout: float = 60.0) -> None:
        """Start `child` and wait until it answers its health URL.

        Raises:
            SupervisorError: it exited, or did not answer within `timeout` seconds.
        """
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with child.log_file.open("ab") as out:
            child.process = subprocess.Popen(  # noqa: S603 - our own module, our own arguments
                [sys.executable, "-m", *child.command],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches us alone; we stop the children in order
            )
        self.children.append(child)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise SupervisorError(
                    f"{child.name} exited with {child.process.returncode}; "
                    f"its log {child.log_file} ends with:\n{child.tail()}"
                )
            try:
                if httpx.get(child.health_url, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(_POLL_S)
        raise SupervisorError(
            f"{child.name} did not answer {child.health_url} within {timeout:.0f} s; "
            f"see {child.log_file}"
        )

    def dead(self) -> list[Child]:
        """Children that exited on their own."""
        return [c for c in self.children if c.process is not None and c.process.poll() is not None]

    def wait(self) -> Child:
        """Block until a child exits (or until interrupted); the child that exited."""
        while True:
            dead = self.dead()
            if dead:
                return dead[0]
            time.sleep(0.5)

    def stop(self, timeout: float = 20.0) -> dict[str, int]:
        """SIGTERM every child, newest first, and wait; SIGKILL one that does not stop.

        Returns:
            Each child's exit code.
        """
        codes: dict[str, int] = {}
        for child in reversed(self.children):
            process = child.process
            if process is None:
                continue
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
            codes[child.name] = process.returncode
        self.children.clear()
        return codes
