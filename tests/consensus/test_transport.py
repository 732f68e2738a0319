"""The peer transport: real mutual-TLS links on 127.0.0.1, refusals, reconnects and faults."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from tally.consensus.membership import MemberIdentity, is_member
from tally.consensus.transport import MAX_FRAME_BYTES, FaultLayer, FaultRules, PeerTransport
from tests.consensus.conftest import NAMES, Consortium
from tests.node.harness import free_port

TIMEOUT_S = 5.0
TRANSPORT_LOG = "tally.consensus.transport"


def wait_until(predicate: Callable[[], object], what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


@dataclass
class Peer:
    """One transport and what it has received."""

    transport: PeerTransport
    received: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def payloads(self, sender: str) -> list[bytes]:
        with self.lock:
            return [payload for name, payload in self.received if name == sender]

    def count(self) -> int:
        with self.lock:
            return len(self.received)


class Network:
    """Transports for the consortium's members on free loopback ports; stops them all."""

    def __init__(self, consortium: Consortium) -> None:
        self.consortium = consortium
        self.addresses = {name: ("127.0.0.1", free_port()) for name in NAMES}
        self.peers: dict[str, Peer] = {}
        self.started: list[PeerTransport] = []

    def make(
        self,
        name: str,
        *,
        files: tuple[Path, Path] | None = None,
        root_der: bytes | None = None,
        authorize: Callable[[MemberIdentity], bool] | None = None,
        faults: FaultLayer | None = None,
        peers: tuple[str, ...] = NAMES,
        start: bool = True,
        **kwargs,
    ) -> Peer:
        cert_file, key_file = files or self.consortium.files[name]
        members = self.consortium.members
        received: list[tuple[str, bytes]] = []
        lock = threading.Lock()

        def on_message(sender: str, payload: bytes) -> None:
            with lock:
                received.append((sender, payload))

        transport = PeerTransport(
            name=name,
            listen=self.addresses[name],
            peers={peer: self.addresses[peer] for peer in peers},
            cert_file=cert_file,
            key_file=key_file,
            root_der=root_der or self.consortium.root_der,
            authorize=authorize or (lambda identity: is_member(identity, members)),
            on_message=on_message,
            faults=faults,
            **kwargs,
        )
        peer = Peer(transport, received, lock)
        self.peers[name] = peer
        if start:
            self.start(peer)
        return peer

    def start(self, peer: Peer) -> None:
        peer.transport.start()
        self.started.append(peer.transport)

    def stop(self) -> None:
        for transport in self.started:
            transport.stop()


@pytest.fixture
def network(consortium: Consortium) -> Iterator[Network]:
    net = Network(consortium)
    yield net
    net.stop()


def log_has(caplog: pytest.LogCaptureFixture, *parts: str) -> bool:
    return any(
        all(part in record.getMessage() for part in parts)
        for record in list(caplog.records)
        if record.name == TRANSPORT_LOG
    )


def test_four_transports_deliver_broadcasts_in_order_per_link(network: Network) -> None:
    peers = [network.make(name) for name in NAMES]
    for index in range(50):
        for name, peer in zip(NAMES, peers, strict=True):
            peer.transport.broadcast(f"{name}:{index}".encode())
    wait_until(lambda: all(peer.count() == 150 for peer in peers), "every broadcast arrives")
    for receiver, peer in zip(NAMES, peers, strict=True):
        for sender in NAMES:
            expected = [] if sender == receiver else [f"{sender}:{i}".encode() for i in range(50)]
            assert peer.payloads(sender) == expected
    wait_until(
        lambda: all(
            sorted(p.transport.connected()) == sorted(set(NAMES) - {n})
            for n, p in zip(NAMES, peers, strict=True)
        ),
        "every link is up",
    )


