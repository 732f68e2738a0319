"""The machine's ceiling: Schnorr verifications per second on all cores.

A single-signature transaction cannot be committed faster than its signature can be
verified, so this is the figure every throughput result is divided by. libsecp256k1
releases the GIL inside verification, so a thread per core uses every core.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from tally.crypto.hashing import tagged_hash
from tally.crypto.schnorr import PrivateKey, verify

__all__ = ["signed_samples", "verify_rate"]


def signed_samples(count: int) -> list[tuple[bytes, bytes, bytes]]:
    """`count` distinct (public key, message, signature) triples from 64 fixed keys."""
    keys = [PrivateKey.from_bytes((i + 1).to_bytes(32, "big")) for i in range(64)]
    samples = []
    for i in range(count):
        key = keys[i % len(keys)]
        msg = tagged_hash("tally/bench", i.to_bytes(8, "big"))
        samples.append((key.public_key, msg, key.sign(msg)))
    return samples


def _verify_all(samples: list[tuple[bytes, bytes, bytes]]) -> int:
    ok = 0
    for public_key, msg, sig in samples:
        ok += verify(public_key, msg, sig)
    return ok


def verify_rate(samples: list[tuple[bytes, bytes, bytes]], threads: int | None = None) -> float:
    """Verifications per second over `samples`, split across `threads` (default: all cores)."""
    threads = threads or os.cpu_count() or 1
    chunks = [samples[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        started = time.perf_counter()
        verified = sum(pool.map(_verify_all, chunks))
        elapsed = time.perf_counter() - started
    if verified != len(samples):
        raise RuntimeError("a benchmark signature failed to verify")
    return len(samples) / elapsed
