"""Key files: one secret key per file, JSON, readable by its owner alone (mode 0600)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tally.crypto.schnorr import PrivateKey

__all__ = ["write_key", "write_secret", "read_key", "new_key", "KeyFileError"]


class KeyFileError(Exception):
    """A key file is missing, unreadable or not a Tally key."""


def new_key() -> PrivateKey:
    """A fresh key from the operating system's randomness."""
    return PrivateKey.generate(os.urandom(32))


def write_key(path: Path, key: PrivateKey, *, label: str = "") -> None:
    """Write `key` to `path`, created with mode 0600; refuses to overwrite an existing file."""
    document = {
        "kind": "tally-key",
        "label": label,
        "public_key": key.public_key.hex(),
        "secret_key": key.to_bytes().hex(),
    }
    write_secret(path, (json.dumps(document, indent=2) + "\n").encode())


def write_secret(path: Path, data: bytes) -> None:
    """Write a secret file (a key) with mode 0600; refuses to overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: a key file is never silently replaced, which would lose the old key's money.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def read_key(path: Path) -> PrivateKey:
    """Read a key file written by `write_key`.

    Raises:
        KeyFileError: missing, unreadable, or not a Tally key file.
    """
    try:
        document = json.loads(Path(path).read_text())
        if document.get("kind") != "tally-key":
            raise KeyFileError(f"{path} is not a Tally key file")
        return PrivateKey.from_bytes(bytes.fromhex(document["secret_key"]))
    except KeyFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from None
