"""Signature verification for the node: results cached between admission and execution.

Admission verifies every signature of a transaction once, on a worker thread (libsecp256k1
releases the GIL, so verifications on several threads run on several cores). Block
execution then asks the rules' `Verifier` again for the same triples; the cache answers
without a second verification. The cache only ever holds triples that verified, so a cache
hit gives the same answer verification would: the rules stay deterministic.
"""

from __future__ import annotations

import threading

from tally.crypto.schnorr import verify

__all__ = ["VerifyCache"]


class VerifyCache:
    """A bounded set of (key, message, signature) triples known to verify."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._ok: set[tuple[bytes, bytes, bytes]] = set()
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def verify(self, public_key: bytes, msg: bytes, signature: bytes) -> bool:
        """Verify, remembering a success for the block that will execute the transaction."""
        if not verify(public_key, msg, signature):
            return False
        with self._lock:
            if len(self._ok) >= self._max_entries:
                self._ok.clear()  # only costs re-verification; never a wrong answer
            self._ok.add((public_key, msg, signature))
        return True

    def verify_once(self, public_key: bytes, msg: bytes, signature: bytes) -> bool:
        """Verify for execution: a remembered success is used up, a miss verifies now."""
        triple = (public_key, msg, signature)
        with self._lock:
            if triple in self._ok:
                self._ok.discard(triple)
                self.hits += 1
                return True
        self.misses += 1
        return verify(public_key, msg, signature)
