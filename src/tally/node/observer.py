"""Observer mode: follow a consortium's chain without a vote, checking every certificate.

An observer (a regulator's or an auditor's node, a read replica behind an explorer) holds no
member certificate and takes no part in consensus. It fetches each next block with its
commit certificate from the members' HTTP APIs (`/v1/blocks/{height}/certified`), checks
that the certificate carries a quorum of valid member signatures over the block's header,
re-executes the block, and commits it only if every header field matches its own execution.
A member that serves a bad block or certificate is skipped for the next one; the observer
never trusts a single member.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import httpx
import msgspec

from tally.crypto import schnorr
from tally.model.block import Block, CommitCertificate
from tally.model.encoding import decode
from tally.model.rejection import Rejection
from tally.node.core import Node
from tally.rules.certificate import check_certificate

__all__ = ["Observer"]

log = logging.getLogger(__name__)

_IDLE_S = 0.2
"""How long the observer waits once it has every block its sources have."""


class Observer:
    """Follows the chain served by `sources` (members' API base URLs) into `node`."""

    def __init__(
        self,
        node: Node,
        sources: list[str],
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        if not sources:
            raise ValueError("an observer needs at least one member API to follow")
        self._node = node
        self._sources = sources
        self._on_fatal = on_fatal
        self._next = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="observer", daemon=True)
        self.refused = 0
        """Blocks or certificates refused so far (a faulty member's)."""

    def start(self) -> None:
        """Start following in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop following; the block being committed, if any, is finished first."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=10) as http:
                while not self._stopping.is_set():
                    if not self._step(http):
                        self._stopping.wait(_IDLE_S)
        except BaseException as exc:  # the follower thread is a process boundary
            log.exception("observer stopped by an error")
            if self._on_fatal is not None:
                self._on_fatal(exc)

    def _step(self, http: httpx.Client) -> bool:
        """Fetch, check and commit the next block from one source; whether one was committed."""
        height = self._node.committed_height() + 1
        for _ in range(len(self._sources)):
            source = self._sources[self._next]
            self._next = (self._next + 1) % len(self._sources)
            try:
                response = http.get(f"{source}/v1/blocks/{height}/certified")
            except httpx.TransportError:
                continue
            if response.status_code != 200:
                continue
            if self.follow(response.content):
                return True
            log.warning("observer: block %d from %s refused", height, source)
        return False

    def follow(self, served: bytes) -> bool:
        """Check and commit one certified block (MessagePack pair of block and certificate).

        Returns:
            Whether it was committed; False for anything that does not prove itself.
        """
        try:
            raw_block, raw_certificate = decode(served, tuple[bytes, bytes])
            block = decode(raw_block, Block)
            certificate = decode(raw_certificate, CommitCertificate)
            check_certificate(certificate, block.header, self._node.members(), schnorr.verify)
            proposal = self._node.receive_block(block)
        except (Rejection, msgspec.DecodeError, ValueError) as exc:
            self.refused += 1
            log.warning("observer: refused a served block: %s", exc)
            return False
        self._node.commit(proposal, certificate)
        return True
