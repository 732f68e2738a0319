"""The wire between consensus nodes: length-framed messages over mutual TLS, on threads.

Each node listens for its peers and dials each of them once. Messages to peer X travel over
our outgoing link to X; messages from X arrive on X's outgoing link to us. Both ends present
their member certificate (issued under the consortium root in genesis) and check the other's:
it must chain to the root, name the member the link is for, and be accepted by `authorize`
(a member in force). A peer that fails any check is logged with the reason and disconnected,
and nothing it sent is delivered.

On a link, after the TLS handshake, the dialling side sends one hello frame with its name; the
listening side answers with one frame, `ok` or the rejection code, and from then on only the
dialling side writes. A frame is a 4-byte big-endian length and that many bytes of payload, at
most `MAX_FRAME_BYTES`; a bad frame closes its link. Sending never blocks the caller: every
peer has a bounded queue drained by its own sender thread, which reconnects with backoff
(50 ms doubling to 1 s) and keeps what it could not send for the next link.

`FaultLayer` stands between the node and the wire in tests: it drops, delays, duplicates and
reorders outgoing messages, and partitions the node from chosen peers, deterministically
given its seed and the sequence of sends.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import msgspec

from tally.consensus.membership import (
    MemberIdentity,
    MembershipError,
    UnknownMemberError,
    UntrustedMemberError,
    verify_member_certificate,
)

__all__ = [
    "MAX_FRAME_BYTES",
    "FaultRules",
    "FaultLayer",
    "PeerTransport",
]

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024 * 1024
"""The largest payload one frame carries; a longer length prefix closes the link."""

PROTOCOL_VERSION = 1
"""The version a hello carries; a peer speaking another is refused."""

_HANDSHAKE_TIMEOUT_S = 5.0
"""How long a TLS handshake, the hello and its answer may take."""
_SEND_TIMEOUT_S = 10.0
"""How long one write may stall before the link counts as dead."""
_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 1.0
_REORDER_HOLD_S = 0.2
"""How long a message picked for reordering waits for a next message to overtake it."""
_JOIN_TIMEOUT_S = 2.0
_LIVENESS_S = 0.25
"""How often an idle outgoing link checks that the peer has not closed it."""
_OK = "ok"
_VERSION_REFUSED = "protocol.version"
"""The answer's code for a hello of another protocol version."""
_HANDSHAKE_FRAME_BYTES = 4096
"""The most a hello or an answer may take: a peer not yet admitted sends no more."""
_QUIET_ERRORS = (
    ConnectionRefusedError,
    ConnectionResetError,
    ConnectionAbortedError,
    TimeoutError,
)
"""Failures to dial a peer that is simply down or restarting: logged at debug level."""


class _Hello(msgspec.Struct, frozen=True, array_like=True):
    """The dialling side's first frame."""

    version: int
    """`PROTOCOL_VERSION` of the dialling side."""
    name: str
    """The member the dialling side says it is; its certificate must agree."""


class _Answer(msgspec.Struct, frozen=True, array_like=True):
    """The listening side's one frame: whether it accepts the link."""

    code: str
    """`ok`, or the rejection code of the refusal."""
    message: str
    """Why, for the dialling side's log."""


_Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_Milliseconds = Annotated[int, msgspec.Meta(ge=0)]


class FaultRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Faults a node injects on its own links (tests only); every field defaults to none."""

    drop: _Probability = 0.0
    """Probability that an outgoing message is dropped."""
    delay_ms: _Milliseconds = 0
    """Delay added to every outgoing message."""
    jitter_ms: _Milliseconds = 0
    """Up to this much more delay, drawn per message."""
    duplicate: _Probability = 0.0
    """Probability that an outgoing message is sent twice (each copy with its own jitter)."""
    reorder: _Probability = 0.0
    """Probability that an outgoing message swaps places with the next one to the same peer."""
    blocked: list[str] = msgspec.field(default_factory=list)
    """Peers this node neither sends to nor accepts messages from: a partition."""
    seed: int = 0
    """Seed of the draws; the same seed and sends give the same faults."""

    def __post_init__(self) -> None:
        # msgspec checks the constraints above when decoding; this checks objects built in code.
        for name in ("drop", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability in 0 … 1, not {value}")
        for name in ("delay_ms", "jitter_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def is_none(self) -> bool:
        """Whether these rules inject no fault at all."""
        return self == FaultRules(seed=self.seed)


@dataclass(frozen=True)
class _Plan:
    """What the fault layer decided for one send."""

    delays_s: tuple[float, ...]
    """One delay per copy to send; empty when the message is dropped."""
    reorder: bool = False
    """Whether the message waits for the next one to the same peer to overtake it."""


_UNFAULTED = _Plan(delays_s=(0.0,))


class FaultLayer:
    """Fault rules that can be changed while the transport runs; thread-safe.

    Every send draws the same five numbers from one generator seeded by the rules, whatever
    the rules decide, so which messages are dropped (or duplicated, delayed, reordered)
    depends only on the seed and the order of sends.
    """

    def __init__(self, rules: FaultRules | None = None) -> None:
        self._lock = threading.Lock()
        self._rules = FaultRules()
        self._random = random.Random(0)  # noqa: S311 - seeded test schedules, not secrets
        self._dropped = 0
        self._discarded = 0
        self.set_rules(rules if rules is not None else FaultRules())

    @property
    def rules(self) -> FaultRules:
        """The rules in force."""
        with self._lock:
            return self._rules

    @property
    def dropped(self) -> int:
        """Outgoing messages dropped so far (by `drop` or `blocked`)."""
        with self._lock:
            return self._dropped

    @property
    def discarded(self) -> int:
        """Incoming messages discarded so far because their sender is `blocked`."""
        with self._lock:
            return self._discarded

    def set_rules(self, rules: FaultRules) -> None:
        """Replace the rules, and restart the draws from their seed."""
        with self._lock:
            self._rules = rules
            self._random = random.Random(rules.seed)  # noqa: S311 - see __init__

    def heal(self) -> None:
        """Remove every fault."""
        self.set_rules(FaultRules())

    def accepts(self, peer: str) -> bool:
        """Whether a message that arrived from `peer` is delivered (it is not `blocked`)."""
        with self._lock:
            if peer in self._rules.blocked:
                self._discarded += 1
                return False
            return True

    def plan(self, peer: str) -> _Plan:
        """Decide the fate of one message to `peer`."""
        with self._lock:
            rules = self._rules
            if peer in rules.blocked:
                self._dropped += 1
                return _Plan(delays_s=())
            if rules.is_none():
                return _UNFAULTED
            drop, duplicate, reorder, *jitters = (self._random.random() for _ in range(5))
            if drop < rules.drop:
                self._dropped += 1
                return _Plan(delays_s=())
        copies = 2 if duplicate < rules.duplicate else 1
        delays = tuple(
            (rules.delay_ms + math.floor(jitter * (rules.jitter_ms + 1))) / 1000
            for jitter in jitters[:copies]
        )
        return _Plan(delays_s=delays, reorder=reorder < rules.reorder)


class _RefusedError(Exception):
    """The listening side answered our hello with a refusal."""


class _BadFrameError(Exception):
    """A frame's length is over the limit."""


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def _read_exact(sock: ssl.SSLSocket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:], size - got)
        if count == 0:
            raise ConnectionError("the peer closed the link")
        got += count
    return bytes(buffer)


def _read_frame(sock: ssl.SSLSocket, limit: int = MAX_FRAME_BYTES) -> bytes:
    size = int.from_bytes(_read_exact(sock, 4), "big")
    if size > limit:
        raise _BadFrameError(f"frame of {size} bytes is over the limit of {limit}")
    return _read_exact(sock, size)


def _has_ended(sock: ssl.SSLSocket) -> bool:
    """Whether the listening side of our link closed it.

    That side writes nothing after its answer (and sends no session tickets), so anything
    to read on our link is its end: a close, a reset or an alert.
    """
    return bool(select.select([sock], [], [], 0)[0])


def _cut(sock: socket.socket) -> None:
    """Shut a socket down under any thread blocked on it, which then sees the link end.

    `socket.socket.shutdown` acts on the file descriptor only, so the TLS object, which
    belongs to the thread that uses the link, is not touched from this one.
    """
    with contextlib.suppress(OSError):  # already closed, or never connected
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


