"""The PBFT orderer: runs a `Replica` on a node, over the peer transport.

One consensus thread owns the replica. Messages from peers, the tick of the clock and the
transactions to forward reach it through one queue; it carries out the replica's actions in
order, so a `Persist` is on disk before the message after it is sent. Besides the replica's
messages, nodes exchange forwarded transactions (`Txs`) and blocks with their certificates
for state transfer (`BlockRequest`, `BlockReply`), which every receiver checks against the
members' keys before it commits anything.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Generic, Protocol

import msgspec

from tally.consensus.orderer import Application, ProposalT
from tally.consensus.pbft.actions import (
    Action,
    Broadcast,
    CatchUp,
    Deliver,
    Persist,
    Propose,
    ReplicaLog,
    Send,
    Validate,
    ViewChanged,
)
from tally.consensus.pbft.messages import (
    Commit,
    Message,
    Prepare,
    PrePrepare,
    Proposal,
    Txs,
    Vote,
    signed_digest,
)
from tally.consensus.pbft.replica import Replica, ReplicaConfig
from tally.crypto import schnorr
from tally.crypto.schnorr import PrivateKey
from tally.model.block import Block, CommitCertificate
from tally.model.encoding import block_hash, decode, encode
from tally.model.genesis import Member
from tally.model.rejection import Rejection
from tally.rules.certificate import check_certificate

__all__ = [
    "PbftApplication",
    "Link",
    "PbftOrderer",
    "BlockRequest",
    "BlockReply",
    "decode_wire",
    "load_log",
    "BYZANTINE",
]

log = logging.getLogger(__name__)

_TICK_S = 0.01
_SYNC_BATCH = 32
"""Blocks per state-transfer reply."""
_FORWARD_BATCH = 512
_ASK_INTERVAL_S = 0.5

BYZANTINE = {
    "equivocate": "as primary, send half the backups one block and half another",
    "bad-signatures": "every vote carries a corrupted signature",
    "double-vote": "every prepare and commit is followed by a vote for another block",
}
"""Test-only misbehaviours a member can be configured with, to show the others survive it."""


class BlockRequest(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=11):
    """State transfer: send me your committed blocks from height `start` on."""

    start: Annotated[int, msgspec.Meta(ge=1)]


class BlockReply(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=12):
    """Committed blocks with their certificates, in canonical bytes, heights ascending."""

    blocks: tuple[tuple[bytes, bytes], ...]
    more: bool
    """The sender has more blocks after these."""


_wire: msgspec.msgpack.Decoder[Message | BlockRequest | BlockReply] = msgspec.msgpack.Decoder(
    Message | BlockRequest | BlockReply
)


def decode_wire(data: bytes) -> Message | BlockRequest | BlockReply:
    """A message between nodes.

    Raises:
        msgspec.DecodeError: not one.
    """
    return _wire.decode(data)


class PbftApplication(Application[ProposalT], Protocol):
    """What the PBFT orderer needs from the node beyond what solo needs."""

    def receive_block(self, block: Block) -> ProposalT:
        """Execute another node's block on the committed tip (raises a Rejection if wrong)."""

    def discard_proposals(self) -> None:
        """Drop blocks in progress; their transactions wait again."""

    def proposal(self, digest: bytes) -> ProposalT | None:
        """The block in progress with this hash, if any."""

    def committed_height(self) -> int:
        """Height of the last committed block."""

    def committed_digest(self, height: int) -> bytes | None:
        """Hash of the committed block at `height`; genesis's hash at 0."""

    def committed_block(self, height: int) -> tuple[bytes, CommitCertificate] | None:
        """The canonical bytes and certificate of the committed block at `height`."""

    def members(self) -> tuple[Member, ...]:
        """The consensus members in force."""

    def has_work(self) -> bool:
        """Whether transactions wait here to be committed."""

    def admit_forwarded(self, raw: bytes) -> None:
        """Admit a transaction a peer forwarded (refusals are dropped quietly)."""

    def watch_admitted(self, hook: Callable[[bytes], None]) -> None:
        """Call `hook` with the bytes of each transaction a client submitted here."""


class Link(Protocol):
    """The authenticated channel to the other members (mutual TLS in production)."""

    def send(self, peer: str, data: bytes) -> None:
        """Queue `data` for `peer`; never blocks."""

    def broadcast(self, data: bytes) -> None:
        """Queue `data` for every peer."""


