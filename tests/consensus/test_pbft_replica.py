"""The PBFT replica driven by hand: four replicas, real member keys, a test loop for a network.

`Cluster` delivers messages in the order they were sent, carries out every action the way a
node's host does (answering `Propose` and `Validate` at once), and lets a test drop, reorder
or forge messages. A block is a bare `Header`; its digest is `block_hash`, so every
certificate is checked by `tally.rules.certificate.check_certificate` itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import pytest

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
from tally.consensus.pbft.replica import (
    Replica,
    ReplicaConfig,
    faults_tolerated,
    quorum,
    reproposals,
)
from tally.crypto import verify
from tally.model import CommitCertificate, Header, Member, block_hash, decode, encode
from tally.model.rejection import Rejection
from tally.rules import check_certificate
from tests.rules.helpers import key

CHAIN = "tally-pbft-test"
N = 4
KEYS = [key(40 + i) for i in range(N)]
MEMBERS = tuple(Member(name=f"node{i}", key=k.public_key) for i, k in enumerate(KEYS))
GENESIS = bytes([7]) * 32
TIMEOUT = 1000


def make_header(height: int, prev: bytes, salt: int = 0) -> Header:
    return Header(
        chain_id=CHAIN,
        height=height,
        prev_hash=prev,
        time_ms=1_700_000_000_000 + 1000 * height + salt,
        tx_count=0,
        tx_root=bytes(32),
        state_root=bytes(32),
    )


V = TypeVar("V", PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView)


def signed(vote: V, signer: int | None = None) -> V:
    """`vote` signed by `signer` (by default its sender)."""
    who = vote.sender if signer is None else signer
    return msgspec.structs.replace(vote, sig=KEYS[who].sign(signed_digest(CHAIN, vote)))


def proposal(view: int, header: Header) -> Proposal:
    pp = PrePrepare(view=view, seq=header.height, digest=block_hash(header), sender=view % N)
    return Proposal(pre_prepare=signed(pp), payload=encode(header))


class Services:
    def __init__(self, me: int, chain: list[bytes]) -> None:
        self.me = me
        self.chain = chain

    def sign(self, digest: bytes) -> bytes:
        return KEYS[self.me].sign(digest)

    def verify(self, signer: int, digest: bytes, signature: bytes) -> bool:
        return 0 <= signer < N and verify(MEMBERS[signer].key, digest, signature)

    def digest_of(self, payload: bytes) -> bytes | None:
        try:
            return block_hash(decode(payload, Header))
        except Rejection:
            return None

    def committed_digest(self, seq: int) -> bytes | None:
        return self.chain[seq] if seq < len(self.chain) else None


class Cluster:
    """Four replicas and the loop between them."""

    def __init__(self, interval: int = 16, target: int = 1) -> None:
        self.interval = interval
        self.target = target
        """The primary builds blocks until its chain is this high; until then all have work."""
        self.now = 0
        self.chains: list[list[bytes]] = [[GENESIS] for _ in range(N)]
        self.headers: list[dict[int, Header]] = [{} for _ in range(N)]
        self.certificates: list[dict[int, CommitCertificate]] = [{} for _ in range(N)]
        self.logs: list[ReplicaLog | None] = [None] * N
        self.replicas = [self.start(i) for i in range(N)]
        self.queue: deque[tuple[int, int, Message]] = deque()
        self.sent: list[tuple[int, Message]] = []
        """(sender, message) of every message a replica sent."""
        self.history: list[tuple[int, Action]] = []
        """(replica, action) of every action carried out, in order."""
        self.catch_ups: list[list[int]] = [[] for _ in range(N)]
        self.down: set[int] = set()
        self.drop: Callable[[int, int, Message], bool] = lambda to, sender, message: False
        self.tamper: Callable[[int, int, Message], list[Message]] | None = None
        self.sync = True
        """Answer `CatchUp` by copying blocks from the highest peer."""

    def config(self, i: int) -> ReplicaConfig:
        return ReplicaConfig(
            chain_id=CHAIN, n=N, me=i, checkpoint_interval=self.interval, view_timeout_ms=TIMEOUT
        )

    def start(self, i: int, log: ReplicaLog | None = None) -> Replica:
        services = Services(i, self.chains[i])
        return Replica(self.config(i), services, len(self.chains[i]) - 1, log, self.now)

    def restart(self, i: int) -> Replica:
        self.replicas[i] = self.start(i, self.logs[i])
        return self.replicas[i]

    def height(self, i: int) -> int:
        return len(self.chains[i]) - 1

    # -- the network -----------------------------------------------------------------------

    def send(self, sender: int, to: int, message: Message) -> None:
        messages = self.tamper(sender, to, message) if self.tamper is not None else [message]
        for m in messages:
            self.queue.append((to, sender, m))

    def run(self, limit: int = 20_000) -> None:
        steps = 0
        while self.queue:
            steps += 1
            assert steps < limit, "the replicas never fall silent"
            to, sender, message = self.queue.popleft()
            if to in self.down or sender in self.down or self.drop(to, sender, message):
                continue
            self.act(to, self.replicas[to].on_message(message, self.now))

    def tick(self, ms: int = 10) -> None:
        self.now += ms
        for i in range(N):
            if i not in self.down:
                has_work = self.height(i) < self.target
                self.act(i, self.replicas[i].on_tick(self.now, has_work))
        self.run()

    def settle(self, ms: int = 5000, step: int = 50) -> None:
        for _ in range(ms // step):
            self.tick(step)

    # -- the host --------------------------------------------------------------------------

    def act(self, i: int, actions: list[Action]) -> None:
        pending = deque(actions)
        replica = self.replicas[i]
        while pending:
            action = pending.popleft()
            self.history.append((i, action))
            more: list[Action] = []
            if isinstance(action, Broadcast):
                self.sent.append((i, action.message))
                for to in range(N):
                    if to != i:
                        self.send(i, to, action.message)
            elif isinstance(action, Send):
                self.sent.append((i, action.message))
                self.send(i, action.to, action.message)
            elif isinstance(action, Persist):
                self.logs[i] = action.log
            elif isinstance(action, Propose):
                more = self.propose(i, replica, action)
            elif isinstance(action, Validate):
                more = replica.on_validated(action.digest, self.validate(i, action))
            elif isinstance(action, Deliver):
                self.deliver(i, action)
            elif isinstance(action, CatchUp):
                self.catch_ups[i].append(action.seq)
                if self.sync:
                    more = self.transfer(i, replica)
            else:
                assert isinstance(action, ViewChanged)
            pending.extendleft(reversed(more))

    def propose(self, i: int, replica: Replica, action: Propose) -> list[Action]:
        if action.seq != self.height(i) + 1 or self.height(i) >= self.target:
            return replica.on_proposed(action.view, action.seq, bytes(32), None)
        header = make_header(action.seq, self.chains[i][-1], salt=action.view)
        return replica.on_proposed(action.view, action.seq, block_hash(header), encode(header))

    def validate(self, i: int, action: Validate) -> bool:
        header = decode(action.payload, Header)
        if action.seq <= self.height(i):
            return self.chains[i][action.seq] == action.digest
        return header.height == action.seq == self.height(i) + 1 and (
            header.prev_hash == self.chains[i][-1]
        )

    def deliver(self, i: int, action: Deliver) -> None:
        header = decode(action.payload, Header)
        check_certificate(action.certificate, header, MEMBERS, verify)
        if action.seq <= self.height(i):
            assert self.chains[i][action.seq] == action.digest, "fork"
            return
        assert action.seq == self.height(i) + 1
        assert header.prev_hash == self.chains[i][-1], "fork"
        self.store(i, header, action.certificate)

    def store(self, i: int, header: Header, certificate: CommitCertificate) -> None:
        self.chains[i].append(block_hash(header))
        self.headers[i][header.height] = header
        self.certificates[i][header.height] = certificate

    def transfer(self, i: int, replica: Replica) -> list[Action]:
        source = max(range(N), key=self.height)
        for height in range(self.height(i) + 1, self.height(source) + 1):
            header = self.headers[source][height]
            certificate = self.certificates[source][height]
            check_certificate(certificate, header, MEMBERS, verify)
            self.store(i, header, certificate)
        return replica.on_synced(self.height(i), self.now)

    # -- reading ---------------------------------------------------------------------------

    def log(self, i: int) -> ReplicaLog:
        log = self.logs[i]
        assert log is not None
        return log

    def sent_by(self, i: int, kind: type) -> list[Any]:
        return [m for sender, m in self.sent if sender == i and isinstance(m, kind)]


def broadcasts(actions: list[Action], kind: type) -> list[Any]:
    return [a.message for a in actions if isinstance(a, Broadcast) and isinstance(a.message, kind)]


def sends(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, Send) and isinstance(a.message, kind)]


# -- quorums ------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "f", "q"), [(1, 0, 1), (4, 1, 3), (5, 1, 3), (7, 2, 5), (10, 3, 7)])
def test_quorum_is_two_f_plus_one(n: int, f: int, q: int) -> None:
    assert faults_tolerated(n) == f
    assert quorum(n) == q


# -- the normal case ----------------------------------------------------------------------


def test_normal_case_commits_a_block_with_a_quorum_certificate() -> None:
    cluster = Cluster(target=3)
    cluster.tick()
    for i in range(N):
        assert cluster.height(i) == 3
        assert cluster.chains[i] == cluster.chains[0]
        for height in (1, 2, 3):
            certificate = cluster.certificates[i][height]
            check_certificate(certificate, cluster.headers[i][height], MEMBERS, verify)
            signers = [s.signer for s in certificate.signatures]
            assert len(signers) == quorum(N) == len(set(signers))
            assert certificate.view == 0


def test_certificate_check_refuses_one_signature_short() -> None:
    cluster = Cluster()
    cluster.tick()
    certificate = cluster.certificates[1][1]
    short = msgspec.structs.replace(certificate, signatures=certificate.signatures[:-1])
    with pytest.raises(Rejection):
        check_certificate(short, cluster.headers[1][1], MEMBERS, verify)


def test_prepare_with_a_bad_signature_is_ignored() -> None:
    cluster = Cluster()
    block = make_header(1, GENESIS)
    replica = cluster.replicas[1]
    actions = replica.on_message(proposal(0, block), 0)
    validate = [a for a in actions if isinstance(a, Validate)]
    assert len(validate) == 1
    replica.on_validated(validate[0].digest, True)
    digest = block_hash(block)
    good = signed(Prepare(view=0, seq=1, digest=digest, sender=3))
    forged = signed(Prepare(view=0, seq=1, digest=digest, sender=3), signer=2)
    spoiled = msgspec.structs.replace(good, sig=bytes(64))
    assert broadcasts(replica.on_message(forged, 0), Commit) == []
    assert broadcasts(replica.on_message(spoiled, 0), Commit) == []
    # The genuine prepare completes the prepared certificate: now it commits.
    assert len(broadcasts(replica.on_message(good, 0), Commit)) == 1


def test_commit_with_a_bad_signature_does_not_count_towards_a_certificate() -> None:
    cluster = Cluster()
    cluster.drop = lambda to, sender, m: isinstance(m, Commit)
    cluster.tick()
    assert cluster.height(2) == 0
    replica = cluster.replicas[2]
    commits = [m for s, m in cluster.sent if isinstance(m, Commit) and s in (0, 1)]
    assert len(commits) == 2
    spoiled = msgspec.structs.replace(commits[0], sig=bytes(64))
    # Its own commit and a forged one are two signatures, not a quorum.
    assert not any(isinstance(a, Deliver) for a in replica.on_message(spoiled, 0))
    assert not any(isinstance(a, Deliver) for a in replica.on_message(commits[1], 0))
    delivered = [a for a in replica.on_message(commits[0], 0) if isinstance(a, Deliver)]
    assert len(delivered) == 1
    assert all(s.sig != bytes(64) for s in delivered[0].certificate.signatures)


# -- a faulty primary and timeouts -----------------------------------------------------------


def test_equivocating_primary_causes_a_view_change_and_no_fork() -> None:
    cluster = Cluster()
    other = make_header(1, GENESIS, salt=99)

    def equivocate(sender: int, to: int, message: Message) -> list[Message]:
        if sender == 0 and isinstance(message, Proposal) and message.pre_prepare.view == 0:
            # Backup 1 sees both blocks, 2 the genuine one, 3 the other one.
            split: dict[int, list[Message]] = {
                1: [message, proposal(0, other)],
                2: [message],
                3: [proposal(0, other)],
            }
            return split[to]
        return [message]

    cluster.tamper = equivocate
    cluster.tick()
    # Replica 1 saw two blocks for height 1 signed by the primary and asked for view 1.
    assert [vc.view for vc in cluster.sent_by(1, ViewChange)] == [1]
    assert cluster.replicas[1].view == 1
    cluster.settle()
    assert {cluster.height(i) for i in range(N)} == {1}
    assert len({cluster.chains[i][1] for i in range(N)}) == 1
    assert min(r.view for r in cluster.replicas) >= 1


def test_timeout_with_work_changes_view_and_reproposes_the_prepared_block() -> None:
    cluster = Cluster()
    cluster.drop = lambda to, sender, m: isinstance(m, Commit)
    cluster.tick()
    prepared = cluster.log(1).prepared
    assert [p.pre_prepare.seq for p in prepared] == [1]
    digest = prepared[0].pre_prepare.digest
    assert cluster.height(1) == 0
    cluster.drop = lambda to, sender, m: False
    cluster.tick(TIMEOUT + 10)
    assert all(r.view == 1 and r.active for r in cluster.replicas)
    new_views = set(cluster.sent_by(1, NewView))
    assert len(new_views) == 1
    assert [(pp.seq, pp.digest) for pp in new_views.pop().pre_prepares] == [(1, digest)]
    # The new primary proposed nothing of its own at height 1.
    assert not [m for m in cluster.sent_by(1, Proposal) if m.pre_prepare.seq == 1]
    for i in range(N):
        assert cluster.chains[i][1:] == [digest]
        assert cluster.certificates[i][1].view == 1


def test_new_primary_persists_the_view_before_it_sends_the_new_view() -> None:
    cluster = Cluster()
    cluster.drop = lambda to, sender, m: isinstance(m, Commit)
    cluster.tick()
    cluster.drop = lambda to, sender, m: False
    cluster.tick(TIMEOUT + 10)
    actions = [a for i, a in cluster.history if i == 1]
    sent = next(
        k
        for k, a in enumerate(actions)
        if isinstance(a, Broadcast) and isinstance(a.message, NewView)
    )
    persisted = [a.log for a in actions[:sent] if isinstance(a, Persist)]
    assert persisted
    log = persisted[-1]
    assert (log.view, log.active) == (1, True)
    assert [(pp.view, pp.seq) for pp in log.accepted] == [(1, 1)]


def test_timeout_without_work_keeps_the_view() -> None:
    cluster = Cluster(target=0)
    cluster.tick(5 * TIMEOUT)
    assert all(r.view == 0 and r.active for r in cluster.replicas)
    assert cluster.sent_by(1, ViewChange) == []


# -- checkpoints ------------------------------------------------------------------------------


def test_checkpoints_become_stable_and_old_slots_are_dropped() -> None:
    cluster = Cluster(interval=2, target=5)
    cluster.tick()
    for replica in cluster.replicas:
        assert replica.committed == 5
        assert replica.stable_checkpoint == 4
        log = replica.snapshot()
        assert log.checkpoint_seq == 4
        assert len({cp.sender for cp in log.checkpoint_proof}) == quorum(N)
        assert all(cp.seq == 4 and cp.digest == cluster.chains[0][4] for cp in log.checkpoint_proof)
        assert [pp.seq for pp in log.accepted] == [5]
        assert [p.pre_prepare.seq for p in log.prepared] == [5]
        assert all(seq > 4 for _, seq in replica._slots)
    # A vote below the checkpoint changes nothing.
    stale = signed(Prepare(view=0, seq=3, digest=cluster.chains[0][3], sender=2))
    assert cluster.replicas[1].on_message(stale, cluster.now) == []
    assert all(seq > 4 for _, seq in cluster.replicas[1]._slots)


def test_state_transfer_past_a_checkpoint_height_votes_for_it() -> None:
    cluster = Cluster(interval=2, target=3)
    cluster.down = {3}
    cluster.tick()
    assert cluster.height(3) == 0
    cluster.down = set()
    replica = cluster.replicas[3]
    for header in (cluster.headers[0][h] for h in (1, 2, 3)):
        cluster.store(3, header, cluster.certificates[0][header.height])
    actions = replica.on_synced(3, cluster.now)
    assert broadcasts(actions, Checkpoint) == [
        signed(Checkpoint(seq=2, digest=cluster.chains[0][2], sender=3))
    ]


def test_checkpoint_is_sent_again_until_it_becomes_stable() -> None:
    cluster = Cluster(interval=2, target=2)
    cluster.drop = lambda to, sender, m: isinstance(m, Checkpoint)
    cluster.tick()
    assert all(r.committed == 2 and r.stable_checkpoint == 0 for r in cluster.replicas)
    cluster.drop = lambda to, sender, m: False
    cluster.tick(TIMEOUT // 2)
    assert all(r.stable_checkpoint == 0 for r in cluster.replicas)
    cluster.tick(TIMEOUT)
    assert all(r.stable_checkpoint == 2 for r in cluster.replicas)
    assert len(cluster.sent_by(0, Checkpoint)) == 2


# -- crashes ------------------------------------------------------------------------------------


def test_restarted_replica_does_not_prepare_a_second_block_for_a_height() -> None:
    cluster = Cluster()
    cluster.drop = lambda to, sender, m: isinstance(m, Prepare | Commit)
    cluster.tick()
    log = cluster.log(1)
    first = make_header(1, GENESIS, salt=0)
    assert [(pp.view, pp.seq, pp.digest) for pp in log.accepted] == [(0, 1, block_hash(first))]
    other = proposal(0, make_header(1, GENESIS, salt=99))

    restarted = cluster.restart(1)
    actions = restarted.on_message(other, cluster.now)
    assert not [a for a in actions if isinstance(a, Validate)]
    assert broadcasts(actions, Prepare) == []
    # It knows the primary signed two blocks for height 1, and asks for a new view.
    assert [vc.view for vc in broadcasts(actions, ViewChange)] == [1]

    # Without its log, the same replica would have prepared the second block.
    amnesiac = cluster.start(1)
    actions = amnesiac.on_message(other, cluster.now)
    validate = [a for a in actions if isinstance(a, Validate)]
    assert len(validate) == 1
    assert broadcasts(amnesiac.on_validated(validate[0].digest, True), Prepare)


def test_restarted_replica_still_hands_out_the_block_it_prepared() -> None:
    cluster = Cluster()
    cluster.drop = lambda to, sender, m: isinstance(m, Commit)
    cluster.tick()
    digest = cluster.log(2).prepared[0].pre_prepare.digest
    assert [b.digest for b in cluster.log(2).blocks] == [digest]
    restarted = cluster.restart(2)
    answer = restarted.on_message(Fetch(seq=1, digest=digest, sender=3), cluster.now)
    payloads = sends(answer, Payload)
    assert len(payloads) == 1
    assert payloads[0].to == 3
    assert block_hash(decode(payloads[0].message.payload, Header)) == digest


def test_restarted_replica_in_a_view_change_counts_its_own() -> None:
    cluster = Cluster()
    cluster.down = {3}
    cluster.drop = lambda to, sender, m: (
        isinstance(m, Proposal) or (isinstance(m, ViewChange) and to == 1)
    )
    cluster.tick()
    cluster.tick(TIMEOUT + 10)
    # Replicas 0, 1 and 2 asked for view 1; its primary, 1, heard none of the others.
    assert all(cluster.replicas[i].view == 1 for i in (0, 1, 2))
    assert not any(cluster.replicas[i].active for i in (0, 1, 2))
    others = [vc for s, vc in cluster.sent if isinstance(vc, ViewChange) and s in (0, 2)]
    cluster.drop = lambda to, sender, m: False
    restarted = cluster.restart(1)
    assert restarted.view == 1
    assert not restarted.active
    for vc in others:
        assert restarted.on_message(vc, cluster.now) == []
    actions = restarted.on_tick(cluster.now + 10, True)
    new_views = broadcasts(actions, NewView)
    assert len(new_views) == 1
    assert sorted(vc.sender for vc in new_views[0].view_changes) == [0, 1, 2]


# -- views ---------------------------------------------------------------------------------------


def test_pre_prepare_that_overtakes_its_new_view_is_kept() -> None:
    cluster = Cluster()

    def hold_back_new_view(sender: int, to: int, message: Message) -> list[Message]:
        if isinstance(message, NewView) and to == 2:
            held.append(message)
            return []
        return [message]

    held: list[Message] = []
    cluster.drop = lambda to, sender, m: sender == 0
    cluster.tick()
    cluster.tamper = hold_back_new_view
    cluster.tick(TIMEOUT + 10)
    replica = cluster.replicas[2]
    assert replica.view == 1
    assert not replica.active
    assert cluster.height(2) == 0
    # The proposal for height 1 in view 1 reached replica 2 before the new view did.
    assert [m.pre_prepare.view for m in cluster.sent_by(1, Proposal)] == [1]
    assert held
    cluster.tamper = None
    actions = replica.on_message(held[0], cluster.now)
    validate = [a for a in actions if isinstance(a, Validate)]
    assert [v.seq for v in validate] == [1]
    assert broadcasts(replica.on_validated(validate[0].digest, True), Prepare)


@pytest.mark.parametrize("interval", [2, 16])
def test_lagging_replica_is_told_to_catch_up(interval: int) -> None:
    cluster = Cluster(interval=interval, target=3)
    cluster.down = {3}
    cluster.tick()
    assert [cluster.height(i) for i in range(N)] == [3, 3, 3, 0]
    assert cluster.catch_ups[3] == []
    cluster.down = set()
    cluster.target = 4
    cluster.tick()
    # Replica 3 missed heights 1 to 3; the votes for height 4 (and with a short interval, the
    # checkpoint at 4) show it.
    assert cluster.catch_ups[3]
    assert min(cluster.catch_ups[3]) == 3
    assert cluster.chains[3] == cluster.chains[0]
    assert cluster.height(3) == 4


def test_replica_far_behind_is_told_by_votes_beyond_its_window() -> None:
    cluster = Cluster(interval=2, target=6)
    cluster.sync = False
    cluster.down = {3}
    cluster.tick()
    replica = cluster.replicas[3]
    commits = [m for s, m in cluster.sent if isinstance(m, Commit) and m.seq == 6]
    assert len(commits) == 3
    assert replica.config.window == 4
    assert [a for a in replica.on_message(commits[0], cluster.now) if isinstance(a, CatchUp)] == []
    caught = replica.on_message(commits[1], cluster.now)
    assert [a.seq for a in caught if isinstance(a, CatchUp)] == [5]
    replica.on_message(commits[2], cluster.now)
    # State transfer brings it to 5, the window to the votes for 6 it kept: it commits 6.
    for height in range(1, 6):
        cluster.store(3, cluster.headers[0][height], cluster.certificates[0][height])
    fetches = broadcasts(replica.on_synced(5, cluster.now), Fetch)
    assert [(f.seq, f.digest) for f in fetches] == [(6, cluster.chains[0][6])]
    block = Payload(seq=6, digest=cluster.chains[0][6], payload=encode(cluster.headers[0][6]))
    delivered = [a for a in replica.on_message(block, cluster.now) if isinstance(a, Deliver)]
    assert [(d.seq, d.digest) for d in delivered] == [(6, cluster.chains[0][6])]
    check_certificate(delivered[0].certificate, cluster.headers[0][6], MEMBERS, verify)


def test_replica_alone_in_a_view_change_asks_for_state_transfer() -> None:
    # The others have no work and do not join: they may have committed blocks it missed
    # just before everything went quiet.
    replica = Cluster(target=0).replicas[2]
    assert [vc.view for vc in broadcasts(time_out(replica), ViewChange)] == [1]
    assert not [a for a in replica.on_tick(TIMEOUT + 30, True) if isinstance(a, CatchUp)]
    actions = replica.on_tick(2 * TIMEOUT + 30, True)
    assert [vc.view for vc in broadcasts(actions, ViewChange)] == [1]
    assert [a.seq for a in actions if isinstance(a, CatchUp)] == [1]


def test_block_nobody_hands_out_is_fetched_by_state_transfer() -> None:
    cluster = Cluster()
    replica = cluster.replicas[3]
    block = make_header(1, GENESIS)
    pre_prepare = proposal(0, block).pre_prepare
    fetches = broadcasts(replica.on_message(pre_prepare, 0), Fetch)
    assert [(f.seq, f.digest) for f in fetches] == [(1, block_hash(block))]
    now = 0
    caught: list[CatchUp] = []
    while now <= 2 * TIMEOUT and not caught:
        now += 50
        caught = [a for a in replica.on_tick(now, False) if isinstance(a, CatchUp)]
    assert [a.seq for a in caught] == [1]
    assert TIMEOUT < now <= TIMEOUT + 2 * TIMEOUT // 4


def test_unanswered_catch_up_does_not_stop_the_primary_for_good() -> None:
    cluster = Cluster(target=0)
    replica = cluster.replicas[0]
    block = make_header(1, GENESIS)
    commits = [
        signed(
            Commit(view=0, seq=2, digest=block_hash(make_header(2, block_hash(block))), sender=s)
        )
        for s in (1, 2, 3)
    ]
    caught = []
    for commit in commits:
        caught += [a for a in replica.on_message(commit, 0) if isinstance(a, CatchUp)]
    assert [a.seq for a in caught] == [1]
    # The host found nobody to transfer from and never answered.
    assert not any(isinstance(a, Propose) for a in replica.on_tick(10, True))
    assert not any(isinstance(a, Propose) for a in replica.on_tick(TIMEOUT, True))
    assert any(isinstance(a, Propose) for a in replica.on_tick(TIMEOUT + 5, True))


# -- view-change rules -------------------------------------------------------------------------


def _pp(view: int, seq: int, digest: bytes) -> PrePrepare:
    return PrePrepare(view=view, seq=seq, digest=digest, sender=view % N)


def _vc(sender: int, prepared: tuple[PrePrepare, ...], checkpoint: int = 0) -> ViewChange:
    return ViewChange(
        view=5,
        checkpoint_seq=checkpoint,
        checkpoint_digest=bytes([checkpoint]) * 32,
        checkpoint_proof=(),
        prepared=tuple(PreparedProof(pre_prepare=pp, prepares=()) for pp in prepared),
        sender=sender,
    )


def test_reproposals_take_the_block_prepared_in_the_highest_view() -> None:
    a, b, c = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32
    changes = (
        _vc(0, (_pp(0, 1, a), _pp(0, 2, b))),
        _vc(1, (_pp(2, 1, c),)),
        _vc(2, ()),
    )
    assert reproposals(changes) == (0, bytes(32), [(1, c), (2, b)])
    assert reproposals(changes[::-1]) == (0, bytes(32), [(1, c), (2, b)])


def test_reproposals_start_above_the_highest_checkpoint_and_stop_at_a_gap() -> None:
    a, b, c = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32
    changes = (
        _vc(0, (_pp(1, 3, a), _pp(1, 5, b)), checkpoint=2),
        _vc(1, (_pp(0, 2, c),)),
        _vc(2, (), checkpoint=1),
    )
    assert reproposals(changes) == (2, bytes([2]) * 32, [(3, a)])
    assert reproposals(changes, broken=True) == (2, bytes([2]) * 32, [])


def _view_change(sender: int, view: int = 1, **fields) -> ViewChange:
    vc = ViewChange(
        view=view,
        checkpoint_seq=0,
        checkpoint_digest=GENESIS,
        checkpoint_proof=(),
        prepared=(),
        sender=sender,
    )
    return signed(msgspec.structs.replace(vc, **fields))


def _checkpoint_proof(seq: int, digest: bytes, senders) -> tuple[Checkpoint, ...]:
    return tuple(signed(Checkpoint(seq=seq, digest=digest, sender=s)) for s in senders)


def _prepared_proof(view: int, seq: int, digest: bytes, backups) -> PreparedProof:
    pp = signed(PrePrepare(view=view, seq=seq, digest=digest, sender=view % N))
    prepares = tuple(signed(Prepare(view=view, seq=seq, digest=digest, sender=s)) for s in backups)
    return PreparedProof(pre_prepare=pp, prepares=prepares)


DIGEST = bytes([9]) * 32
VALID = {
    "a stable checkpoint with its proof": {
        "checkpoint_seq": 16,
        "checkpoint_digest": DIGEST,
        "checkpoint_proof": _checkpoint_proof(16, DIGEST, (0, 1, 2)),
    },
    "a prepared certificate": {"prepared": (_prepared_proof(0, 1, DIGEST, (1, 2)),)},
}
INVALID = {
    "checkpoint proof one vote short": {
        "checkpoint_seq": 16,
        "checkpoint_digest": DIGEST,
        "checkpoint_proof": _checkpoint_proof(16, DIGEST, (0, 1)),
    },
    "checkpoint proof with one voter twice": {
        "checkpoint_seq": 16,
        "checkpoint_digest": DIGEST,
        "checkpoint_proof": _checkpoint_proof(16, DIGEST, (0, 1, 1)),
    },
    "checkpoint proof for another block": {
        "checkpoint_seq": 16,
        "checkpoint_digest": DIGEST,
        "checkpoint_proof": _checkpoint_proof(16, bytes(32), (0, 1, 2)),
    },
    "checkpoint proof with a forged vote": {
        "checkpoint_seq": 16,
        "checkpoint_digest": DIGEST,
        "checkpoint_proof": (
            *_checkpoint_proof(16, DIGEST, (0, 1)),
            signed(Checkpoint(seq=16, digest=DIGEST, sender=2), signer=3),
        ),
    },
    "wrong digest at height 0": {"checkpoint_digest": DIGEST},
    "prepared certificate with too few prepares": {
        "prepared": (_prepared_proof(0, 1, DIGEST, (1,)),)
    },
    "prepared certificate with the primary's prepare": {
        "prepared": (_prepared_proof(0, 1, DIGEST, (0, 1)),)
    },
    "prepared certificate of the view it leaves for": {
        "prepared": (_prepared_proof(1, 1, DIGEST, (2, 3)),)
    },
}


@pytest.mark.parametrize("fields", VALID.values(), ids=VALID.keys())
def test_valid_view_changes_of_f_plus_one_replicas_are_joined(fields) -> None:
    replica = Cluster().replicas[2]
    assert broadcasts(replica.on_message(_view_change(0), 0), ViewChange) == []
    actions = replica.on_message(_view_change(3, **fields), 0)
    assert [vc.view for vc in broadcasts(actions, ViewChange)] == [1]
    assert replica.view == 1


@pytest.mark.parametrize("fields", INVALID.values(), ids=INVALID.keys())
def test_invalid_view_changes_are_refused(fields) -> None:
    replica = Cluster().replicas[2]
    replica.on_message(_view_change(0), 0)
    actions = replica.on_message(_view_change(3, **fields), 0)
    assert broadcasts(actions, ViewChange) == []
    assert replica.view == 0
    assert replica.active


def time_out(replica: Replica) -> list[Action]:
    """Give `replica` work, then let its view timeout pass."""
    replica.on_tick(10, True)
    return replica.on_tick(TIMEOUT + 20, True)


@pytest.mark.parametrize("fields", INVALID.values(), ids=INVALID.keys())
def test_new_view_with_an_invalid_view_change_is_refused(fields) -> None:
    replica = Cluster().replicas[2]
    own = broadcasts(time_out(replica), ViewChange)
    assert [vc.view for vc in own] == [1]
    changes = (_view_change(0), _view_change(1), _view_change(3, **fields))
    bad = signed(NewView(view=1, view_changes=changes, pre_prepares=(), sender=1))
    assert replica.on_message(bad, TIMEOUT + 20) == []
    assert not replica.active
    # The same new view with a valid third view change is followed.
    changes = (_view_change(0), _view_change(1), own[0])
    good = signed(NewView(view=1, view_changes=changes, pre_prepares=(), sender=1))
    assert replica.on_message(good, TIMEOUT + 30) != []
    assert replica.view == 1
    assert replica.active


def test_new_view_whose_reproposals_differ_from_its_view_changes_is_refused() -> None:
    replica = Cluster().replicas[2]
    assert broadcasts(time_out(replica), ViewChange)
    prepared = {"prepared": (_prepared_proof(0, 1, DIGEST, (1, 2)),)}
    changes = (_view_change(0, **prepared), _view_change(1), _view_change(3))
    omits = signed(NewView(view=1, view_changes=changes, pre_prepares=(), sender=1))
    assert replica.on_message(omits, TIMEOUT + 20) == []
    assert not replica.active
    again = (signed(PrePrepare(view=1, seq=1, digest=DIGEST, sender=1)),)
    right = signed(NewView(view=1, view_changes=changes, pre_prepares=again, sender=1))
    replica.on_message(right, TIMEOUT + 30)
    assert replica.active


def test_signatures_cover_the_chain_id() -> None:
    vote: Vote = Prepare(view=0, seq=1, digest=DIGEST, sender=1)
    assert signed_digest(CHAIN, vote) != signed_digest("another-chain", vote)
    commit = Commit(view=0, seq=1, digest=DIGEST, sender=1)
    assert signed_digest(CHAIN, commit) != signed_digest("another-chain", commit)