@dataclass
class _Outgoing:
    """Our link to one peer: its queue, and the socket while connected."""

    peer: str
    address: tuple[str, int]
    cond: threading.Condition = field(default_factory=threading.Condition)
    queue: list[tuple[float, int, bytes]] = field(default_factory=list)
    """Heap of (due time on the monotonic clock, sequence number, payload)."""
    sequence: int = 0
    held: list[tuple[float, int, bytes]] = field(default_factory=list)
    """Copies of a message picked for reordering, waiting for the next message."""
    held_until: float = 0.0
    sock: ssl.SSLSocket | None = None
    """The link, once the peer has accepted it."""
    dialing: socket.socket | None = None
    """The socket of a link still being set up, for `stop` to cut."""
    identity: MemberIdentity | None = None
    dropped: int = 0
    """Messages dropped because the queue was full."""
    thread: threading.Thread | None = None


@dataclass
class _Incoming:
    """A peer's link to us, once authenticated."""

    identity: MemberIdentity
    sock: ssl.SSLSocket
    live: bool = True


class PeerTransport:
    """Framed messages between consensus members over mutual TLS.

    Args:
        name: This member's name (its certificate's).
        listen: Address to accept peers on; port 0 picks a free one (see `address`).
        peers: Every peer's listening address by name; this node's own entry is ignored.
        cert_file: This member's certificate (PEM), issued under the root.
        key_file: The certificate's private key (PEM).
        root_der: The consortium root certificate (DER), from genesis.
        authorize: Whether a verified identity is a member in force; called for every new
            link and again by `recheck`.
        on_message: Called with the sender's name and the payload, on the link's reader
            thread, in order per link. What it raises is logged and the link goes on.
        faults: Fault injection for tests; None in production.
        max_queue: The most messages waiting for one peer; more drop the oldest.
    """

    def __init__(
        self,
        *,
        name: str,
        listen: tuple[str, int],
        peers: dict[str, tuple[str, int]],
        cert_file: Path,
        key_file: Path,
        root_der: bytes,
        authorize: Callable[[MemberIdentity], bool],
        on_message: Callable[[str, bytes], None],
        faults: FaultLayer | None = None,
        max_queue: int = 10_000,
    ) -> None:
        self.name = name
        self._listen = listen
        self._root_der = root_der
        self._authorize = authorize
        self._on_message = on_message
        self.faults = faults
        self._max_queue = max_queue
        self._client = self._context(ssl.PROTOCOL_TLS_CLIENT, cert_file, key_file, root_der)
        self._server = self._context(ssl.PROTOCOL_TLS_SERVER, cert_file, key_file, root_der)
        # The listening side never writes after its answer; without session tickets it
        # writes nothing the dialling side would have to read, so anything readable there
        # means the link has ended.
        self._server.num_tickets = 0
        self._outgoing = {
            peer: _Outgoing(peer=peer, address=address)
            for peer, address in sorted(peers.items())
            if peer != name
        }
        self._lock = threading.Lock()
        self._incoming: dict[str, _Incoming] = {}
        self._pending: set[socket.socket] = set()
        self._readers: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._listener_thread: threading.Thread | None = None
        self._started = False

    @staticmethod
    def _context(protocol: int, cert_file: Path, key_file: Path, root_der: bytes) -> ssl.SSLContext:
        context = ssl.SSLContext(protocol)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_verify_locations(cadata=root_der)
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
        # Peers are named by their member certificate, not by a host name.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    @property
    def address(self) -> tuple[str, int]:
        """The address the listener is bound to (the port chosen, when `listen` said 0)."""
        if self._listener is None:
            return self._listen
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Listen for peers, and start one sender thread per peer.

        Raises:
            OSError: the listening address cannot be bound.
            RuntimeError: the transport was started before.
        """
        if self._started:
            raise RuntimeError("a transport starts once; make a new one")
        self._started = True
        listener = socket.create_server(self._listen, reuse_port=False)
        listener.settimeout(0.5)
        self._listener = listener
        self._listener_thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name=f"p2p-listen-{self.name}", daemon=True
        )
        self._listener_thread.start()
        for link in self._outgoing.values():
            link.thread = threading.Thread(
                target=self._send_loop,
                args=(link,),
                name=f"p2p-send-{self.name}-{link.peer}",
                daemon=True,
            )
            link.thread.start()

    def stop(self) -> None:
        """Close every link and the listener, and wait (boundedly) for the threads to end."""
        self._stopping.set()
        if self._listener is not None:
            _cut(self._listener)
            self._listener.close()
        for link in self._outgoing.values():
            with link.cond:
                for sock in (link.sock, link.dialing):
                    if sock is not None:
                        _cut(sock)
                link.cond.notify_all()
        with self._lock:
            sockets = [link.sock for link in self._incoming.values()] + list(self._pending)
            readers = list(self._readers)
        for sock in sockets:
            _cut(sock)
        deadline = time.monotonic() + _JOIN_TIMEOUT_S
        threads = [self._listener_thread, *(link.thread for link in self._outgoing.values())]
        for thread in [*threads, *readers]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def send(self, peer: str, data: bytes) -> None:
        """Queue `data` for `peer`; never blocks. A full queue drops its oldest message.

        Raises:
            KeyError: `peer` is not one of the transport's peers.
            ValueError: `data` is over `MAX_FRAME_BYTES`.
        """
        link = self._outgoing[peer]
        if len(data) > MAX_FRAME_BYTES:
            raise ValueError(f"message of {len(data)} bytes is over {MAX_FRAME_BYTES}")
        plan = self.faults.plan(peer) if self.faults is not None else _UNFAULTED
        if not plan.delays_s:
            return
        now = time.monotonic()
        with link.cond:
            entries = []
            for delay in plan.delays_s:
                link.sequence += 1
                entries.append((now + delay, link.sequence, data))
            if plan.reorder and not link.held:
                link.held = entries
                link.held_until = now + _REORDER_HOLD_S
            else:
                if link.held:
                    # The held message goes right behind this one: they swap places.
                    due = max(entry[0] for entry in entries)
                    for _, _, held in link.held:
                        link.sequence += 1
                        entries.append((due, link.sequence, held))
                    link.held = []
                for entry in entries:
                    self._push(link, entry)
            link.cond.notify()

    def _push(self, link: _Outgoing, entry: tuple[float, int, bytes]) -> None:
        """Under `link.cond`: queue `entry`; a full queue first drops its oldest message.

        The oldest is the one due soonest, the heap's top, as long as faults delay nothing.
        """
        if len(link.queue) >= self._max_queue:
            heapq.heappop(link.queue)
            link.dropped += 1
            if link.dropped == 1 or link.dropped % 1000 == 0:
                log.warning("queue to %s is full: dropped %d messages", link.peer, link.dropped)
        heapq.heappush(link.queue, entry)

    def broadcast(self, data: bytes) -> None:
        """Queue `data` for every peer."""
        for peer in self._outgoing:
            self.send(peer, data)

    def connected(self) -> list[str]:
        """The peers our link to is up and authenticated, by name."""
        up = []
        for peer, link in self._outgoing.items():
            with link.cond:
                if link.sock is not None:
                    up.append(peer)
        return up

    def recheck(self) -> None:
        """Ask `authorize` again about every live link, and close those it now refuses.

        Call after the members in force change: a revoked member's links close at once,
        nothing it sent afterwards is delivered, and it cannot connect again.
        """
        for link in self._outgoing.values():
            with link.cond:
                identity, sock = link.identity, link.sock
            if sock is not None and identity is not None and not self._allows(identity):
                log.warning("closing link to %s: no longer a member in force", link.peer)
                with link.cond:
                    if link.sock is sock:
                        link.sock = None
                        link.cond.notify_all()
                _cut(sock)
        with self._lock:
            incoming = list(self._incoming.items())
        for peer, inbound in incoming:
            if not self._allows(inbound.identity):
                log.warning("closing link from %s: no longer a member in force", peer)
                with self._lock:
                    inbound.live = False
                _cut(inbound.sock)

    def _allows(self, identity: MemberIdentity) -> bool:
        try:
            return bool(self._authorize(identity))
        except Exception:  # a callback's failure refuses the peer; the transport goes on
            log.exception("authorize failed for %s; refusing it", identity.name)
            return False

    def _verify(self, sock: ssl.SSLSocket, expected_name: str) -> MemberIdentity:
        der = sock.getpeercert(binary_form=True)
        if der is None:
            raise UntrustedMemberError("the peer presented no certificate")
        identity = verify_member_certificate(der, self._root_der, expected_name=expected_name)
        if not self._allows(identity):
            raise UnknownMemberError(
                f"{identity.name!r} is not a member in force (never admitted, or revoked)",
                name=identity.name,
            )
        return identity

    # The dialling side: one thread per peer.

    def _send_loop(self, link: _Outgoing) -> None:
        backoff = _BACKOFF_FIRST_S
        while not self._stopping.is_set():
            try:
                sock, identity = self._dial(link)
            except (OSError, MembershipError, _RefusedError, _BadFrameError) as exc:
                level = logging.DEBUG if type(exc) in _QUIET_ERRORS else logging.WARNING
                log.log(level, "cannot link to %s at %s: %s", link.peer, link.address, exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                continue
            except Exception:  # a thread boundary: log, and keep trying to reach the peer
                log.exception("linking to %s failed", link.peer)
                self._stopping.wait(_BACKOFF_MAX_S)
                continue
            backoff = _BACKOFF_FIRST_S
            with link.cond:
                link.sock, link.identity = sock, identity
            log.info("linked to %s at %s", link.peer, link.address)
            try:
                self._drain(link, sock)
            except Exception:  # a thread boundary, as above
                log.exception("sending to %s failed", link.peer)
            finally:
                with link.cond:
                    if link.sock is sock:
                        link.sock = None
                sock.close()
        with link.cond:
            link.sock = None

    def _dial(self, link: _Outgoing) -> tuple[ssl.SSLSocket, MemberIdentity]:
        """Connect to the peer, check who answers, say who we are, and await its answer."""
        raw = socket.create_connection(link.address, timeout=_HANDSHAKE_TIMEOUT_S)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = self._client.wrap_socket(raw, do_handshake_on_connect=False)
        except BaseException:
            raw.close()
            raise
        try:
            self._set_dialing(link, sock)
            sock.do_handshake()
            identity = self._verify(sock, link.peer)
            sock.sendall(_frame(msgspec.msgpack.encode(_Hello(PROTOCOL_VERSION, self.name))))
            frame = _read_frame(sock, _HANDSHAKE_FRAME_BYTES)
            try:
                answer = msgspec.msgpack.decode(frame, type=_Answer)
            except msgspec.DecodeError as exc:
                raise _RefusedError(f"{link.peer} answered with a bad frame: {exc}") from None
            if answer.code != _OK:
                raise _RefusedError(f"{link.peer} refused us: {answer.code}: {answer.message}")
            sock.settimeout(_SEND_TIMEOUT_S)
        except BaseException:
            sock.close()
            raise
        finally:
            self._set_dialing(link, None)
        return sock, identity

    def _set_dialing(self, link: _Outgoing, sock: socket.socket | None) -> None:
        """Record the socket being set up, so that `stop` can cut it short.

        Raises:
            ConnectionAbortedError: the transport is stopping (`stop` may have looked before).
        """
        with link.cond:
            link.dialing = sock
        if sock is not None and self._stopping.is_set():
            raise ConnectionAbortedError("the transport is stopping")

    def _drain(self, link: _Outgoing, sock: ssl.SSLSocket) -> None:
        """Send what falls due until the link ends or the transport stops."""
        while True:
            with link.cond:
                batch = self._wait_for_due(link, sock)
            if batch is None:
                return
            try:
                if _has_ended(sock):
                    raise ConnectionError("the peer closed the link")
                sock.sendall(b"".join(_frame(data) for _, _, data in batch))
            except (OSError, ValueError) as exc:
                log.info("link to %s ended: %s", link.peer, exc)
                with link.cond:
                    for entry in batch:  # kept, in order, for the next link
                        self._push(link, entry)
                return

    def _wait_for_due(
        self, link: _Outgoing, sock: ssl.SSLSocket
    ) -> list[tuple[float, int, bytes]] | None:
        """Under `link.cond`: wait until messages fall due; None when the link must end.

        An idle link is looked at every `_LIVENESS_S`, so that `connected` soon stops
        listing a peer that went away while nothing was sent to it.
        """
        while not self._stopping.is_set() and link.sock is sock:
            now = time.monotonic()
            if link.held and now >= link.held_until:
                for entry in link.held:  # no next message came to overtake it
                    self._push(link, entry)
                link.held = []
            batch = []
            while link.queue and link.queue[0][0] <= now:
                batch.append(heapq.heappop(link.queue))
            if batch:
                return batch
            if _has_ended(sock):
                log.info("link to %s ended: the peer closed it", link.peer)
                return None
            wakes = [now + _LIVENESS_S, *(entry[0] for entry in link.queue[:1])]
            if link.held:
                wakes.append(link.held_until)
            link.cond.wait(max(0.0, min(wakes) - now))
        return None

    # The listening side: one thread accepts, one thread per link reads.

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                raw, address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if not self._stopping.is_set():
                    log.exception("listener of %s failed", self.name)
                return
            reader = threading.Thread(
                target=self._serve, args=(raw, address), name=f"p2p-read-{self.name}", daemon=True
            )
            with self._lock:
                if self._stopping.is_set():
                    raw.close()
                    return
                self._pending.add(raw)
                self._readers.add(reader)
            reader.start()

    def _serve(self, raw: socket.socket, address: tuple[str, int]) -> None:
        """Set up a link a peer dialled, and read it until it ends (a reader thread)."""
        try:
            raw.settimeout(_HANDSHAKE_TIMEOUT_S)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = self._server.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        except OSError as exc:
            log.info("link from %s ended before its handshake: %s", address, exc)
            with self._lock:
                self._pending.discard(raw)
                self._readers.discard(threading.current_thread())
            raw.close()
            return
        with self._lock:  # `stop` cuts what is pending; the TLS socket now holds the link
            self._pending.discard(raw)
            self._pending.add(sock)
        try:
            if self._stopping.is_set():
                return
            try:
                sock.do_handshake()
            except (OSError, ValueError) as exc:
                log.warning("refused a peer at %s: TLS handshake failed: %s", address, exc)
                return
            inbound = self._admit(sock, address)
            if inbound is not None:
                self._read_loop(inbound, address)
        except Exception:  # a thread boundary: log, never take the node down
            log.exception("link from %s failed", address)
        finally:
            with self._lock:
                self._pending.discard(sock)
                self._readers.discard(threading.current_thread())
            sock.close()

    def _admit(self, sock: ssl.SSLSocket, address: tuple[str, int]) -> _Incoming | None:
        """Read the hello and check the peer; answer it, and register its link if accepted."""
        try:
            hello = msgspec.msgpack.decode(_read_frame(sock, _HANDSHAKE_FRAME_BYTES), type=_Hello)
        except (OSError, _BadFrameError, msgspec.DecodeError) as exc:
            log.warning("refused a peer at %s: no valid hello: %s", address, exc)
            return None
        refusal = _Answer(
            _VERSION_REFUSED, f"we speak version {PROTOCOL_VERSION}, not {hello.version}"
        )
        identity = None
        if hello.version == PROTOCOL_VERSION:
            try:
                identity = self._verify(sock, hello.name)
            except MembershipError as exc:
                refusal = _Answer(exc.code, exc.message)
        if identity is None:
            log.warning(
                "refused %r at %s: %s: %s", hello.name, address, refusal.code, refusal.message
            )
            with contextlib.suppress(OSError):  # the link is closing anyway
                sock.sendall(_frame(msgspec.msgpack.encode(refusal)))
            return None
        sock.sendall(_frame(msgspec.msgpack.encode(_Answer(_OK, ""))))
        sock.settimeout(None)
        inbound = _Incoming(identity=identity, sock=sock)
        with self._lock:
            if self._stopping.is_set():
                return None
            self._pending.discard(sock)
            previous = self._incoming.get(identity.name)
            self._incoming[identity.name] = inbound
        if previous is not None:  # the peer dialled again; its old link is dead or dying
            previous.live = False
            _cut(previous.sock)
        log.info("accepted %s at %s", identity.name, address)
        return inbound

    def _read_loop(self, inbound: _Incoming, address: tuple[str, int]) -> None:
        name = inbound.identity.name
        try:
            while True:
                payload = _read_frame(inbound.sock)
                with self._lock:
                    if not inbound.live:
                        return
                if self.faults is not None and not self.faults.accepts(name):
                    continue
                try:
                    self._on_message(name, payload)
                except Exception:  # the handler's bug must not cut the link
                    log.exception("handling a message from %s failed", name)
        except _BadFrameError as exc:
            log.warning("closing link from %s at %s: %s", name, address, exc)
        except (OSError, ConnectionError) as exc:
            if not self._stopping.is_set() and inbound.live:
                log.info("link from %s ended: %s", name, exc)
        finally:
            with self._lock:
                if self._incoming.get(name) is inbound:
                    del self._incoming[name]
