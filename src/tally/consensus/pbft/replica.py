"""One PBFT replica as a pure state machine: events in, actions out.

Castro and Liskov, "Practical Byzantine Fault Tolerance and Proactive Recovery" (2002), with
these choices:

- The request is a block and the sequence number its height. The primary executes a block
  only on top of the last committed one, so at most one height is in progress at a time
  (execution window 1): a backup can check the whole block, state root included, before it
  prepares it, and a view change never leaves a gap below a prepared height.
- A commit signs the commit-certificate message, so 2f+1 commits of a view are the block's
  certificate. Any replica that sees such a quorum may commit the block, whatever its view.
- Checkpoints every `checkpoint_interval` heights; 2f+1 matching ones make it stable, and
  state below it is dropped.
- View change on a timeout while work waits, on an invalid block, or when the primary signs
  two blocks for one height. The new primary re-proposes, for every height above the highest
  stable checkpoint among 2f+1 view changes, the block prepared in the highest view; every
  replica recomputes that from the view changes in the new-view message before it follows.

The host (`tally.consensus.pbft.orderer` on a node, the simulation in tests) carries out the
actions in order before the next event. Nothing here reads a clock, a socket or a disk.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import msgspec

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
    Checkpoint,
    Commit,
    Fetch,
    Message,
    NewView,
    Payload,
    Prepare,
    PreparedProof,
    PrePrepare,
    Proposal,
    ViewChange,
    Vote,
    signed_digest,
)
from tally.model.block import CommitCertificate
from tally.model.tx import Signature
from tally.model.types import BlockHash, Height, SignatureBytes

__all__ = ["ReplicaConfig", "Services", "Replica", "reproposals", "quorum", "faults_tolerated"]

_V = TypeVar("_V", PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView)

_MAX_BACKOFF = 6
"""View-change timeouts double at most this many times."""

_VIEW_HORIZON = 64
"""How many views ahead of its own a replica keeps messages for."""


def faults_tolerated(n: int) -> int:
    """The number of faulty replicas n = 3f+1 replicas tolerate (rounded down)."""
    return (n - 1) // 3


def quorum(n: int) -> int:
    """2f+1: the size of every PBFT quorum."""
    return 2 * faults_tolerated(n) + 1


@dataclass(frozen=True)
class ReplicaConfig:
    """A replica's fixed settings."""

    chain_id: str
    n: int
    """Number of replicas; each has an index in 0 … n-1."""
    me: int
    """This replica's index."""
    checkpoint_interval: int = 16
    view_timeout_ms: int = 2000
    """How long work may wait without a commit before the replica asks for a new view."""
    broken_view_change: bool = False
    """Test-only: the new primary ignores prepared certificates, which loses committed blocks.

    The simulation turns this on to show that its checker catches an unsafe view change.
    """

    @property
    def window(self) -> int:
        """How far above the stable checkpoint messages are kept."""
        return 2 * self.checkpoint_interval


class Services(Protocol):
    """The host's pure helpers: keys, block digests and the digests of committed blocks."""

    def sign(self, digest: bytes) -> bytes:
        """This replica's signature over a 32-byte digest."""

    def verify(self, signer: int, digest: bytes, signature: bytes) -> bool:
        """Whether `signature` by replica `signer` over `digest` is valid."""

    def digest_of(self, payload: bytes) -> bytes | None:
        """The digest (block hash) of a block's bytes, or None if they are not a block."""

    def committed_digest(self, seq: int) -> bytes | None:
        """The digest of the committed block at height `seq` (0: genesis), if committed here."""


@dataclass
class _Slot:
    """What one (view, height) has gathered."""

    pre_prepare: PrePrepare | None = None
    accepted: bool = False
    """This replica sent its prepare (or, as primary, its pre-prepare)."""
    commit_sent: bool = False
    prepares: dict[bytes, dict[int, Prepare]] = field(default_factory=lambda: defaultdict(dict))
    commits: dict[bytes, dict[int, Commit]] = field(default_factory=lambda: defaultdict(dict))


