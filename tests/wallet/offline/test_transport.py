"""The framed socket exchange and the text form of offline messages, on 127.0.0.1."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tally.wallet.offline.errors import OfflineMessageError
from tally.wallet.offline.transport import (
    MAX_FRAME_BYTES,
    OfflineFrameSizeError,
    OfflineTimeoutError,
    OfflineTransportError,
    message_bytes,
    parse_address,
    pay_over_socket,
    recv_frame,
    send_frame,
    serve_once,
    to_text,
)

HOST = "127.0.0.1"


@contextmanager
def payee(
    hello: bytes, on_payment: Callable[[bytes], bytes], timeout: float = 5.0
) -> Iterator[tuple[int, list[BaseException]]]:
    """Run `serve_once` in a thread on a free port; yields the port and its errors."""
    bound = threading.Event()
    port: list[int] = []
    errors: list[BaseException] = []

    def listening(address: tuple[str, int]) -> None:
        port.append(address[1])
        bound.set()

    def run() -> None:
        try:
            serve_once(HOST, 0, hello, on_payment, timeout, on_listening=listening)
        except Exception as exc:  # handed to the test to assert on
            errors.append(exc)
            bound.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert bound.wait(5)
    try:
        yield port[0] if port else 0, errors
    finally:
        thread.join(10)
        assert not thread.is_alive()


@contextmanager
def raw_server() -> Iterator[tuple[socket.socket, int]]:
    with socket.create_server((HOST, 0)) as server:
        yield server, server.getsockname()[1]


def test_one_payment_over_the_socket() -> None:
    seen: list[bytes] = []

    def on_payment(data: bytes) -> bytes:
        seen.append(data)
        return b"ack:" + data[-3:]

    def make_payment(hello: bytes) -> bytes:
        assert hello == b"hello-bytes"
        return b"payment for " + hello

    with payee(b"hello-bytes", on_payment) as (port, errors):
        answer = pay_over_socket(HOST, port, make_payment, timeout=5)
    assert errors == []
    assert seen == [b"payment for hello-bytes"]
    assert answer == b"ack:tes"


def test_a_large_frame_under_the_limit_goes_through() -> None:
    big = bytes(range(256)) * 4000  # about 1 MB, under 1 MiB

    with payee(b"h", lambda data: len(data).to_bytes(4, "big")) as (port, errors):
        answer = pay_over_socket(HOST, port, lambda _: big, timeout=5)
    assert errors == []
    assert int.from_bytes(answer, "big") == len(big)


def test_an_oversize_frame_is_refused_before_it_is_read() -> None:
    with raw_server() as (server, port):
        client = socket.create_connection((HOST, port))
        conn, _ = server.accept()
        with client, conn:
            conn.settimeout(2)
            client.sendall(struct.pack(">I", MAX_FRAME_BYTES + 1))
            with pytest.raises(OfflineFrameSizeError) as caught:
                recv_frame(conn, "payment")
            assert caught.value.code == "offline.frame_size"
            assert str(MAX_FRAME_BYTES) in caught.value.message
            with pytest.raises(OfflineFrameSizeError):
                send_frame(client, b"x" * (MAX_FRAME_BYTES + 1))


def test_the_payer_refuses_an_oversize_payment_and_the_payee_sees_it_close() -> None:
    with payee(b"h", lambda _: b"never") as (port, errors), pytest.raises(OfflineFrameSizeError):
        pay_over_socket(HOST, port, lambda _: b"x" * (MAX_FRAME_BYTES + 1), timeout=5)
    assert len(errors) == 1
    assert isinstance(errors[0], OfflineTransportError)
    assert "closed the connection before sending the payment" in str(errors[0])


def test_a_payee_closing_before_the_answer_is_reported() -> None:
    with raw_server() as (server, port):

        def hang_up() -> None:
            conn, _ = server.accept()
            with conn:
                send_frame(conn, b"hello")
                recv_frame(conn, "payment")  # then close without answering

        thread = threading.Thread(target=hang_up)
        thread.start()
        with pytest.raises(OfflineTransportError) as caught:
            pay_over_socket(HOST, port, lambda hello: hello + b"!", timeout=5)
        thread.join(5)
    assert caught.value.code == "offline.transport"
    assert "before sending the answer" in caught.value.message


def test_a_peer_closing_mid_frame_is_reported() -> None:
    with raw_server() as (server, port):
        client = socket.create_connection((HOST, port))
        conn, _ = server.accept()
        with conn:
            client.sendall(struct.pack(">I", 10) + b"abc")
            client.close()
            conn.settimeout(2)
            with pytest.raises(OfflineTransportError, match="before sending the hello"):
                recv_frame(conn, "hello")


def test_timeouts_on_both_sides() -> None:
    with pytest.raises(OfflineTimeoutError) as caught:
        serve_once(HOST, 0, b"h", lambda _: b"", timeout=0.2)
    assert caught.value.code == "offline.timeout"
    assert "no payer connected" in caught.value.message

    with raw_server() as (server, port):  # accepts (backlog) but never sends the hello
        with pytest.raises(OfflineTimeoutError, match="waiting for the hello"):
            pay_over_socket(HOST, port, lambda _: b"p", timeout=0.2)
        del server


def test_nothing_listening_is_reported_after_retrying() -> None:
    with raw_server() as (_, port):
        pass  # the port is free again
    with pytest.raises(OfflineTransportError, match="nothing listens on") as caught:
        pay_over_socket(HOST, port, lambda _: b"p", timeout=0.3)
    assert type(caught.value) is OfflineTransportError


def test_text_form_round_trips_and_raw_bytes_pass_through() -> None:
    data = bytes(range(256))
    text = to_text(data)
    assert text.startswith("tally-offline:")
    assert not set(text) & set("=+/")
    assert message_bytes(text.encode() + b"\n") == data
    assert message_bytes(data) == data
    with pytest.raises(OfflineMessageError, match="bad base64url"):
        message_bytes(b"tally-offline:not*base64")


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:7400") == ("127.0.0.1", 7400)
    assert parse_address("[::1]:80") == ("::1", 80)
    for bad in ("127.0.0.1", ":80", "host:0", "host:70000", "host:port"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_address(bad)