def test_a_peer_with_a_certificate_from_another_root_cannot_connect(
    network: Network, foreign: Consortium, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=TRANSPORT_LOG)
    node0 = network.make("node0", peers=("node0", "node1", "node2"))
    node1 = network.make("node1", peers=("node0", "node1"))
    # The intruder trusts our root, so its side of the handshake succeeds; ours must not.
    intruder = network.make("node2", files=foreign.files["node2"], peers=("node0", "node2"))
    intruder.transport.send("node0", b"let me in")
    node1.transport.send("node0", b"hello")
    wait_until(lambda: node0.payloads("node1") == [b"hello"], "node1's message arrives")
    wait_until(lambda: log_has(caplog, "refused a peer", "TLS handshake failed"), "refusal logged")
    wait_until(lambda: log_has(caplog, "cannot link to node2"), "node0 refuses to link to it")
    assert node0.payloads("node2") == []
    assert "node2" not in node0.transport.connected()
    assert intruder.transport.connected() == []


def test_a_revoked_member_is_cut_off_and_its_later_messages_are_not_delivered(
    network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRANSPORT_LOG)
    in_force = {"node0", "node1"}
    node0 = network.make(
        "node0", peers=("node0", "node1"), authorize=lambda identity: identity.name in in_force
    )
    node1 = network.make("node1", peers=("node0", "node1"))
    node1.transport.send("node0", b"before")
    wait_until(lambda: node0.payloads("node1") == [b"before"], "the member's message arrives")
    wait_until(lambda: node0.transport.connected() == ["node1"], "node0 links to node1")

    in_force.discard("node1")
    node0.transport.recheck()
    assert node0.transport.connected() == []
    node1.transport.send("node0", b"after")
    wait_until(
        lambda: log_has(caplog, "node0 refused us: member.unknown"), "node1 is refused on redial"
    )
    node1.transport.send("node0", b"after again")
    refusals = sum("refused 'node1'" in r.getMessage() for r in caplog.records)
    wait_until(
        lambda: sum("refused 'node1'" in r.getMessage() for r in caplog.records) > refusals,
        "node1 is refused once more",
    )
    assert node0.payloads("node1") == [b"before"]
    assert node0.transport.connected() == []


def test_a_peer_claiming_another_name_is_refused(
    network: Network, consortium: Consortium, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=TRANSPORT_LOG)
    node0 = network.make("node0", peers=("node0", "node1"))
    impostor = network.make("node1", files=consortium.files["node2"], peers=("node0", "node1"))
    impostor.transport.send("node0", b"I am node1")
    wait_until(lambda: log_has(caplog, "refused 'node1'", "member.mismatch"), "mismatch refused")
    # node0 dials node1's address and finds node2's certificate there.
    wait_until(lambda: log_has(caplog, "cannot link to node1", "node2"), "node0 refuses it too")
    assert node0.received == []
    assert node0.transport.connected() == []
    assert impostor.transport.connected() == []


def test_a_link_comes_back_after_the_peer_restarts(network: Network) -> None:
    node0 = network.make("node0", peers=("node0", "node1"))
    node1 = network.make("node1", peers=("node0", "node1"))
    node1.transport.send("node0", b"first")
    wait_until(lambda: node0.payloads("node1") == [b"first"], "first message")
    node0.transport.stop()
    wait_until(lambda: node1.transport.connected() == [], "node1 notices node0 left", 3.0)

    again = network.make("node0", peers=("node0", "node1"))
    node1.transport.send("node0", b"second")
    wait_until(lambda: again.payloads("node1") == [b"second"], "the message after the restart")
    wait_until(lambda: node1.transport.connected() == ["node0"], "node1 linked again")
    again.transport.send("node1", b"back")
    wait_until(lambda: node1.payloads("node0") == [b"back"], "node0's link to node1 is back")


def test_messages_wait_for_a_peer_that_is_not_up_yet_and_the_queue_drops_the_oldest(
    network: Network,
) -> None:
    node0 = network.make("node0", peers=("node0", "node1"), max_queue=3)
    for index in range(5):
        node0.transport.send("node1", b"m%d" % index)
    node1 = network.make("node1", peers=("node0", "node1"))
    wait_until(lambda: node1.count() == 3, "the queued messages arrive")
    assert node1.payloads("node0") == [b"m2", b"m3", b"m4"]