def load_log(path: Path) -> ReplicaLog | None:
    """The replica log persisted at `path`, or None if there is none yet."""
    try:
        return decode(path.read_bytes(), ReplicaLog)
    except FileNotFoundError:
        return None


def _write_durably(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new content."""
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class _Services:
    """Keys and digests for the replica, from the node's key and the members.

    Replica indices are positions in the member list the replica started with. A member
    that a committed `RevokeMember` removed since no longer counts: its votes are refused.
    (The replica set itself changes only when the members restart on the new list.)
    """

    def __init__(self, app: PbftApplication[ProposalT], key: PrivateKey) -> None:
        self._app = app
        self._key = key
        self._keys = [member.key for member in app.members()]

    def sign(self, digest: bytes) -> bytes:
        return self._key.sign(digest)

    def verify(self, signer: int, digest: bytes, signature: bytes) -> bool:
        if signer >= len(self._keys):
            return False
        key = self._keys[signer]
        if not any(member.key == key for member in self._app.members()):
            return False
        return schnorr.verify(key, digest, signature)

    def digest_of(self, payload: bytes) -> bytes | None:
        try:
            return block_hash(decode(payload, Block).header)
        except (Rejection, msgspec.DecodeError, ValueError):
            return None

    def committed_digest(self, seq: int) -> bytes | None:
        return self._app.committed_digest(seq)


class PbftOrderer(Generic[ProposalT]):
    """Orders blocks with the other members by PBFT; see the module docstring."""

    def __init__(
        self,
        app: PbftApplication[ProposalT],
        key: PrivateKey,
        me: int,
        names: list[str],
        log_path: Path,
        *,
        max_txs: Callable[[], int],
        checkpoint_interval: int = 16,
        view_timeout_ms: int = 2000,
        on_fatal: Callable[[BaseException], None] | None = None,
        byzantine: str | None = None,
    ) -> None:
        """An orderer for member `me`; `names[i]` is member i's name on the link.

        `byzantine` (tests only) makes this member misbehave as `BYZANTINE` describes.
        """
        if byzantine is not None and byzantine not in BYZANTINE:
            raise ValueError(f"unknown Byzantine behaviour {byzantine!r}")
        self._byzantine = byzantine
        self._app = app
        self._me = me
        self._names = names
        self._log_path = log_path
        self._max_txs = max_txs
        self._on_fatal = on_fatal
        self._config = ReplicaConfig(
            chain_id=app.chain_id,
            n=len(names),
            me=me,
            checkpoint_interval=checkpoint_interval,
            view_timeout_ms=view_timeout_ms,
        )
        self._services = _Services(app, key)
        self._link: Link | None = None
        self._inbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._forward: deque[bytes] = deque()
        self._asked: dict[str, float] = {}
        """When each peer was last asked for blocks because it was ahead."""
        self._probe_height = -1
        self._progress_at = 0.0
        self._probed_at = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pbft", daemon=True)
        self.replica: Replica | None = None
        self.view = 0
        """The view the replica works in (read by status and tests)."""
        app.watch_admitted(self._forward.append)

    def attach(self, link: Link) -> None:
        """Give the orderer its link to the peers (before `start`)."""
        self._link = link

    def on_message(self, sender: str, data: bytes) -> None:
        """Called by the link for every message from a peer (on the link's threads)."""
        self._inbox.put((sender, data))

    def start(self) -> None:
        """Start the consensus thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the consensus thread; a block being committed finishes first."""
        self._stopping.set()
        self._inbox.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    # -- the consensus thread ------------------------------------------------------------------

    def _now(self) -> int:
        return int(time.monotonic() * 1000)

    def _run(self) -> None:
        try:
            replica = Replica(
                self._config,
                self._services,
                self._app.committed_height(),
                load_log(self._log_path),
                self._now(),
            )
            self.replica = replica
            self.view = replica.view
            # A node that restarts or starts empty asks its peers for what it missed.
            self._broadcast(BlockRequest(start=self._app.committed_height() + 1))
            next_tick = time.monotonic()
            while not self._stopping.is_set():
                try:
                    item = self._inbox.get(timeout=max(0.0, next_tick - time.monotonic()))
                except queue.Empty:
                    item = None
                if item is not None:
                    self._on_item(replica, *item)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + _TICK_S
                    self._flush_forward()
                    self._probe_peers()
                    self._carry_out(replica, replica.on_tick(self._now(), self._app.has_work()))
        except BaseException as exc:  # the consensus thread is a process boundary
            log.exception("PBFT orderer stopped by an error")
            if self._on_fatal is not None:
                self._on_fatal(exc)

    def _on_item(self, replica: Replica, sender: str, data: bytes) -> None:
        try:
            message = decode_wire(data)
        except (msgspec.DecodeError, ValueError):
            log.warning("undecodable message from %s dropped", sender)
            return
        if isinstance(message, Txs):
            for raw in message.txs:
                self._app.admit_forwarded(raw)
        elif isinstance(message, BlockRequest):
            self._serve_blocks(sender, message.start)
        elif isinstance(message, BlockReply):
            self._apply_blocks(replica, sender, message)
        else:
            self._notice_lag(sender, message)
            self._carry_out(replica, replica.on_message(message, self._now()))

    def _probe_peers(self) -> None:
        """While work waits here without commits, ask every peer whether it is further on.

        Catches what `_notice_lag` cannot: the votes of the blocks this node missed were
        all sent before it came back, and no new ones follow until something else happens.
        """
        height = self._app.committed_height()
        now = time.monotonic()
        if height != self._probe_height:
            self._probe_height, self._progress_at = height, now
            return
        stalled = now - self._progress_at > self._config.view_timeout_ms / 2000
        if stalled and self._app.has_work() and now - self._probed_at > _ASK_INTERVAL_S * 2:
            self._probed_at = now
            self._broadcast(BlockRequest(start=height + 1))

    def _notice_lag(self, sender: str, message: Message) -> None:
        """Ask `sender` for blocks when it votes on heights above the next one here.

        The replica keeps only a window of heights, so a node that was down long misses the
        votes that would tell it. Blocks come with certificates, checked before use, so a
        lying sender costs a request and nothing else.
        """
        seq = getattr(message, "seq", None)
        if not isinstance(seq, int) or seq <= self._app.committed_height() + 1:
            return
        now = time.monotonic()
        if now - self._asked.get(sender, 0.0) < _ASK_INTERVAL_S:
            return
        self._asked[sender] = now
        if self._link is not None:
            start = self._app.committed_height() + 1
            self._link.send(sender, encode(BlockRequest(start=start)))

    def _carry_out(self, replica: Replica, actions: list[Action]) -> None:
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            more = self._do(replica, action)
            if more:
                pending[0:0] = more

    def _do(self, replica: Replica, action: Action) -> list[Action]:
        if isinstance(action, Broadcast):
            if self._byzantine is None:
                self._broadcast(action.message)
            else:
                self._misbehave(action.message)
        elif isinstance(action, Send):
            if self._link is not None and action.to < len(self._names):
                self._link.send(self._names[action.to], encode(action.message))
        elif isinstance(action, Persist):
            _write_durably(self._log_path, encode(action.log))
        elif isinstance(action, Propose):
            return self._propose(replica, action)
        elif isinstance(action, Validate):
            return replica.on_validated(action.digest, self._validate(action.payload))
        elif isinstance(action, Deliver):
            self._deliver(action)
        elif isinstance(action, CatchUp):
            self._broadcast(BlockRequest(start=self._app.committed_height() + 1))
        elif isinstance(action, ViewChanged):
            self.view = action.view
            log.info("view %d, primary %s", action.view, self._names[action.primary])
        return []

    def _misbehave(self, message: Message) -> None:
        """Test-only faults of a Byzantine member; see `BYZANTINE`."""
        if self._link is None:
            return
        peers = [name for i, name in enumerate(self._names) if i != self._me]
        if self._byzantine == "bad-signatures" and isinstance(message, Vote):
            forged = bytes([message.sig[0] ^ 0xFF]) + message.sig[1:]
            log.warning("test fault: corrupted the signature of a %s", type(message).__name__)
            self._broadcast(msgspec.structs.replace(message, sig=forged))
        elif self._byzantine == "equivocate" and isinstance(message, Proposal):
            # A second block for the same height, differing only in its time, signed too:
            # half the backups get one, half the other.
            block = decode(message.payload, Block)
            header = msgspec.structs.replace(block.header, time_ms=block.header.time_ms + 1)
            other = msgspec.structs.replace(block, header=header)
            twin = self._sign_as_me(
                msgspec.structs.replace(message.pre_prepare, digest=block_hash(header))
            )
            if not isinstance(twin, PrePrepare):
                return
            forked = Proposal(pre_prepare=twin, payload=encode(other))
            log.warning("test fault: equivocating at height %d", header.height)
            for index, peer in enumerate(peers):
                self._link.send(peer, encode(message if index % 2 == 0 else forked))
        elif self._byzantine == "double-vote" and isinstance(message, Prepare | Commit):
            log.warning("test fault: voting for two blocks at height %d", message.seq)
            self._broadcast(message)
            self._broadcast(self._sign_as_me(msgspec.structs.replace(message, digest=bytes(32))))
        else:
            self._broadcast(message)

    def _sign_as_me(self, vote: Vote) -> Vote:
        digest = signed_digest(self._app.chain_id, vote)
        return msgspec.structs.replace(vote, sig=self._services.sign(digest))

    def _broadcast(self, message: Message | BlockRequest | BlockReply) -> None:
        if self._link is not None:
            self._link.broadcast(encode(message))

    def _flush_forward(self) -> None:
        while self._forward:
            batch: list[bytes] = []
            while self._forward and len(batch) < _FORWARD_BATCH:
                batch.append(self._forward.popleft())
            self._broadcast(Txs(txs=tuple(batch)))

    def _propose(self, replica: Replica, action: Propose) -> list[Action]:
        if action.seq != self._app.committed_height() + 1:
            return replica.on_proposed(action.view, action.seq, bytes(32), None)
        self._app.discard_proposals()
        proposal = self._app.propose(self._max_txs(), int(time.time() * 1000))
        if proposal is None:
            return replica.on_proposed(action.view, action.seq, bytes(32), None)
        block = proposal.block
        return replica.on_proposed(action.view, action.seq, block_hash(block.header), encode(block))

    def _validate(self, payload: bytes) -> bool:
        try:
            self._app.receive_block(decode(payload, Block))
        except (Rejection, msgspec.DecodeError, ValueError) as exc:
            log.warning("proposed block refused: %s", exc)
            return False
        return True

    def _deliver(self, action: Deliver) -> None:
        proposal = self._app.proposal(action.digest)
        if proposal is None:
            # Committed by a quorum without this node having executed it (it missed the
            # pre-prepare, or prepared another block of a faulty primary): execute it now.
            # A certified block that does not execute here means this node has diverged.
            proposal = self._app.receive_block(decode(action.payload, Block))
        self._app.commit(proposal, action.certificate)

    # -- state transfer --------------------------------------------------------------------------

    def _serve_blocks(self, peer: str, start: int) -> None:
        top = self._app.committed_height()
        blocks: list[tuple[bytes, bytes]] = []
        height = start
        while height <= top and len(blocks) < _SYNC_BATCH:
            found = self._app.committed_block(height)
            if found is None:
                break
            blocks.append((found[0], encode(found[1])))
            height += 1
        if blocks and self._link is not None:
            reply = BlockReply(blocks=tuple(blocks), more=height <= top)
            self._link.send(peer, encode(reply))

    def _apply_blocks(self, replica: Replica, peer: str, reply: BlockReply) -> None:
        members = self._app.members()
        applied = False
        for raw_block, raw_certificate in reply.blocks:
            try:
                block = decode(raw_block, Block)
                certificate = decode(raw_certificate, CommitCertificate)
            except (Rejection, msgspec.DecodeError, ValueError):
                log.warning("state transfer: undecodable block from %s", peer)
                return
            if block.header.height <= self._app.committed_height():
                continue
            if block.header.height != self._app.committed_height() + 1:
                return
            try:
                check_certificate(certificate, block.header, members, schnorr.verify)
                proposal = self._app.receive_block(block)
            except Rejection as exc:
                log.warning("state transfer: block from %s refused: %s", peer, exc)
                return
            self._app.commit(proposal, certificate)
            applied = True
        if applied:
            height = self._app.committed_height()
            log.info("state transfer from %s: now at height %d", peer, height)
            self._carry_out(replica, replica.on_synced(height, self._now()))
            if reply.more and self._link is not None:
                self._link.send(peer, encode(BlockRequest(start=height + 1)))