def reproposals(
    view_changes: tuple[ViewChange, ...], broken: bool = False
) -> tuple[int, bytes, list[tuple[int, bytes]]]:
    """What a new view must re-propose, from the 2f+1 view changes that start it.

    Returns:
        The highest stable checkpoint (height, digest) among them, and for each height above
        it the digest prepared in the highest view, as long as heights follow each other.
    """
    best = max(view_changes, key=lambda vc: vc.checkpoint_seq)
    low, low_digest = best.checkpoint_seq, best.checkpoint_digest
    if broken:
        return low, low_digest, []
    chosen: dict[int, PrePrepare] = {}
    for vc in view_changes:
        for proof in vc.prepared:
            pp = proof.pre_prepare
            if pp.seq > low and (pp.seq not in chosen or pp.view > chosen[pp.seq].view):
                chosen[pp.seq] = pp
    result = []
    seq = low + 1
    while seq in chosen:
        result.append((seq, chosen[seq].digest))
        seq += 1
    return low, low_digest, result


class Replica:
    """A PBFT replica; see the module docstring. Not thread-safe: one host thread drives it."""

    def __init__(
        self,
        config: ReplicaConfig,
        services: Services,
        committed: int,
        log: ReplicaLog | None = None,
        now_ms: int = 0,
    ) -> None:
        """A replica whose store holds blocks up to height `committed`.

        Args:
            config: the fixed settings.
            services: keys and digests from the host.
            committed: the height of the last block in the host's store.
            now_ms: the host's clock.
            log: the last `Persist`ed log, after a restart; None on first start.
        """
        self.config = config
        self._services = services
        self._n = config.n
        self._f = faults_tolerated(config.n)
        self._quorum = quorum(config.n)
        self._now = now_ms
        self.committed = committed
        self.view = 0
        self.active = True
        genesis = services.committed_digest(0) or bytes(32)
        self._stable: tuple[int, bytes, tuple[Checkpoint, ...]] = (0, genesis, ())
        self._slots: dict[tuple[int, int], _Slot] = {}
        self._accepted: dict[int, PrePrepare] = {}
        self._prepared: dict[int, PreparedProof] = {}
        self._payloads: dict[bytes, tuple[int, bytes]] = {}
        self._validated: dict[bytes, bool] = {}
        self._validating: set[bytes] = set()
        self._fetching: dict[bytes, int] = {}
        """Digest → when it was last asked for."""
        self._fetch_started: dict[bytes, int] = {}
        """Digest → when it was first asked for."""
        self._checkpoints: dict[int, dict[bytes, dict[int, Checkpoint]]] = {}
        self._view_changes: dict[int, dict[int, ViewChange]] = defaultdict(dict)
        self._new_view: NewView | None = None
        self._floor = 0
        """The primary proposes only above this height (the new view's re-proposals)."""
        self._proposing = False
        self._progress_ms = now_ms
        self._has_work = False
        self._work_since = now_ms
        self._vc_deadline = 0
        self._vc_attempts = 0
        self._catching_up = 0
        """The height of the `CatchUp` in progress, 0 when none."""
        self._catching_up_since = 0
        self._checkpoint_sent = (0, 0)
        """(height, when) of the last checkpoint this replica sent."""
        self._ahead: dict[int, Commit] = {}
        """Replica → its commit of the highest height beyond this one's window."""
        if log is not None:
            self._restore(log)

    # -- reading -------------------------------------------------------------------------

    @property
    def me(self) -> int:
        """This replica's index."""
        return self.config.me

    def primary(self, view: int | None = None) -> int:
        """The primary of `view` (the current view by default)."""
        return (self.view if view is None else view) % self._n

    @property
    def stable_checkpoint(self) -> int:
        """Height of the last stable checkpoint."""
        return self._stable[0]

    def snapshot(self) -> ReplicaLog:
        """What `Persist` would write now."""
        seq, digest, proof = self._stable
        return ReplicaLog(
            view=self.view,
            active=self.active,
            checkpoint_seq=seq,
            checkpoint_digest=digest,
            checkpoint_proof=proof,
            accepted=tuple(self._accepted[s] for s in sorted(self._accepted)),
            prepared=tuple(self._prepared[s] for s in sorted(self._prepared)),
            blocks=self._blocks_to_keep(),
        )

    def _blocks_to_keep(self) -> tuple[Payload, ...]:
        """The bytes of the accepted and prepared blocks above the committed height."""
        digests = [pp.digest for s, pp in sorted(self._accepted.items()) if s > self.committed]
        digests += [
            p.pre_prepare.digest for s, p in sorted(self._prepared.items()) if s > self.committed
        ]
        kept: dict[bytes, Payload] = {}
        for digest in digests:
            held = self._payloads.get(digest)
            if held is not None and digest not in kept:
                kept[digest] = Payload(seq=held[0], digest=digest, payload=held[1])
        return tuple(kept.values())

    # -- events --------------------------------------------------------------------------

    def on_message(self, message: Message, now_ms: int) -> list[Action]:
        """A message from the network; bad or stale ones are dropped without effect."""
        self._now = now_ms
        out: list[Action] = []
        if isinstance(message, Proposal):
            self._on_pre_prepare(message.pre_prepare, message.payload, out)
        elif isinstance(message, PrePrepare):
            self._on_pre_prepare(message, None, out)
        elif isinstance(message, Prepare):
            self._on_prepare(message, out)
        elif isinstance(message, Commit):
            self._on_commit(message, out)
        elif isinstance(message, Checkpoint):
            self._on_checkpoint(message, out)
        elif isinstance(message, ViewChange):
            self._on_view_change(message, out)
        elif isinstance(message, NewView):
            self._on_new_view(message, out)
        elif isinstance(message, Fetch):
            self._on_fetch(message, out)
        elif isinstance(message, Payload):
            self._on_payload(message, out)
        return out

    def on_tick(self, now_ms: int, has_work: bool) -> list[Action]:
        """Time passed; `has_work` says whether transactions wait to be committed here."""
        self._now = now_ms
        out: list[Action] = []
        if has_work and not self._has_work:
            self._work_since = now_ms
        self._has_work = has_work
        timeout = self.config.view_timeout_ms
        if self._catching_up and now_ms - self._catching_up_since > timeout:
            # The host found nothing to transfer and never answered: let the next sign of
            # lag ask again, and let this replica propose meanwhile.
            self._catching_up = 0
        if self.active:
            waiting_since = max(self._progress_ms, self._work_since)
            if has_work and now_ms - waiting_since > timeout:
                self._start_view_change(self.view + 1, out)
            else:
                self._maybe_propose(out)
        elif now_ms >= self._vc_deadline:
            if len(self._view_changes[self.view]) >= self._quorum:
                # The view change got its quorum but no new view came: try the next primary.
                self._start_view_change(self.view + 1, out)
            else:
                # Not enough replicas joined yet: say it again, messages may have been lost.
                # After a restart its own view change counts again only from here.
                self._vc_deadline = now_ms + timeout
                message = self._view_change_message()
                self._view_changes[self.view][self.me] = message
                out.append(Broadcast(message))
                self._check_new_view(out)
                # Nobody else wants a new view: they may be further on, and this replica may
                # have missed the last blocks before a lull, when no later vote tells it.
                self._catch_up(self.committed + 1, out)
        self._send_checkpoint(out)
        for digest, asked in list(self._fetching.items()):
            if now_ms - asked > timeout // 4:
                self._fetching[digest] = now_ms
                seq = self._payload_seq_wanted(digest)
                if seq is None:
                    del self._fetching[digest]
                    self._fetch_started.pop(digest, None)
                    continue
                out.append(Broadcast(Fetch(seq=seq, digest=digest, sender=self.me)))
                if now_ms - self._fetch_started.get(digest, now_ms) > timeout:
                    # No peer holds the bytes in memory (those that did restarted, say), but
                    # those that committed the block hold it in their stores.
                    self._catch_up(seq, out)
        return out

    def on_proposed(
        self, view: int, seq: int, digest: bytes, payload: bytes | None
    ) -> list[Action]:
        """The host built the block asked for by `Propose` (None: nothing to propose)."""
        self._proposing = False
        out: list[Action] = []
        if (
            payload is None
            or not self.active
            or view != self.view
            or self.primary() != self.me
            or seq != self.committed + 1
            or self._slot(view, seq).pre_prepare is not None
        ):
            return out
        pp = self._sign(PrePrepare(view=view, seq=seq, digest=digest, sender=self.me))
        slot = self._slot(view, seq)
        slot.pre_prepare = pp
        slot.accepted = True
        self._accepted[seq] = pp
        self._validated[digest] = True
        self._payloads[digest] = (seq, payload)
        out.append(Persist(self.snapshot()))
        out.append(Broadcast(Proposal(pre_prepare=pp, payload=payload)))
        self._check_prepared(view, seq, out)
        return out

    def on_validated(self, digest: bytes, ok: bool) -> list[Action]:
        """The host executed the block of a `Validate`; `ok` if it matched its header."""
        self._validating.discard(digest)
        self._validated[digest] = ok
        out: list[Action] = []
        self._advance(out)
        return out

    def on_synced(self, height: int, now_ms: int) -> list[Action]:
        """The host committed blocks up to `height` by state transfer."""
        self._now = now_ms
        self._catching_up = 0
        out: list[Action] = []
        if height > self.committed:
            self.committed = height
            self._progress_ms = now_ms
            self._forget_payloads()
            # It passed checkpoint heights without delivering them: vote for the last one.
            self._send_checkpoint(out)
            self._take_in_ahead()
        self._advance(out)
        return out

    # -- normal case ---------------------------------------------------------------------

    def _on_pre_prepare(self, pp: PrePrepare, payload: bytes | None, out: list[Action]) -> None:
        if pp.sender != self.primary(pp.view) or not self._in_window(pp.seq):
            return
        if not self._valid(pp):
            return
        if payload is not None and self._services.digest_of(payload) == pp.digest:
            self._payloads[pp.digest] = (pp.seq, payload)
        if not self.view <= pp.view <= self.view + _VIEW_HORIZON:
            return
        current = self.active and pp.view == self.view
        slot = self._slot(pp.view, pp.seq)
        if slot.pre_prepare is not None:
            if slot.pre_prepare.digest != pp.digest and current:
                # The primary signed two blocks for one height: it is faulty.
                self._start_view_change(self.view + 1, out)
            return
        # A pre-prepare of a view this replica has not entered yet is kept for when it does:
        # the new primary proposes right after its new-view message, which it may overtake.
        slot.pre_prepare = pp
        if current:
            self._advance(out)

    def _advance(self, out: list[Action]) -> None:
        """Commit what has a quorum, check the next block, and propose when primary."""
        self._try_deliver(out)
        self._try_accept(out)
        self._maybe_propose(out)

    def _try_accept(self, out: list[Action]) -> None:
        """Prepare the pre-prepared block at the next height once it executes here."""
        if not self.active:
            return
        seq = self.committed + 1
        slot = self._slots.get((self.view, seq))
        if slot is None or slot.pre_prepare is None or slot.accepted:
            return
        digest = slot.pre_prepare.digest
        verdict = self._validated.get(digest)
        if verdict is None:
            if digest in self._validating:
                return
            held = self._payloads.get(digest)
            if held is None:
                self._fetch(seq, digest, out)
                return
            self._validating.add(digest)
            out.append(Validate(seq=seq, digest=digest, payload=held[1]))
            return
        if not verdict:
            self._start_view_change(self.view + 1, out)
            return
        self._accept(slot, out)

    def _accept(self, slot: _Slot, out: list[Action]) -> None:
        pp = slot.pre_prepare
        if pp is None:
            return
        slot.accepted = True
        self._accepted[pp.seq] = pp
        prepare = self._sign(Prepare(view=pp.view, seq=pp.seq, digest=pp.digest, sender=self.me))
        slot.prepares[pp.digest][self.me] = prepare
        out.append(Persist(self.snapshot()))
        out.append(Broadcast(prepare))
        self._check_prepared(pp.view, pp.seq, out)

    def _on_prepare(self, prepare: Prepare, out: list[Action]) -> None:
        if prepare.sender == self.primary(prepare.view) or not self._in_window(prepare.seq):
            return
        if not self.view <= prepare.view <= self.view + _VIEW_HORIZON:
            return
        if not self._valid(prepare):
            return
        self._slot(prepare.view, prepare.seq).prepares[prepare.digest][prepare.sender] = prepare
        self._check_prepared(prepare.view, prepare.seq, out)

    def _check_prepared(self, view: int, seq: int, out: list[Action]) -> None:
        """Send commit once the accepted block has 2f prepares from backups."""
        slot = self._slot(view, seq)
        pp = slot.pre_prepare
        if pp is None or not slot.accepted or slot.commit_sent or view != self.view:
            return
        prepares = slot.prepares.get(pp.digest, {})
        if len(prepares) < 2 * self._f:
            return
        chosen = tuple(prepares[s] for s in sorted(prepares)[: 2 * self._f])
        previous = self._prepared.get(seq)
        if previous is None or previous.pre_prepare.view <= view:
            self._prepared[seq] = PreparedProof(pre_prepare=pp, prepares=chosen)
        commit = self._sign(Commit(view=view, seq=seq, digest=pp.digest, sender=self.me))
        slot.commit_sent = True
        slot.commits[pp.digest][self.me] = commit
        out.append(Persist(self.snapshot()))
        out.append(Broadcast(commit))
        self._try_deliver(out)

    def _on_commit(self, commit: Commit, out: list[Action]) -> None:
        if commit.seq <= self.committed:
            return
        if commit.seq > self.committed + self.config.window:
            self._note_ahead(commit, out)
            return
        if abs(commit.view - self.view) > _VIEW_HORIZON or not self._valid(commit):
            return
        self._slot(commit.view, commit.seq).commits[commit.digest][commit.sender] = commit
        if commit.seq > self.committed + 1 and self._certified(commit.seq) is not None:
            # Peers committed a later height: this replica missed blocks. Fetch them.
            self._catch_up(commit.seq - 1, out)
        self._advance(out)

    def _note_ahead(self, commit: Commit, out: list[Action]) -> None:
        """Keep a vote beyond the window, and catch up once f+1 replicas voted there.

        An honest replica votes at height s only once it committed s-1, so one of f+1 is at
        s-1 at least. The checkpoints that would have told this replica may all have gone by
        while it was cut off; and the votes themselves are taken in once state transfer
        brings the window to them, or the last block before a lull would be missed.
        """
        if commit.sender == self.me or not self._valid(commit):
            return
        kept = self._ahead.get(commit.sender)
        if kept is None or kept.seq < commit.seq:
            self._ahead[commit.sender] = commit
        heights = sorted((c.seq for c in self._ahead.values()), reverse=True)
        if len(heights) > self._f:
            self._catch_up(heights[self._f] - 1, out)

    def _take_in_ahead(self) -> None:
        """Record the kept votes beyond the window that the window now reaches."""
        if not self._ahead:
            return
        top = self.committed + self.config.window
        for commit in self._ahead.values():
            if self.committed < commit.seq <= top:
                self._slot(commit.view, commit.seq).commits[commit.digest][commit.sender] = commit
        self._ahead = {r: c for r, c in self._ahead.items() if c.seq > top}

    def _certified(self, seq: int) -> tuple[int, bytes, dict[int, Commit]] | None:
        """A view and digest with a quorum of commits at `seq`, if any."""
        for (view, s), slot in self._slots.items():
            if s != seq:
                continue
            for digest, commits in slot.commits.items():
                if len(commits) >= self._quorum:
                    return view, digest, commits
        return None

    def _try_deliver(self, out: list[Action]) -> None:
        while True:
            seq = self.committed + 1
            certified = self._certified(seq)
            if certified is None:
                return
            view, digest, commits = certified
            held = self._payloads.get(digest)
            if held is None:
                self._fetch(seq, digest, out)
                return
            signers = sorted(commits)[: self._quorum]
            certificate = CommitCertificate(
                height=Height(seq),
                block_hash=BlockHash(digest),
                view=view,
                signatures=tuple(
                    Signature(signer=s, sig=SignatureBytes(commits[s].sig)) for s in signers
                ),
            )
            out.append(Deliver(seq=seq, digest=digest, payload=held[1], certificate=certificate))
            self.committed = seq
            self._progress_ms = self._now
            self._fetching.pop(digest, None)
            self._fetch_started.pop(digest, None)
            if seq % self.config.checkpoint_interval == 0:
                # The host stores the block only when it carries out the `Deliver`.
                self._send_checkpoint(out, digest)
            self._forget_payloads()
            self._take_in_ahead()

    def _maybe_propose(self, out: list[Action]) -> None:
        if (
            self.active
            and self._has_work
            and not self._proposing
            and self.primary() == self.me
            and self.committed >= self._floor
            and self._catching_up == 0
        ):
            seq = self.committed + 1
            slot = self._slots.get((self.view, seq))
            if slot is None or slot.pre_prepare is None:
                self._proposing = True
                out.append(Propose(view=self.view, seq=seq))

    # -- checkpoints and fetching ----------------------------------------------------------

    def _on_checkpoint(self, checkpoint: Checkpoint, out: list[Action]) -> None:
        if checkpoint.seq <= self._stable[0] or not self._valid(checkpoint):
            return
        votes = self._checkpoints.setdefault(checkpoint.seq, {}).setdefault(checkpoint.digest, {})
        votes[checkpoint.sender] = checkpoint
        if len(votes) >= self._quorum:
            proof = tuple(votes[s] for s in sorted(votes)[: self._quorum])
            self._make_stable(checkpoint.seq, checkpoint.digest, proof, out)

    def _send_checkpoint(self, out: list[Action], delivered: bytes | None = None) -> None:
        """Vote for the last checkpoint height committed here, until it becomes stable.

        Sent when the block is delivered or passed by state transfer, and again every view
        timeout: without 2f+1 votes the window stops all progress, and votes get lost.
        """
        seq = self.committed - self.committed % self.config.checkpoint_interval
        if seq <= self._stable[0]:
            return
        sent, when = self._checkpoint_sent
        if sent == seq and self._now - when <= self.config.view_timeout_ms:
            return
        digest = delivered if delivered is not None else self._services.committed_digest(seq)
        if digest is None:
            return
        self._checkpoint_sent = (seq, self._now)
        checkpoint = self._sign(Checkpoint(seq=seq, digest=digest, sender=self.me))
        out.append(Broadcast(checkpoint))
        self._on_checkpoint(checkpoint, out)

    def _make_stable(
        self, seq: int, digest: bytes, proof: tuple[Checkpoint, ...], out: list[Action]
    ) -> None:
        if seq <= self._stable[0]:
            return
        self._stable = (seq, digest, proof)
        self._slots = {key: slot for key, slot in self._slots.items() if key[1] > seq}
        self._accepted = {s: pp for s, pp in self._accepted.items() if s > seq}
        self._prepared = {s: p for s, p in self._prepared.items() if s > seq}
        self._checkpoints = {s: v for s, v in self._checkpoints.items() if s > seq}
        self._forget_payloads()
        out.append(Persist(self.snapshot()))
        if seq > self.committed:
            self._catch_up(seq, out)

    def _catch_up(self, seq: int, out: list[Action]) -> None:
        if seq > self.committed and seq > self._catching_up:
            self._catching_up = seq
            self._catching_up_since = self._now
            out.append(CatchUp(seq=seq))

    def _fetch(self, seq: int, digest: bytes, out: list[Action]) -> None:
        if digest not in self._fetching:
            self._fetching[digest] = self._now
            self._fetch_started.setdefault(digest, self._now)
            out.append(Broadcast(Fetch(seq=seq, digest=digest, sender=self.me)))

    def _payload_seq_wanted(self, digest: bytes) -> int | None:
        if digest in self._payloads:
            return None
        for (_, seq), slot in self._slots.items():
            if seq <= self.committed:
                continue
            if (slot.pre_prepare is not None and slot.pre_prepare.digest == digest) or (
                digest in slot.commits
            ):
                return seq
        return None

    def _on_fetch(self, fetch: Fetch, out: list[Action]) -> None:
        held = self._payloads.get(fetch.digest)
        if held is not None and fetch.sender < self._n and fetch.sender != self.me:
            out.append(
                Send(fetch.sender, Payload(seq=held[0], digest=fetch.digest, payload=held[1]))
            )

    def _on_payload(self, payload: Payload, out: list[Action]) -> None:
        if payload.seq <= self.committed or payload.digest in self._payloads:
            return
        if self._payload_seq_wanted(payload.digest) is None:
            return
        if self._services.digest_of(payload.payload) != payload.digest:
            return
        self._payloads[payload.digest] = (payload.seq, payload.payload)
        self._fetching.pop(payload.digest, None)
        self._fetch_started.pop(payload.digest, None)
        self._advance(out)

    def _forget_payloads(self) -> None:
        """Drop block bytes no longer needed: committed and below the stable checkpoint."""
        floor = min(self._stable[0], self.committed)
        self._payloads = {d: held for d, held in self._payloads.items() if held[0] > floor}
        self._validated = {d: ok for d, ok in self._validated.items() if d in self._payloads}

    # -- view change -----------------------------------------------------------------------

    def _view_change_message(self) -> ViewChange:
        seq, digest, proof = self._stable
        return self._sign(
            ViewChange(
                view=self.view,
                checkpoint_seq=seq,
                checkpoint_digest=digest,
                checkpoint_proof=proof,
                prepared=tuple(self._prepared[s] for s in sorted(self._prepared) if s > seq),
                sender=self.me,
            )
        )

    def _start_view_change(self, view: int, out: list[Action]) -> None:
        if view <= self.view:
            return
        self.view = view
        self.active = False
        self._proposing = False
        self._new_view = None
        backoff = 2 ** min(self._vc_attempts, _MAX_BACKOFF)
        self._vc_attempts += 1
        self._vc_deadline = self._now + self.config.view_timeout_ms * backoff
        message = self._view_change_message()
        self._view_changes[view][self.me] = message
        out.append(Persist(self.snapshot()))
        out.append(Broadcast(message))
        out.append(ViewChanged(view=view, primary=self.primary(view)))
        self._check_new_view(out)

    def _on_view_change(self, vc: ViewChange, out: list[Action]) -> None:
        if vc.sender >= self._n or vc.sender == self.me:
            return
        if vc.view < self.view or (vc.view == self.view and self.active):
            # The sender is behind: the new-view message of this view brings it here.
            if self.active and self._new_view is not None:
                out.append(Send(vc.sender, self._new_view))
            return
        if vc.view > self.view + _VIEW_HORIZON or not self._valid_view_change(vc):
            return
        self._view_changes[vc.view][vc.sender] = vc
        # f+1 replicas want a later view: at least one honest one timed out; join them.
        wanting: dict[int, int] = {}
        for view, changes in self._view_changes.items():
            if view > self.view:
                for sender in changes:
                    wanting[sender] = min(view, wanting.get(sender, view))
        if len(wanting) > self._f:
            self._start_view_change(min(wanting.values()), out)
        self._check_new_view(out)

    def _check_new_view(self, out: list[Action]) -> None:
        if self.active or self.primary() != self.me or self._new_view is not None:
            return
        changes = self._view_changes[self.view]
        if len(changes) < self._quorum:
            return
        chosen = tuple(changes[s] for s in sorted(changes)[: self._quorum])
        _, _, again = reproposals(chosen, self.config.broken_view_change)
        pre_prepares = tuple(
            self._sign(PrePrepare(view=self.view, seq=seq, digest=digest, sender=self.me))
            for seq, digest in again
        )
        new_view = self._sign(
            NewView(view=self.view, view_changes=chosen, pre_prepares=pre_prepares, sender=self.me)
        )
        # `_install` sends it once the view and its pre-prepares are persisted.
        self._install(new_view, out)

    def _on_new_view(self, nv: NewView, out: list[Action]) -> None:
        if nv.view < self.view or (nv.view == self.view and self.active):
            return
        if nv.sender != self.primary(nv.view) or nv.sender == self.me or not self._valid(nv):
            return
        senders = {vc.sender for vc in nv.view_changes}
        if len(senders) < self._quorum or len(senders) != len(nv.view_changes):
            return
        for vc in nv.view_changes:
            if vc.view != nv.view or not self._valid_view_change(vc):
                return
        _, _, again = reproposals(nv.view_changes, self.config.broken_view_change)
        if [(pp.seq, pp.digest) for pp in nv.pre_prepares] != again:
            return
        for pp in nv.pre_prepares:
            if pp.view != nv.view or pp.sender != nv.sender or not self._valid(pp):
                return
        self.view = nv.view
        self._install(nv, out)

    def _install(self, nv: NewView, out: list[Action]) -> None:
        """Enter the view `nv` starts; its pre-prepares go through prepare and commit again.

        The primary sends `nv` here, after the log that holds the view and the pre-prepares
        is persisted: restarted before, it is still changing views; after, it cannot sign
        other blocks for those heights in this view.
        """
        self.active = True
        self._new_view = nv
        self._proposing = False
        self._progress_ms = self._now
        self._vc_attempts = 0
        primary = self.primary() == self.me
        for pp in nv.pre_prepares:
            slot = self._slot(pp.view, pp.seq)
            slot.pre_prepare = pp
            if primary:
                slot.accepted = True
                self._accepted[pp.seq] = pp
        low, low_digest, _ = reproposals(nv.view_changes, self.config.broken_view_change)
        for vc in nv.view_changes:
            if vc.checkpoint_seq == low and vc.checkpoint_digest == low_digest:
                self._make_stable(low, low_digest, vc.checkpoint_proof, out)
                break
        self._floor = max([low] + [pp.seq for pp in nv.pre_prepares])
        self._view_changes = defaultdict(
            dict, {v: c for v, c in self._view_changes.items() if v > self.view}
        )
        out.append(Persist(self.snapshot()))
        if primary:
            out.append(Broadcast(nv))
        out.append(ViewChanged(view=self.view, primary=self.primary()))
        for pp in nv.pre_prepares:
            if primary or pp.seq > self.committed:
                continue
            if self._services.committed_digest(pp.seq) == pp.digest:
                # Already committed here: vote again so that the others can commit it too.
                self._accept(self._slot(pp.view, pp.seq), out)
        if low > self.committed:
            self._catch_up(low, out)
        self._advance(out)

    def _valid_view_change(self, vc: ViewChange) -> bool:
        if not self._valid(vc):
            return False
        if vc.checkpoint_seq > 0:
            signers = set()
            for cp in vc.checkpoint_proof:
                if cp.seq != vc.checkpoint_seq or cp.digest != vc.checkpoint_digest:
                    return False
                if cp.sender in signers or not self._valid(cp):
                    return False
                signers.add(cp.sender)
            if len(signers) < self._quorum:
                return False
        elif vc.checkpoint_digest != self._stable_digest_at_zero():
            return False
        seen = set()
        for proof in vc.prepared:
            pp = proof.pre_prepare
            if pp.seq <= vc.checkpoint_seq or pp.view >= vc.view or pp.seq in seen:
                return False
            if pp.sender != self.primary(pp.view) or not self._valid(pp):
                return False
            seen.add(pp.seq)
            backups = set()
            for prepare in proof.prepares:
                if (prepare.view, prepare.seq, prepare.digest) != (pp.view, pp.seq, pp.digest):
                    return False
                if prepare.sender == pp.sender or prepare.sender in backups:
                    return False
                if not self._valid(prepare):
                    return False
                backups.add(prepare.sender)
            if len(backups) < 2 * self._f:
                return False
        return True

    def _stable_digest_at_zero(self) -> bytes:
        return self._services.committed_digest(0) or bytes(32)

    # -- helpers ---------------------------------------------------------------------------

    def _slot(self, view: int, seq: int) -> _Slot:
        slot = self._slots.get((view, seq))
        if slot is None:
            slot = self._slots[(view, seq)] = _Slot()
        return slot

    def _in_window(self, seq: int) -> bool:
        return self._stable[0] < seq <= self._stable[0] + self.config.window

    def _sign(self, vote: _V) -> _V:
        return msgspec.structs.replace(
            vote, sig=self._services.sign(signed_digest(self.config.chain_id, vote))
        )

    def _valid(self, vote: Vote) -> bool:
        """Whether `vote` is signed by the replica it names."""
        if not 0 <= vote.sender < self._n:
            return False
        return self._services.verify(
            vote.sender, signed_digest(self.config.chain_id, vote), vote.sig
        )

    def _restore(self, log: ReplicaLog) -> None:
        self.view = log.view
        self.active = log.active
        if log.checkpoint_seq > 0:
            self._stable = (log.checkpoint_seq, log.checkpoint_digest, log.checkpoint_proof)
        for pp in log.accepted:
            if pp.seq > self._stable[0]:
                self._accepted[pp.seq] = pp
                slot = self._slot(pp.view, pp.seq)
                slot.pre_prepare = pp
                slot.accepted = True
        for proof in log.prepared:
            if proof.pre_prepare.seq > self._stable[0]:
                self._prepared[proof.pre_prepare.seq] = proof
        for block in log.blocks:
            if block.seq > self.committed:
                self._payloads[block.digest] = (block.seq, block.payload)
        if not self.active:
            self._vc_deadline = self._now
