"""Hashes: plain SHA-256 and BIP-340-style tagged SHA-256.

Every hash Tally takes of a protocol object is a *tagged* hash, so that two kinds of
object (a transaction body and a block header, say) can never share a hash even when their
encodings happen to be equal bytes:

    tagged_hash(tag, data) = SHA-256(SHA-256(tag) || SHA-256(tag) || data)

This is the construction of BIP-340. The 64-byte prefix fills exactly one SHA-256 block, so
the hash state after absorbing it can be computed once per tag and copied for every call;
`tagged_hash` is on the hot path (transaction ids, coin ids, Merkle nodes), so it does that.
"""

from __future__ import annotations

import hashlib

__all__ = ["tagged_hash", "sha256"]

# Hash states that have absorbed SHA-256(tag) || SHA-256(tag), one per tag seen. Tags are
# program constants, so the table stays small; the bound only guards against a caller that
# builds tags from data, which would otherwise grow it without limit.
_PREFIX_STATES: dict[str, hashlib._Hash] = {}
_MAX_CACHED_TAGS = 1024


def _prefix_state(tag: str) -> hashlib._Hash:
    """Build (and cache) a SHA-256 state that has absorbed SHA-256(tag) twice."""
    tag_digest = hashlib.sha256(tag.encode("utf-8")).digest()
    state = hashlib.sha256(tag_digest + tag_digest)
    if len(_PREFIX_STATES) < _MAX_CACHED_TAGS:
        # A race between threads only stores an equal state twice, which is harmless.
        _PREFIX_STATES[tag] = state
    return state


def tagged_hash(tag: str, data: bytes) -> bytes:
    """Hash `data` under the domain `tag`, as BIP-340 defines tagged hashes.

    Args:
        tag: The domain, such as ``"tally/tx"``; encoded as UTF-8.
        data: The bytes to hash, normally a canonical encoding.

    Returns:
        The 32-byte digest SHA-256(SHA-256(tag) || SHA-256(tag) || data).

    """
    state = _PREFIX_STATES.get(tag)
    if state is None:
        state = _prefix_state(tag)
    # copy() leaves the cached state untouched, so it can be shared between threads.
    hasher = state.copy()
    hasher.update(data)
    return hasher.digest()


def sha256(data: bytes) -> bytes:
    """Hash `data` with plain SHA-256.

    Args:
        data: The bytes to hash.

    Returns:
        The 32-byte SHA-256 digest.

    """
    return hashlib.sha256(data).digest()
