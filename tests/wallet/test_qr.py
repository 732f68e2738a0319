"""QR codes of payment requests: the terminal rendering and the PNG image."""

from __future__ import annotations

import struct
import zlib

import pytest
import segno

from tally.crypto import PrivateKey
from tally.wallet.payment_request import new_request, sign_request, to_uri
from tally.wallet.qr import QUIET_ZONE, qr_code, qr_png, qr_png_bytes, qr_terminal

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BLOCKS = {"█", "▀", "▄", " "}


def payment_uri(memo: str = "order 42") -> str:
    merchant = PrivateKey.generate(b"merchant".ljust(32, b"\x00"))
    payee = PrivateKey.generate(b"payee".ljust(32, b"\x00")).public_key
    req = new_request(
        chain_id="tally-dev",
        payee=payee,
        asset="CNY",
        amount=12_000,
        memo=memo,
        expires_ms=1_700_000_060_000,
        merchant=merchant.public_key,
        nonce=bytes(16),
    )
    return to_uri(sign_request(req, merchant), "tly")


def modules_across(version: int, border: int = QUIET_ZONE) -> int:
    """Width of a QR code of `version` in modules, quiet zone included."""
    return 17 + 4 * version + 2 * border


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


def terminal_matrix(rendering: str) -> list[list[int]]:
    """Read the dark (1) and light (0) modules back from a compact terminal rendering."""
    rows: list[list[int]] = []
    for line in rendering.splitlines():
        rows.append([1 if char in " ▄" else 0 for char in line])  # top half dark
        rows.append([1 if char in " ▀" else 0 for char in line])  # bottom half dark
    return rows


def test_a_payment_uri_makes_a_qr_code_not_a_micro_code():
    code = qr_code(payment_uri())
    assert not code.is_micro
    assert isinstance(code.version, int)
    assert 1 <= code.version <= 20
    assert code.error in {"L", "M", "Q", "H"}


@pytest.mark.parametrize("text", ["tally:x", payment_uri(), payment_uri("咖啡 " * 40)])
def test_terminal_rendering_has_one_line_per_two_module_rows(text):
    rendering = qr_terminal(text)
    version = qr_code(text).version
    size = modules_across(version)
    lines = rendering.splitlines()
    assert rendering.endswith("\n")
    assert len(lines) == (size + 1) // 2
    assert all(len(line) == size for line in lines)
    assert set(rendering) <= BLOCKS | {"\n"}


def test_terminal_rendering_shows_exactly_the_modules_of_the_code():
    text = payment_uri()
    code = qr_code(text)
    expected = [list(row) for row in code.matrix_iter(border=QUIET_ZONE)]
    rows = terminal_matrix(qr_terminal(text))
    size = modules_across(code.version)
    # An odd number of module rows leaves the last line's bottom half blank (read as dark).
    assert rows[:size] == expected
    assert all(row == [1] * size for row in rows[size:])


def test_terminal_rendering_draws_the_quiet_zone_as_light_blocks():
    lines = qr_terminal(payment_uri()).splitlines()
    assert lines[0] == "█" * len(lines[0])
    assert all(line.startswith("████") and line.endswith("████") for line in lines[:-1])


def test_terminal_rendering_border_can_be_narrowed():
    text = payment_uri()
    version = qr_code(text).version
    lines = qr_terminal(text, border=2).splitlines()
    assert len(lines[0]) == modules_across(version, border=2)


def test_png_has_the_png_signature_and_the_size_of_the_code():
    text = payment_uri()
    data = qr_png_bytes(text, scale=3)
    assert data.startswith(PNG_SIGNATURE)
    chunks = png_chunks(data)
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1][0] == b"IEND"
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert width == height == 3 * modules_across(qr_code(text).version)
    assert 100 < len(data) < 50_000


def test_png_pixels_carry_the_modules_of_the_code():
    text = "tally:x"
    data = qr_png_bytes(text, scale=1)
    chunks = png_chunks(data)
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, colour) == (1, 0)  # one bit per pixel, grayscale: 0 is black
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = 1 + (width + 7) // 8
    pixels = []
    for y in range(height):
        line = raw[y * stride : (y + 1) * stride]
        assert line[0] == 0  # no filter
        bits = "".join(f"{byte:08b}" for byte in line[1:])[:width]
        pixels.append([1 - int(bit) for bit in bits])  # dark module = black = 0 bit
    assert pixels == [list(row) for row in qr_code(text).matrix_iter(border=QUIET_ZONE)]


def test_png_scale_multiplies_the_size():
    text = payment_uri()
    sizes = []
    for scale in (1, 6):
        ihdr = png_chunks(qr_png_bytes(text, scale=scale))[0][1]
        sizes.append(struct.unpack(">I", ihdr[:4])[0])
    assert sizes[1] == 6 * sizes[0]


def test_png_refuses_a_scale_below_one():
    with pytest.raises(ValueError, match="scale"):
        qr_png_bytes("tally:x", scale=0)


def test_qr_png_writes_the_file_and_returns_its_path(tmp_path):
    text = payment_uri()
    path = tmp_path / "request.png"
    assert qr_png(text, path) == path
    assert path.read_bytes() == qr_png_bytes(text)
    ihdr = png_chunks(path.read_bytes())[0][1]
    assert struct.unpack(">I", ihdr[:4])[0] == 6 * modules_across(qr_code(text).version)


def test_text_too_long_for_any_qr_code_is_refused():
    with pytest.raises(segno.DataOverflowError):
        qr_terminal("x" * 3000)
