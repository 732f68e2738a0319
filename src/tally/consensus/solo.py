"""Solo ordering: one node cuts, executes, certifies and commits blocks alone.

The embedded default for development, tests and demos. It cuts a block when `max_txs`
transactions wait or `interval_ms` after the first of them arrived, whichever comes first,
and signs the commit certificate with the node key (a quorum of one member).

Two threads: the ordering thread cuts, executes and certifies blocks; the commit thread
writes them, in order, and acknowledges their transactions. So the next block executes
while the previous one is written and synced to disk. At most `_COMMIT_QUEUE` blocks wait
between the two; the ordering thread waits when they are that many.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic

from tally.consensus.orderer import Application, ProposalT
from tally.crypto.schnorr import PrivateKey
from tally.model.block import CommitCertificate
from tally.model.encoding import block_hash
from tally.model.types import BlockHash, Height
from tally.rules.certificate import sign_certificate

__all__ = ["SoloOrderer"]

log = logging.getLogger(__name__)

_COMMIT_QUEUE = 1
"""Blocks executed and certified that may wait for the commit thread."""


class SoloOrderer(Generic[ProposalT]):
    """Orders alone; certificates carry one signature by member `signer`."""

    def __init__(
        self,
        app: Application[ProposalT],
        key: PrivateKey,
        signer: int,
        max_txs: Callable[[], int],
        interval_ms: Callable[[], int],
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._app = app
        self._key = key
        self._signer = signer
        self._max_txs = max_txs
        self._interval_ms = interval_ms
        self._on_fatal = on_fatal
        self._stopping = threading.Event()
        self._failed = threading.Event()
        """Set when the commit thread has stopped on an error."""
        self._commits: queue.Queue[tuple[ProposalT, CommitCertificate] | None] = queue.Queue(
            maxsize=_COMMIT_QUEUE
        )
        self._thread = threading.Thread(target=self._run, name="solo-orderer", daemon=True)
        self._committer = threading.Thread(
            target=self._run_commits, name="solo-commit", daemon=True
        )

    def start(self) -> None:
        """Start the ordering and commit threads."""
        self._committer.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop after the blocks in progress are committed; waits for both threads."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if self._committer.is_alive():
            self._hand_over(None)
            self._committer.join(timeout=30)

    def certify(self, proposal_hash: bytes, height: int) -> CommitCertificate:
        """Sign the commit certificate of the block with hash `proposal_hash`."""
        return sign_certificate(
            self._app.chain_id,
            Height(height),
            BlockHash(proposal_hash),
            0,
            [(self._signer, self._key)],
        )

    def _hand_over(self, item: tuple[ProposalT, CommitCertificate] | None) -> None:
        """Queue a block for the commit thread; gives up if that thread has failed."""
        while not self._failed.is_set():
            try:
                self._commits.put(item, timeout=0.2)
            except queue.Full:
                continue
            return

    def _run_commits(self) -> None:
        try:
            while True:
                item = self._commits.get()
                if item is None:
                    return
                self._app.commit(*item)
        except BaseException as exc:  # the commit thread is a process boundary: log and stop
            self._failed.set()
            self._stopping.set()
            log.exception("solo orderer's commit thread stopped by an error")
            if self._on_fatal is not None:
                self._on_fatal(exc)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                if not self._app.wait_for_work(0.2):
                    continue
                # Let a block fill for up to one interval after its first transaction.
                deadline = time.monotonic() + self._interval_ms() / 1000
                max_txs = self._max_txs()
                while self._app.pending_count() < max_txs and time.monotonic() < deadline:
                    time.sleep(min(0.002, max(0.0, deadline - time.monotonic())))
                proposal = self._app.propose(max_txs, int(time.time() * 1000))
                if proposal is None:
                    continue
                header = proposal.block.header
                certificate = self.certify(block_hash(header), header.height)
                self._hand_over((proposal, certificate))
        except BaseException as exc:  # the orderer thread is a process boundary: log and stop
            log.exception("solo orderer stopped by an error")
            if self._on_fatal is not None:
                self._on_fatal(exc)
