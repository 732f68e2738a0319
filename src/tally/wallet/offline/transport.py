"""Carry offline messages between two devices: a framed TCP exchange, and a text form.

The messages of `tally.wallet.offline.messages` are transport-neutral bytes. Two ways to
carry them besides files live here:

- A socket, normally on loopback: one connection per payment, and on it three frames, each
  a 4-byte big-endian length and then that many bytes. The payee (`serve_once`) accepts
  one payer, sends its hello, reads the payment, and answers with what its `on_payment`
  returns (its verdict); the payer (`pay_over_socket`) connects, reads the hello, sends the
  payment it builds from it, and returns the answer. A frame over `MAX_FRAME_BYTES` is
  refused before it is read, and every wait has a timeout.
- A text form for QR codes and copy-paste: `tally-offline:` followed by the bytes in
  unpadded base64url. `message_bytes` reads either the raw bytes or the text form, so that
  a scanned code can be fed back where a file is read.
"""

from __future__ import annotations

import base64
import binascii
import socket
import struct
import time
from collections.abc import Callable
from typing import Final

from tally.wallet.offline.errors import OfflineError, OfflineMessageError
from tally.wallet.offline.messages import MAX_MESSAGE_BYTES

__all__ = [
    "MAX_FRAME_BYTES",
    "DEFAULT_TIMEOUT",
    "TEXT_PREFIX",
    "OfflineTransportError",
    "OfflineTimeoutError",
    "OfflineFrameSizeError",
    "send_frame",
    "recv_frame",
    "serve_once",
    "pay_over_socket",
    "parse_address",
    "to_text",
    "message_bytes",
]

MAX_FRAME_BYTES: Final = MAX_MESSAGE_BYTES
"""The largest frame either side sends or reads (1 MiB, the largest offline message)."""
DEFAULT_TIMEOUT: Final = 30.0
"""Seconds to wait for a peer, for each step of the exchange."""
TEXT_PREFIX: Final = "tally-offline:"
"""What the text form of a message starts with."""

_LENGTH: Final = struct.Struct(">I")
_RETRY_DELAY: Final = 0.05


class OfflineTransportError(OfflineError):
    """The exchange with the other device failed: refused, closed early, or not answered."""

    code = "offline.transport"


class OfflineTimeoutError(OfflineTransportError):
    """The other device did not connect or answer in time."""

    code = "offline.timeout"


class OfflineFrameSizeError(OfflineTransportError):
    """A frame longer than `MAX_FRAME_BYTES`, refused without reading it."""

    code = "offline.frame_size"


def _check_size(size: int) -> None:
    if size > MAX_FRAME_BYTES:
        raise OfflineFrameSizeError(
            f"a frame is at most {MAX_FRAME_BYTES} bytes, got {size}",
            size=size,
            limit=MAX_FRAME_BYTES,
        )


def send_frame(sock: socket.socket, data: bytes) -> None:
    """Send `data` as one frame: its 4-byte big-endian length, then the bytes.

    Raises:
        OfflineFrameSizeError: `data` is longer than `MAX_FRAME_BYTES`.
        OfflineTimeoutError: the peer did not take the bytes in time.
        OfflineTransportError: the connection broke.
    """
    _check_size(len(data))
    try:
        sock.sendall(_LENGTH.pack(len(data)) + data)
    except TimeoutError:
        raise OfflineTimeoutError("timed out sending to the other device") from None
    except OSError as exc:
        raise OfflineTransportError(f"cannot send to the other device: {exc}") from None


def _recv_exactly(sock: socket.socket, size: int, what: str) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left:
        try:
            chunk = sock.recv(min(left, 65536))
        except TimeoutError:
            raise OfflineTimeoutError(f"timed out waiting for the {what}") from None
        except OSError as exc:
            raise OfflineTransportError(f"cannot read the {what}: {exc}") from None
        if not chunk:
            raise OfflineTransportError(
                f"the other device closed the connection before sending the {what}"
            )
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket, what: str = "message") -> bytes:
    """Read one frame; `what` names it in errors ("hello", "payment", "answer").

    Raises:
        OfflineFrameSizeError: the announced length is over `MAX_FRAME_BYTES`.
        OfflineTimeoutError: the peer sent nothing in time.
        OfflineTransportError: the peer closed the connection before the whole frame.
    """
    (size,) = _LENGTH.unpack(_recv_exactly(sock, _LENGTH.size, what))
    _check_size(size)
    return _recv_exactly(sock, size, what)


