"""QR codes of payment request URIs, for a terminal and as PNG images (through `segno`).

A `tally:` URI is a few hundred ASCII characters, so it is written in byte mode; `segno`
picks the smallest QR version that holds it at error correction level L and raises the
level while the version stays the same. Micro QR codes are never made: phone cameras do not
all read them.

The terminal rendering uses Unicode half blocks, two rows of modules per line of text. Light
modules (and the quiet zone) are drawn as blocks and dark modules are left blank, so the code
reads correctly on a terminal with a dark background, the common case; most phone scanners
also read the inverted code that a light background shows.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Final

import segno

__all__ = ["qr_code", "qr_terminal", "qr_png", "qr_png_bytes", "QUIET_ZONE"]

QUIET_ZONE: Final = 4
"""Modules of light border around the code, as the QR standard asks for."""
_ERROR_LEVEL: Final = "l"  # the lowest level; `boost_error` raises it when that costs nothing


def qr_code(text: str) -> segno.QRCode:
    """Encode `text` as a QR code (never a Micro QR code).

    Args:
        text: What the code carries, normally a `tally:` URI.

    Returns:
        The `segno.QRCode`; its `version` and `symbol_size()` tell its size.

    Raises:
        segno.DataOverflowError: `text` does not fit in the largest QR code (version 40).
    """
    return segno.make_qr(text, error=_ERROR_LEVEL, boost_error=True)


def qr_terminal(text: str, *, border: int = QUIET_ZONE) -> str:
    """Render `text` as a QR code made of block characters, to print in a terminal.

    Args:
        text: What the code carries, normally a `tally:` URI.
        border: Modules of quiet zone around the code.

    Returns:
        Lines of `█`, `▀`, `▄` and spaces, each ending in a newline: one character per
        module across, two modules per line down.

    Raises:
        segno.DataOverflowError: `text` does not fit in a QR code.
    """
    out = io.StringIO()
    qr_code(text).terminal(out=out, border=border, compact=True)
    return out.getvalue()


def qr_png_bytes(text: str, *, scale: int = 6) -> bytes:
    """Render `text` as a QR code in a PNG image.

    Args:
        text: What the code carries, normally a `tally:` URI.
        scale: Pixels per module (at least 1).

    Returns:
        The PNG file's bytes: a black code on white with a 4-module quiet zone.

    Raises:
        segno.DataOverflowError: `text` does not fit in a QR code.
        ValueError: `scale` is less than 1.
    """
    if scale < 1:
        raise ValueError(f"scale must be at least 1 pixel per module, got {scale}")
    out = io.BytesIO()
    qr_code(text).save(out, kind="png", scale=scale, border=QUIET_ZONE)
    return out.getvalue()


def qr_png(text: str, path: Path, scale: int = 6) -> Path:
    """Write `text` as a QR code to a PNG file.

    Args:
        text: What the code carries, normally a `tally:` URI.
        path: The file to write; replaced if it exists.
        scale: Pixels per module (at least 1).

    Returns:
        `path`.

    Raises:
        segno.DataOverflowError: `text` does not fit in a QR code.
        ValueError: `scale` is less than 1.
        OSError: the file cannot be written.
    """
    path.write_bytes(qr_png_bytes(text, scale=scale))
    return path