def raw_link(network: Network, consortium: Consortium, files: str) -> ssl.SSLSocket:
    """A TLS link to node0 with `files`' certificate, driven by hand."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=consortium.root_der)
    cert_file, key_file = consortium.files[files]
    context.load_cert_chain(cert_file, key_file)
    context.check_hostname = False
    raw = socket.create_connection(network.addresses["node0"], timeout=TIMEOUT_S)
    return context.wrap_socket(raw)


def send_frame(link: ssl.SSLSocket, payload: bytes) -> None:
    link.sendall(len(payload).to_bytes(4, "big") + payload)


def read_frame(link: ssl.SSLSocket) -> object:
    size = int.from_bytes(link.recv(4), "big")
    return msgspec.msgpack.decode(link.recv(size))


def test_a_bad_frame_closes_the_link(network: Network, consortium: Consortium) -> None:
    node0 = network.make("node0", peers=("node0", "node1"))
    with raw_link(network, consortium, "node1") as link:
        send_frame(link, msgspec.msgpack.encode([1, "node1"]))
        assert read_frame(link) == ["ok", ""]
        send_frame(link, b"fine")
        link.sendall((MAX_FRAME_BYTES + 1).to_bytes(4, "big") + b"too long")
        assert link.recv(1) == b""  # node0 closed the link
    assert node0.payloads("node1") == [b"fine"]


def test_a_hello_of_another_protocol_version_is_refused(
    network: Network, consortium: Consortium
) -> None:
    node0 = network.make("node0", peers=("node0", "node1"))
    with raw_link(network, consortium, "node1") as link:
        send_frame(link, msgspec.msgpack.encode([2, "node1"]))
        assert read_frame(link) == ["protocol.version", "we speak version 1, not 2"]
        assert link.recv(1) == b""
    with raw_link(network, consortium, "node1") as link:
        send_frame(link, b"\xc1" * 5000)  # longer than any hello may be
        assert link.recv(1) == b""
    assert node0.received == []


def test_send_refuses_unknown_peers_and_oversized_messages(network: Network) -> None:
    node0 = network.make("node0", peers=("node0", "node1"), start=False)
    with pytest.raises(KeyError):
        node0.transport.send("node7", b"x")
    with pytest.raises(KeyError):
        node0.transport.send("node0", b"to myself")
    with pytest.raises(ValueError, match="over"):
        node0.transport.send("node1", bytes(MAX_FRAME_BYTES + 1))


# Faults


def linked_pair(network: Network, faults: FaultLayer) -> tuple[Peer, Peer]:
    node0 = network.make("node0", peers=("node0", "node1", "node2"), faults=faults)
    node1 = network.make("node1", peers=("node0", "node1"))
    wait_until(lambda: "node1" in node0.transport.connected(), "node0 links to node1")
    return node0, node1


def test_a_blocked_peer_gets_nothing_and_is_not_heard(network: Network) -> None:
    faults = FaultLayer(FaultRules(blocked=["node1"]))
    node0, node1 = linked_pair(network, faults)
    node2 = network.make("node2", peers=("node0", "node1", "node2"))
    node0.transport.broadcast(b"to all")
    node1.transport.send("node0", b"from node1")
    wait_until(lambda: node2.payloads("node0") == [b"to all"], "node2 hears node0")
    wait_until(lambda: faults.discarded == 1, "node1's message is discarded")
    assert faults.dropped == 1
    assert node1.received == []
    assert node0.payloads("node1") == []

    faults.heal()
    node1.transport.send("node0", b"healed")
    node0.transport.send("node1", b"healed too")
    wait_until(lambda: node0.payloads("node1") == [b"healed"], "node1 is heard again")
    wait_until(lambda: node1.payloads("node0") == [b"healed too"], "node1 gets messages again")


def test_drop_one_drops_everything(network: Network) -> None:
    faults = FaultLayer(FaultRules(drop=1.0, seed=3))
    node0, node1 = linked_pair(network, faults)
    for index in range(20):
        node0.transport.send("node1", b"lost %d" % index)
    assert faults.dropped == 20
    faults.heal()
    node0.transport.send("node1", b"marker")
    wait_until(lambda: node1.count() == 1, "the marker arrives")
    assert node1.payloads("node0") == [b"marker"]  # and nothing before it on this link


def test_duplicate_one_delivers_every_message_twice(network: Network) -> None:
    faults = FaultLayer(FaultRules(duplicate=1.0))
    node0, node1 = linked_pair(network, faults)
    for index in range(5):
        node0.transport.send("node1", b"d%d" % index)
    wait_until(lambda: node1.count() == 10, "both copies arrive")
    assert node1.payloads("node0") == [b"d%d" % (i // 2) for i in range(10)]


def test_delay_holds_a_message_back_at_least_that_long(network: Network) -> None:
    faults = FaultLayer(FaultRules(delay_ms=150, jitter_ms=20))
    node0, node1 = linked_pair(network, faults)
    sent = time.monotonic()
    node0.transport.send("node1", b"late")
    wait_until(lambda: node1.count() == 1, "the delayed message arrives")
    assert time.monotonic() - sent >= 0.150


def test_reorder_swaps_a_message_with_the_next(network: Network) -> None:
    faults = FaultLayer(FaultRules(reorder=1.0))
    node0, node1 = linked_pair(network, faults)
    for index in range(4):
        node0.transport.send("node1", b"r%d" % index)
    node0.transport.send("node1", b"last")  # held, then sent alone when nothing overtakes it
    wait_until(lambda: node1.count() == 5, "every message arrives")
    assert node1.payloads("node0") == [b"r1", b"r0", b"r3", b"r2", b"last"]


def test_the_drop_pattern_is_determined_by_the_seed(network: Network) -> None:
    rules = FaultRules(drop=0.5, seed=42)

    def pattern(layer: FaultLayer) -> list[bool]:
        return [not layer.plan("node1").delays_s for _ in range(64)]

    expected = pattern(FaultLayer(rules))
    assert expected == pattern(FaultLayer(rules))
    assert 10 < sum(expected) < 54
    assert expected != pattern(FaultLayer(msgspec.structs.replace(rules, seed=43)))
    # The other rules draw from the same numbers, so they do not shift which messages drop.
    assert expected == pattern(FaultLayer(msgspec.structs.replace(rules, duplicate=0.3)))

    node0, node1 = linked_pair(network, FaultLayer(rules))
    for index in range(64):
        node0.transport.send("node1", b"%d" % index)
    node0.transport.faults.heal()  # type: ignore[union-attr]
    node0.transport.send("node1", b"end")
    wait_until(lambda: node1.payloads("node0")[-1:] == [b"end"], "the end marker arrives")
    kept = [b"%d" % index for index, dropped in enumerate(expected) if not dropped]
    assert node1.payloads("node0") == [*kept, b"end"]


def test_fault_rules_are_posted_as_json_and_checked() -> None:
    rules = msgspec.json.decode(
        b'{"drop": 0.25, "delay_ms": 5, "blocked": ["node2"], "seed": 9}', type=FaultRules
    )
    assert rules == FaultRules(drop=0.25, delay_ms=5, blocked=["node2"], seed=9)
    assert FaultRules(seed=5).is_none()
    assert not rules.is_none()
    with pytest.raises(msgspec.ValidationError, match="drop"):
        msgspec.json.decode(b'{"drop": 1.5}', type=FaultRules)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"dorp": 0.5}', type=FaultRules)
    with pytest.raises(ValueError, match="probability"):
        FaultRules(duplicate=-0.1)


def test_stop_ends_every_thread_even_while_a_peer_hangs_in_the_handshake(
    network: Network,
) -> None:
    before = set(threading.enumerate())
    with socket.create_server(network.addresses["node2"]):  # accepts TCP, never speaks TLS
        node0 = network.make("node0", peers=("node0", "node1", "node2"))
        node1 = network.make("node1", peers=("node0", "node1"))
        node1.transport.send("node0", b"x")
        wait_until(lambda: node0.payloads("node1") == [b"x"], "node0 hears node1")
        wait_until(lambda: node0.transport.connected() == ["node1"], "node0 links to node1")
        started = time.monotonic()
        node0.transport.stop()
        node1.transport.stop()
        assert time.monotonic() - started < 1.0
    wait_until(lambda: set(threading.enumerate()) <= before, "every transport thread ends", 1.0)