def serve_once(
    host: str,
    port: int,
    hello: bytes,
    on_payment: Callable[[bytes], bytes],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    on_listening: Callable[[tuple[str, int]], None] | None = None,
) -> None:
    """The payee's side: serve one payer, then close.

    Args:
        host: The address to listen on (`127.0.0.1` for loopback).
        port: The port (0 picks a free one; `on_listening` tells which).
        hello: The payee's encoded hello, sent first.
        on_payment: Called with the payment's bytes; returns the answer to send back (it
            verifies the payment and says how that went; it should not raise).
        timeout: Seconds to wait for the payer to connect, and for each frame.
        on_listening: Called with the bound address once the socket listens.

    Raises:
        OfflineTimeoutError: no payer connected, or it sent nothing, in time.
        OfflineTransportError: the socket cannot listen, or the payer broke off.
        OfflineFrameSizeError: the payer announced a frame over the limit.
    """
    try:
        server = socket.create_server((host, port))
    except OSError as exc:
        raise OfflineTransportError(f"cannot listen on {host}:{port}: {exc}") from None
    with server:
        server.settimeout(timeout)
        if on_listening is not None:
            bound = server.getsockname()
            on_listening((str(bound[0]), int(bound[1])))
        try:
            conn, _ = server.accept()
        except TimeoutError:
            raise OfflineTimeoutError(
                f"no payer connected to {host}:{port} within {timeout:g} s"
            ) from None
    with conn:
        conn.settimeout(timeout)
        send_frame(conn, hello)
        payment = recv_frame(conn, "payment")
        send_frame(conn, on_payment(payment))


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    """Connect, retrying a refused connection until `timeout` (the payee may start later)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            return socket.create_connection((host, port), timeout=max(left, 0.01))
        except ConnectionRefusedError:
            if left <= _RETRY_DELAY:
                raise OfflineTransportError(
                    f"nothing listens on {host}:{port} (waited {timeout:g} s)"
                ) from None
            time.sleep(_RETRY_DELAY)
        except TimeoutError:
            raise OfflineTimeoutError(f"cannot connect to {host}:{port} in time") from None
        except OSError as exc:
            raise OfflineTransportError(f"cannot connect to {host}:{port}: {exc}") from None


def pay_over_socket(
    host: str,
    port: int,
    make_payment: Callable[[bytes], bytes],
    timeout: float = DEFAULT_TIMEOUT,
) -> bytes:
    """The payer's side: get the payee's hello, send the payment made from it, get the answer.

    Args:
        host: The payee's address.
        port: The payee's port.
        make_payment: Called with the hello's bytes; returns the encoded payment (it may
            raise to refuse the hello, and then nothing is sent and the connection closes).
        timeout: Seconds to wait for the connection and for each frame.

    Returns:
        The payee's answer, as its `on_payment` made it.

    Raises:
        OfflineTimeoutError: the payee did not accept or answer in time.
        OfflineTransportError: nothing listens there, or the payee broke off.
        OfflineFrameSizeError: a frame over the limit, either way.
    """
    with _connect(host, port, timeout) as conn:
        conn.settimeout(timeout)
        hello = recv_frame(conn, "hello")
        send_frame(conn, make_payment(hello))
        return recv_frame(conn, "answer")


def parse_address(text: str) -> tuple[str, int]:
    """Read `HOST:PORT` (`[::1]:PORT` for an IPv6 host).

    Raises:
        ValueError: no port, or not a port number from 1 to 65535.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected HOST:PORT (like 127.0.0.1:7400), got {text!r}")
    return host.removeprefix("[").removesuffix("]"), int(port_text)


def to_text(data: bytes) -> str:
    """The text form of a message: `tally-offline:` and unpadded base64url."""
    return TEXT_PREFIX + base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def message_bytes(data: bytes) -> bytes:
    """The message in `data`, which holds either its raw bytes or its text form.

    Surrounding whitespace around the text form (a trailing newline) is ignored.

    Raises:
        OfflineMessageError: text that starts with the prefix but is not base64url.
    """
    text = data.strip()
    prefix = TEXT_PREFIX.encode("ascii")
    if not text.startswith(prefix):
        return data
    body = text[len(prefix) :]
    try:
        return base64.b64decode(body + b"=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise OfflineMessageError(
            "not the text form of an offline message (bad base64url)"
        ) from None
