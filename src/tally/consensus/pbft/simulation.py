"""A whole PBFT network in one process, over a simulated network and clock, driven by a seed.

The simulation runs n `Replica`s (`tally.consensus.pbft.replica`) with a host loop each, a toy
ledger for an application, and a network that loses, delays, duplicates and reorders
messages, splits into partitions that later heal, leaves a host deaf or mute for a while, and
crashes and restarts hosts (a host may die part-way through carrying out a list of actions).
Everything random comes from one `random.Random(seed)`, so a seed replays its run event for
event; the trace hash (`Outcome.trace_hash`) proves it.

A run has a fault phase, where the schedule drawn from the seed does its worst with at most f
faulty replicas at a time (Byzantine ones, and crashed ones while they are down; in some runs
any number crash, since a crash with a durable log is no fault for safety), then a quiet
phase: partitions heal, crashed hosts restart, the network stops losing messages, and clients
submit a few more transactions. The seed also picks how the hosts behave where a real host
may differ: whether they answer `Propose` and `Validate` at once or a little later, and whether
they ask peers for blocks when work waits without commits. The checker watches every commit as
it happens and looks at every honest host at the end:

- no fork: honest hosts store the same block at every height they share;
- no acknowledged transaction lost: a transaction is acknowledged when an honest host commits a
  block holding it, and at the end every honest host holds it, at one common height;
- no double spend and conservation in every honest chain (the toy ledger's rules);
- every commit carries a valid certificate: 2f+1 distinct valid commit signatures;
- liveness: the quiet phase's transactions commit everywhere before a deadline.

Byzantine replicas come in three kinds: twins (two hosts with one replica's key and index,
usually in different partitions), an equivocating primary (sends different blocks for one
height to different backups), and a replica whose signatures are bad or claim another sender.

`python -m tally.consensus.pbft.simulation --seed S` replays one seed and prints its trace;
`--seeds N --start S [--jobs J]` runs many and prints a summary.

The toy ledger: coins are integer ids with a value; a transaction spends coins and creates new
ones of the same total value. A block is `ToyBlock(height, prev, time_ms, txs, state)` in
MessagePack, its digest is SHA-256 of those bytes, and `state` is an additive hash of the
unspent coins after the block, so that a block executed on another parent fails validation.
Signatures are a keyed BLAKE2b of the digest with the replica's secret: fast, and forgeable by
nobody who lacks the secret, which is all the protocol needs from them here.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

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
    Message,
    NewView,
    Proposal,
    Txs,
    ViewChange,
    Vote,
    decode_message,
    encode_message,
    signed_digest,
)
from tally.consensus.pbft.replica import Replica, ReplicaConfig, faults_tolerated, quorum
from tally.model.block import CommitCertificate
from tally.model.types import BlockHash, Height
from tally.rules.certificate import commit_message

__all__ = [
    "CHAIN_ID",
    "ToyTx",
    "ToyBlock",
    "Ledger",
    "Scenario",
    "Outcome",
    "Simulation",
    "run_seed",
    "run_seeds",
    "check_certificate",
    "main",
]

CHAIN_ID = "tally-sim"

_GENESIS_COINS = 64
_GENESIS_VALUE = 1000
_MAX_BLOCK_TXS = 8
_TICK_MS = 10
_SYNC_BATCH = 32
_SYNC_TIMEOUT_MS = 150
_REFORWARD_MS = 400
_QUIET_MAX_MS = 120_000
_CHECK_EVERY_MS = 50
_LIVENESS_TXS = 3
_MASK = (1 << 256) - 1


# -- the toy ledger ----------------------------------------------------------------------


class ToyTx(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Spends coins and creates new ones of the same total value."""

    id: int
    """Unique per transaction a client builds."""
    spends: tuple[int, ...]
    """Coins consumed; each must be unspent."""
    creates: tuple[tuple[int, int], ...]
    """(coin id, value) of each coin created; ids never seen before, values positive."""


class ToyBlock(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A block of the toy ledger; its digest is SHA-256 of its encoding."""

    height: int
    """1 for the first block."""
    prev: bytes
    """Digest of the block below (of genesis for the first)."""
    time_ms: int
    """The proposer's clock, as in a real header: two proposals of the same transactions
    are two blocks."""
    txs: tuple[ToyTx, ...]
    """Transactions in execution order."""
    state: bytes
    """Hash of the unspent coins after the block."""


_block_decoder = msgspec.msgpack.Decoder(ToyBlock)
_tx_decoder = msgspec.msgpack.Decoder(ToyTx)
_encoder = msgspec.msgpack.Encoder()


def _coin_term(coin: int, value: int) -> int:
    data = coin.to_bytes(8, "big") + value.to_bytes(8, "big")
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def _genesis() -> tuple[dict[int, int], int]:
    coins = dict.fromkeys(range(_GENESIS_COINS), _GENESIS_VALUE)
    acc = sum(_coin_term(c, v) for c, v in coins.items()) & _MASK
    return coins, acc


_GENESIS_COIN_SET, _GENESIS_ACC = _genesis()
_GENESIS_TOTAL = _GENESIS_COINS * _GENESIS_VALUE
_GENESIS_DIGEST = hashlib.sha256(b"tally-sim genesis").digest()


class Ledger:
    """A host's store: the committed blocks with their certificates, and the state they give.

    It survives crashes, like a database would.
    """

    def __init__(self) -> None:
        self.coins: dict[int, int] = dict(_GENESIS_COIN_SET)
        """Unspent coin id → value."""
        self.created: set[int] = set(_GENESIS_COIN_SET)
        """Every coin id ever created."""
        self.tx_ids: set[int] = set()
        self.acc = _GENESIS_ACC
        self.digests: list[bytes] = [_GENESIS_DIGEST]
        """Block digest by height; 0 is genesis."""
        self.blocks: list[tuple[bytes, CommitCertificate]] = []
        """(payload, certificate) of heights 1, 2, …"""

    @property
    def height(self) -> int:
        """Height of the last committed block."""
        return len(self.digests) - 1

    @property
    def tip(self) -> bytes:
        """Digest of the last committed block."""
        return self.digests[-1]

    def execute(self, txs: Iterable[ToyTx]) -> int | None:
        """The state hash after `txs` on top of this state, or None if one does not apply."""
        acc = self.acc
        spent: set[int] = set()
        made: set[int] = set()
        ids: set[int] = set()
        for tx in txs:
            if tx.id in self.tx_ids or tx.id in ids or not tx.spends or not tx.creates:
                return None
            ids.add(tx.id)
            total = 0
            for coin in tx.spends:
                value = self.coins.get(coin)
                if value is None or coin in spent:
                    return None
                spent.add(coin)
                total += value
                acc -= _coin_term(coin, value)
            for coin, value in tx.creates:
                if value <= 0 or coin in self.created or coin in made:
                    return None
                made.add(coin)
                total -= value
                acc += _coin_term(coin, value)
            if total != 0:
                return None
        return acc & _MASK

    def applies(self, tx: ToyTx) -> bool:
        """Whether `tx` alone applies to this state."""
        return (
            tx.id not in self.tx_ids
            and all(coin in self.coins for coin in tx.spends)
            and not any(coin in self.created for coin, _ in tx.creates)
        )

    def apply(
        self, block: ToyBlock, digest: bytes, payload: bytes, cert: CommitCertificate
    ) -> None:
        """Commit `block`, already checked with `execute`."""
        for tx in block.txs:
            self.tx_ids.add(tx.id)
            for coin in tx.spends:
                del self.coins[coin]
            for coin, value in tx.creates:
                self.coins[coin] = value
                self.created.add(coin)
        self.acc = int.from_bytes(block.state, "big")
        self.digests.append(digest)
        self.blocks.append((payload, cert))


def _digest(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()


def _decode_block(payload: bytes) -> ToyBlock | None:
    try:
        return _block_decoder.decode(payload)
    except msgspec.DecodeError:
        return None


def _build_block(
    ledger: Ledger, candidates: Iterable[ToyTx], time_ms: int
) -> tuple[bytes, bytes] | None:
    """(digest, payload) of a block of `candidates` that apply, on top of `ledger`."""
    chosen: list[ToyTx] = []
    spent: set[int] = set()
    for tx in candidates:
        if ledger.applies(tx) and not spent.intersection(tx.spends):
            chosen.append(tx)
            spent.update(tx.spends)
            if len(chosen) == _MAX_BLOCK_TXS:
                break
    if not chosen:
        return None
    acc = ledger.execute(chosen)
    if acc is None:
        return None
    block = ToyBlock(
        height=ledger.height + 1,
        prev=ledger.tip,
        time_ms=time_ms,
        txs=tuple(chosen),
        state=acc.to_bytes(32, "big"),
    )
    payload = _encoder.encode(block)
    return _digest(payload), payload


def _validate_block(ledger: Ledger, seq: int, digest: bytes, payload: bytes) -> bool:
    """Whether `payload` is a valid block `digest` at height `seq` on this ledger's chain."""
    if seq <= ledger.height:
        return ledger.digests[seq] == digest
    block = _decode_block(payload)
    if block is None or _digest(payload) != digest:
        return False
    if seq != ledger.height + 1 or block.height != seq or block.prev != ledger.tip:
        return False
    acc = ledger.execute(block.txs)
    return acc is not None and acc.to_bytes(32, "big") == block.state


def check_certificate(
    cert: CommitCertificate, seq: int, digest: bytes, n: int, verify: Callable[..., bool]
) -> str | None:
    """What is wrong with `cert` as the certificate of block `digest` at `seq`, or None.

    The rule of `tally.rules.certificate.check_certificate`: signers ascending and known, each
    signature valid over the commit message, at least 2f+1 of them.
    """
    if cert.height != seq or cert.block_hash != digest:
        return f"certificate for height {cert.height}, expected {seq} or another digest"
    message = commit_message(CHAIN_ID, Height(seq), BlockHash(digest), cert.view)
    last = -1
    for signature in cert.signatures:
        if signature.signer <= last or signature.signer >= n:
            return f"signer {signature.signer} unknown or repeated"
        last = signature.signer
        if not verify(signature.signer, message, signature.sig):
            return f"bad signature of replica {signature.signer}"
    if len(cert.signatures) < quorum(n):
        return f"{len(cert.signatures)} signatures, a quorum is {quorum(n)}"
    return None


# -- keys -------------------------------------------------------------------------------


def _secret(index: int) -> bytes:
    return hashlib.sha256(b"tally-sim key %d" % index).digest()


class _Keys:
    """Every replica's secret: signing and checking are the same keyed hash."""

    def __init__(self, n: int) -> None:
        self.secrets = [_secret(i) for i in range(n)]

    def sign(self, index: int, digest: bytes) -> bytes:
        return hashlib.blake2b(digest, key=self.secrets[index], digest_size=64).digest()

    def verify(self, signer: int, digest: bytes, signature: bytes) -> bool:
        if not 0 <= signer < len(self.secrets):
            return False
        return self.sign(signer, digest) == signature


class _Services:
    """What a replica needs from its host: its key, block digests, the committed chain."""

    def __init__(self, keys: _Keys, index: int, ledger: Ledger) -> None:
        self._keys = keys
        self._index = index
        self._ledger = ledger

    def sign(self, digest: bytes) -> bytes:
        return self._keys.sign(self._index, digest)

    def verify(self, signer: int, digest: bytes, signature: bytes) -> bool:
        return self._keys.verify(signer, digest, signature)

    def digest_of(self, payload: bytes) -> bytes | None:
        return None if _decode_block(payload) is None else _digest(payload)

    def committed_digest(self, seq: int) -> bytes | None:
        return self._ledger.digests[seq] if seq <= self._ledger.height else None


# -- scenarios ----------------------------------------------------------------------------

HONEST = "honest"
TWIN = "twin"
EQUIVOCATOR = "equivocator"
BAD_SIGNER = "bad-signer"


@dataclass(frozen=True)
class Scenario:
    """What a run may do; whatever is None is drawn from the seed."""

    n: int | None = None
    """Number of replicas; drawn as 4, or 7 for some seeds."""
    twins: int | None = None
    """How many replicas run as twins; 0 for none. None: drawn (at most f)."""
    split_twins: bool = False
    """Put each twin's two copies in two partitions, with half the honest replicas each, for
    the whole fault phase: with f+1 twins, both sides hold a quorum."""
    byzantine: bool = True
    """Whether equivocating primaries and bad signers may be drawn (when `twins` is None)."""
    broken_view_change: bool = False
    """Run the replicas with `ReplicaConfig.broken_view_change`: the checker must fire."""


@dataclass(frozen=True)
class _Plan:
    """The schedule drawn from the seed."""

    n: int
    roles: tuple[str, ...]
    """By replica index."""
    twinned: tuple[int, ...]
    crash_budget: int
    """How many replicas may be down at a time (besides the Byzantine ones)."""
    checkpoint_interval: int
    view_timeout_ms: int
    fault_ms: int
    loss: float
    duplication: float
    delay_ms: int
    jitter_ms: int
    tx_gap_ms: int
    inline_calls: bool
    """Answer `Propose` and `Validate` at once, before the actions after them (as the node's
    host does), rather than a little later."""
    probe: bool
    """Whether hosts ask peers for blocks when work waits without commits (the node's host
    does; without it, the replicas' own catch-up is all there is)."""
    double_spends: float
    partitions: tuple[tuple[int, int, tuple[int, ...]], ...]
    """(start, end, process ids of one side)."""
    crashes: tuple[tuple[int, int, int], ...]
    """(time, down for, process id)."""
    deafness: tuple[tuple[int, int, int, str], ...]
    """(start, end, process id, "deaf" or "mute"): one-way faults, where a host hears
    nothing, or nobody hears it."""


def _draw_plan(rng: random.Random, scenario: Scenario) -> _Plan:
    n = scenario.n if scenario.n is not None else (7 if rng.random() < 0.15 else 4)
    f = faults_tolerated(n)
    roles = [HONEST] * n
    crash_budget = f
    if scenario.twins is not None:
        twinned = tuple(range(scenario.twins)) if scenario.split_twins else ()
        if not scenario.split_twins:
            twinned = tuple(sorted(rng.sample(range(n), scenario.twins)))
        for index in twinned:
            roles[index] = TWIN
        crash_budget = max(0, f - len(twinned))
    else:
        twinned = ()
        kind = rng.random()
        if kind < 0.25:
            twinned = tuple(sorted(rng.sample(range(n), rng.randint(1, f))))
            for index in twinned:
                roles[index] = TWIN
            crash_budget = f - len(twinned)
        elif kind < 0.4 and scenario.byzantine:
            roles[rng.randrange(n)] = EQUIVOCATOR
            crash_budget = f - 1
        elif kind < 0.5 and scenario.byzantine:
            roles[rng.randrange(n)] = BAD_SIGNER
            crash_budget = f - 1
        elif kind < 0.65:
            # Crash-recovery with a durable log is not a fault: any number may be down.
            crash_budget = n
    processes = n + len(twinned)
    fault_ms = rng.randint(1000, 2500)
    partitions: list[tuple[int, int, tuple[int, ...]]] = []
    crashes: list[tuple[int, int, int]] = []
    deafness: list[tuple[int, int, int, str]] = []
    if scenario.split_twins:
        honest = [i for i in range(n) if i not in twinned]
        side = tuple(range(n, processes)) + tuple(honest[len(honest) // 2 :])
        partitions.append((0, fault_ms, side))
        loss = duplication = 0.0
    else:
        loss = 0.0 if rng.random() < 0.3 else rng.uniform(0.0, 0.2)
        duplication = rng.uniform(0.0, 0.05)
        start = 0
        for _ in range(rng.randint(0, 3)):
            start += rng.randint(0, fault_ms // 2)
            end = start + rng.randint(50, 1200)
            if start >= fault_ms:
                break
            # The second copies of twins are processes n, n+1, …: a side often holds one copy.
            side = tuple(p for p in range(processes) if rng.random() < 0.5)
            partitions.append((start, min(end, fault_ms), side))
            start = end
        for _ in range(rng.randint(0, 3)):
            start = rng.randrange(fault_ms)
            end = min(fault_ms, start + rng.randint(20, 600))
            deafness.append((start, end, rng.randrange(processes), rng.choice(("deaf", "mute"))))
        if crash_budget > 0:
            for _ in range(rng.randint(0, 4)):
                crashes.append(
                    (rng.randrange(fault_ms), rng.randint(20, 1200), rng.randrange(processes))
                )
            crashes.sort()
    return _Plan(
        n=n,
        roles=tuple(roles),
        twinned=twinned,
        crash_budget=crash_budget,
        checkpoint_interval=rng.choice((2, 3, 4, 8)),
        view_timeout_ms=rng.randint(200, 500),
        fault_ms=fault_ms,
        loss=loss,
        duplication=duplication,
        delay_ms=rng.randint(1, 5),
        jitter_ms=rng.randint(0, 40),
        tx_gap_ms=rng.randint(8, 60),
        inline_calls=rng.random() < 0.5,
        probe=rng.random() < 0.5,
        double_spends=rng.uniform(0.0, 0.2),
        partitions=tuple(partitions),
        crashes=tuple(crashes),
        deafness=tuple(deafness),
    )


# -- hosts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SyncRequest:
    """State transfer: send me your blocks above `above`."""

    above: int
    sender: int
    """Process id."""


@dataclass(frozen=True)
class _SyncResponse:
    """State transfer: blocks with their certificates, from height `first`."""

    first: int
    blocks: tuple[tuple[bytes, CommitCertificate], ...]


_HostMessage = _SyncRequest | _SyncResponse


@dataclass(frozen=True)
class _Fault:
    """A scheduled change to the network or a host (or the quiet phase's checks)."""

    what: str
    number: int = 0
    """Down for how long (crash), which incarnation (hard-crash), on or off (deaf, mute)."""
    side: tuple[int, ...] = ()
    """Process ids on one side of a partition."""


@dataclass
class _Process:
    """A host with its replica: what survives a crash, and what does not."""

    pid: int
    index: int
    role: str
    ledger: Ledger = field(default_factory=Ledger)
    log: ReplicaLog | None = None
    """The last `Persist`ed log (durable)."""
    up: bool = True
    incarnation: int = 0
    replica: Replica | None = None
    mempool: dict[int, ToyTx] = field(default_factory=dict)
    forwarded: dict[int, int] = field(default_factory=dict)
    """Tx id → when this host last forwarded it."""
    doomed: int = -1
    """Crash after this many more actions (-1: not doomed)."""
    sync_target: int = 0
    sync_peer: int = -1
    sync_deadline: int = 0
    sync_tries: int = 0
    probe_height: int = -1
    probe_since: int = 0

    @property
    def honest(self) -> bool:
        return self.role == HONEST

    @property
    def name(self) -> str:
        if self.role == TWIN:
            return f"r{self.index}{'a' if self.pid == self.index else 'b'}"
        return f"r{self.index}"


@dataclass
class Outcome:
    """What one run found."""

    seed: int
    failures: list[str]
    """Each starts with its kind: `fork:`, `lost:`, `double-spend:`, `conservation:`,
    `certificate:`, `invalid:`, `liveness:`."""
    trace_hash: str
    height: int
    """The highest height an honest host reached."""
    max_view: int
    messages: int
    sim_ms: int
    description: str
    trace: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the checker found nothing."""
        return not self.failures


_EV_MSG = 0
_EV_TICK = 1
_EV_CALL = 2
_EV_CLIENT = 3
_EV_OTHER = 4


class _Stop(Exception):  # noqa: N818 (control flow, not an error)
    """A safety failure ends the run at once."""


class Simulation:
    """One seeded run; `run()` returns its `Outcome`."""

    def __init__(self, seed: int, scenario: Scenario | None = None, trace: bool = False) -> None:
        self.seed = seed
        self.scenario = scenario or Scenario()
        # Seeded pseudo-randomness for a replayable schedule, not for cryptography.
        self.rng = random.Random(seed)  # noqa: S311
        self.plan = _draw_plan(self.rng, self.scenario)
        plan = self.plan
        self.n = plan.n
        self.f = faults_tolerated(plan.n)
        self.keys = _Keys(plan.n)
        self.processes = [_Process(pid=i, index=i, role=plan.roles[i]) for i in range(plan.n)]
        for index in plan.twinned:
            self.processes.append(_Process(pid=len(self.processes), index=index, role=TWIN))
        self.by_index: list[list[_Process]] = [[] for _ in range(plan.n)]
        for process in self.processes:
            self.by_index[process.index].append(process)
        self.now = 0
        # (time, order, kind, process id, data): what data holds depends on the kind.
        self._queue: list[tuple[int, int, int, int, Any]] = []
        self._counter = 0
        self._group = [0] * len(self.processes)
        self._deaf = [False] * len(self.processes)
        self._mute = [False] * len(self.processes)
        self.loss = plan.loss
        self.duplication = plan.duplication
        self.failures: list[str] = []
        self._hash = hashlib.sha256()
        self.trace: list[str] | None = [] if trace else None
        self.messages = 0
        self.max_view = 0
        # Clients.
        coins = sorted(_GENESIS_COIN_SET.items())
        self._wallet: list[tuple[int, int]] = coins[_LIVENESS_TXS:]
        self._reserve: list[tuple[int, int]] = coins[:_LIVENESS_TXS]
        """Coins kept for the quiet phase's transactions, which must not conflict."""
        self._pending: dict[int, ToyTx] = {}
        self._next_tx = 1
        self._next_coin = 1_000_000
        self._values: dict[int, int] = dict(_GENESIS_COIN_SET)
        """Coin id → value, for every coin a client made."""
        self.acked: dict[int, int] = {}
        """Tx id → height it was first committed at by an honest host."""
        self._liveness: list[int] = []
        self._canon: dict[int, tuple[bytes, str]] = {}
        self._quiet = False
        self._done = False

    # -- event queue ------------------------------------------------------------------------

    def _push(self, at: int, kind: int, pid: int, data: Any) -> None:  # Any: see `_queue`
        self._counter += 1
        heapq.heappush(self._queue, (at, self._counter, kind, pid, data))

    def _log(self, line: str) -> None:
        if self.trace is not None:
            self.trace.append(f"{self.now:>7} {line}")

    def _fail(self, line: str, stop: bool = False) -> None:
        self.failures.append(line)
        self._log("FAIL " + line)
        if stop:
            raise _Stop

    # -- running --------------------------------------------------------------------------

    def run(self) -> Outcome:
        """Run the schedule, the quiet phase and the final checks."""
        plan = self.plan
        self._log(f"seed {self.seed}: {self.describe()}")
        for process in self.processes:
            self._start(process)
        self._push(self.rng.randint(0, plan.tx_gap_ms), _EV_CLIENT, -1, None)
        for start, end, side in plan.partitions:
            self._push(start, _EV_OTHER, -1, _Fault("partition", side=side))
            self._push(end, _EV_OTHER, -1, _Fault("heal"))
        for at, down_for, pid in plan.crashes:
            self._push(at, _EV_OTHER, pid, _Fault("crash", down_for))
        for start, end, pid, how in plan.deafness:
            self._push(start, _EV_OTHER, pid, _Fault(how, 1))
            self._push(end, _EV_OTHER, pid, _Fault(how, 0))
        self._push(plan.fault_ms, _EV_OTHER, -1, _Fault("quiet"))
        try:
            self._loop()
            if not self.failures:
                self._final_checks()
        except _Stop:
            pass
        honest = [p for p in self.processes if p.honest]
        return Outcome(
            seed=self.seed,
            failures=self.failures,
            trace_hash=self._hash.hexdigest(),
            height=max((p.ledger.height for p in honest), default=0),
            max_view=self.max_view,
            messages=self.messages,
            sim_ms=self.now,
            description=self.describe(),
            trace=self.trace or [],
        )

    def describe(self) -> str:
        """The drawn schedule in one line."""
        plan = self.plan
        roles = ",".join(f"{i}:{role}" for i, role in enumerate(plan.roles) if role != HONEST)
        return (
            f"n={plan.n} byzantine=[{roles}] crashes={len(plan.crashes)}"
            f"(budget {plan.crash_budget}) partitions={len(plan.partitions)}"
            f" deafness={len(plan.deafness)} loss={plan.loss:.2f} dup={plan.duplication:.2f}"
            f" delay={plan.delay_ms}+{plan.jitter_ms}ms cp={plan.checkpoint_interval}"
            f" timeout={plan.view_timeout_ms}ms faults={plan.fault_ms}ms"
            f"{' inline' if plan.inline_calls else ''}{' probe' if plan.probe else ''}"
            f"{' broken-view-change' if self.scenario.broken_view_change else ''}"
        )

    def _loop(self) -> None:
        queue = self._queue
        processes = self.processes
        digest = self._hash
        while queue and not self._done:
            at, _, kind, pid, data = heapq.heappop(queue)
            self.now = at
            if kind == _EV_MSG:
                process = processes[pid]
                if not process.up:
                    continue
                src, wire = data
                if self._group[src] != self._group[pid] or self._deaf[pid]:
                    continue
                digest.update(b"%d m %d %d " % (at, src, pid))
                if isinstance(wire, bytes):
                    digest.update(wire)
                self._on_message(process, src, wire)
            elif kind == _EV_TICK:
                process = processes[pid]
                if not process.up or process.incarnation != data:
                    continue
                self._on_tick(process)
                self._push(at + _TICK_MS, _EV_TICK, pid, data)
            elif kind == _EV_CALL:
                process = processes[pid]
                incarnation, call = data
                if not process.up or process.incarnation != incarnation:
                    continue
                digest.update(b"%d c %d" % (at, pid))
                self._act(process, call())
            elif kind == _EV_CLIENT:
                self._client(data == "liveness")
            else:
                self._on_other(pid, data)

    # -- faults ----------------------------------------------------------------------------

    def _on_other(self, pid: int, fault: _Fault) -> None:
        what, arg = fault.what, fault.number
        self._hash.update(f"{self.now} {what} {pid}".encode())
        if what == "partition":
            side = set(fault.side)
            self._group = [1 if p.pid in side else 0 for p in self.processes]
            self._log(f"partition {sorted(side)} | rest")
        elif what == "heal":
            if not self._quiet:
                self._group = [0] * len(self.processes)
                self._log("partition healed")
        elif what == "deaf" and not self._quiet:
            self._deaf[pid] = bool(arg)
            self._log(f"{self.processes[pid].name} {'goes' if arg else 'no longer'} deaf")
        elif what == "mute" and not self._quiet:
            self._mute[pid] = bool(arg)
            self._log(f"{self.processes[pid].name} {'goes' if arg else 'no longer'} mute")
        elif what == "crash":
            self._crash_event(self.processes[pid], arg)
        elif what == "hard-crash":
            process = self.processes[pid]
            if process.up and process.incarnation == arg and not self._quiet:
                self._crash(process)
        elif what == "restart":
            process = self.processes[pid]
            if not process.up:
                self._restart(process)
        elif what == "quiet":
            self._begin_quiet()
        elif what == "check":
            self._check_quiet()

    def _crash_event(self, process: _Process, down_for: int) -> None:
        if self._quiet or not process.up or not process.honest:
            return
        down = sum(1 for p in self.processes if not p.up)
        if down >= self.plan.crash_budget:
            return
        if self.rng.random() < 0.5:
            self._crash(process)
        else:
            # Die part-way through the next batch of actions, or in 5 ms at the latest.
            process.doomed = self.rng.randint(0, 3)
            self._push(
                self.now + 5, _EV_OTHER, process.pid, _Fault("hard-crash", process.incarnation)
            )
        self._push(self.now + down_for, _EV_OTHER, process.pid, _Fault("restart"))

    def _crash(self, process: _Process) -> None:
        self._log(f"{process.name} crashes (height {process.ledger.height})")
        process.up = False
        process.replica = None
        process.incarnation += 1
        process.mempool = {}
        process.forwarded = {}
        process.doomed = -1
        process.sync_target = 0
        process.sync_peer = -1

    def _restart(self, process: _Process) -> None:
        self._log(f"{process.name} restarts at height {process.ledger.height}")
        process.up = True
        self._start(process)
        # A host that starts again asks a peer what it missed, as a node does on start.
        self._catch_up(process, process.ledger.height + 1)

    def _start(self, process: _Process) -> None:
        config = ReplicaConfig(
            chain_id=CHAIN_ID,
            n=self.n,
            me=process.index,
            checkpoint_interval=self.plan.checkpoint_interval,
            view_timeout_ms=self.plan.view_timeout_ms,
            broken_view_change=self.scenario.broken_view_change,
        )
        services = _Services(self.keys, process.index, process.ledger)
        process.replica = Replica(
            config, services, committed=process.ledger.height, log=process.log, now_ms=self.now
        )
        self._push(
            self.now + self.rng.randint(1, _TICK_MS), _EV_TICK, process.pid, process.incarnation
        )

    def _begin_quiet(self) -> None:
        self._log("quiet phase: partitions heal, crashed hosts restart, no more loss")
        self._quiet = True
        self._group = [0] * len(self.processes)
        self._deaf = [False] * len(self.processes)
        self._mute = [False] * len(self.processes)
        self.loss = 0.0
        self.duplication = 0.0
        for process in self.processes:
            process.doomed = -1
            if not process.up:
                self._restart(process)
        for k in range(_LIVENESS_TXS):
            self._push(self.now + 20 + 100 * k, _EV_CLIENT, -1, "liveness")
        self._push(self.now + _CHECK_EVERY_MS, _EV_OTHER, -1, _Fault("check"))

    # -- network ---------------------------------------------------------------------------

    def _transmit(self, src: _Process, dst: _Process, data: bytes | _HostMessage) -> None:
        if self._group[src.pid] != self._group[dst.pid] or self._mute[src.pid]:
            return
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            return
        copies = 2 if self.duplication and rng.random() < self.duplication else 1
        plan = self.plan
        for _ in range(copies):
            delay = plan.delay_ms + int(rng.random() * plan.jitter_ms)
            self.messages += 1
            self._push(self.now + delay, _EV_MSG, dst.pid, (src.pid, data))

    def _send_index(self, src: _Process, index: int, message: Message) -> None:
        wire = encode_message(message)
        for dst in self.by_index[index]:
            self._transmit(src, dst, wire)

    def _broadcast(self, src: _Process, message: Message) -> None:
        wire = encode_message(message)
        for dst in self.processes:
            if dst.index != src.index:
                self._transmit(src, dst, wire)

    # -- a host's event handling -------------------------------------------------------------

    def _on_message(self, process: _Process, src: int, data: bytes | _HostMessage) -> None:
        if isinstance(data, _SyncRequest):
            self._on_sync_request(process, data)
            return
        if isinstance(data, _SyncResponse):
            self._on_sync_response(process, src, data)
            return
        message = decode_message(data)
        if self.trace is not None:
            self._log(f"{process.name} <- {self.processes[src].name} {_describe(message)}")
        if isinstance(message, Txs):
            for raw in message.txs:
                self._add_tx(process, _tx_decoder.decode(raw), forward=False)
            return
        replica = process.replica
        if replica is None:
            return
        self._act(process, replica.on_message(message, self.now))

    def _on_tick(self, process: _Process) -> None:
        now = self.now
        if process.sync_peer >= 0 and now >= process.sync_deadline:
            self._sync_next_peer(process)
        if process.mempool and now % 100 < _TICK_MS:
            stale = [
                tx
                for tx_id, tx in process.mempool.items()
                if now - process.forwarded.get(tx_id, 0) >= _REFORWARD_MS
            ]
            if stale:
                for tx in stale:
                    process.forwarded[tx.id] = now
                self._forward(process, stale)
        self._probe(process)
        replica = process.replica
        if replica is not None:
            self._act(process, replica.on_tick(now, bool(process.mempool)))

    def _probe(self, process: _Process) -> None:
        """While work waits without commits, ask a peer for blocks, as a node's host does.

        The replica hears of blocks it missed from the votes of later ones; when the missed
        block was the last for a while, nothing else would tell it.
        """
        height = process.ledger.height
        if not self.plan.probe:
            return
        if height != process.probe_height or not process.mempool:
            process.probe_height = height
            process.probe_since = self.now
        elif self.now - process.probe_since > self.plan.view_timeout_ms // 2:
            process.probe_since = self.now
            self._catch_up(process, height + 1)

    def _later(self, process: _Process, call: Callable[[], list[Action]]) -> None:
        """Answer the replica at once, or after a while as a host working in the background."""
        if self.plan.inline_calls:
            self._act(process, call())
            return
        delay = self.rng.randint(0, 3)
        self._push(self.now + delay, _EV_CALL, process.pid, (process.incarnation, call))

    def _act(self, process: _Process, actions: Sequence[Action]) -> None:
        """Carry out `actions` in order."""
        for action in actions:
            if not process.up:
                return
            if process.doomed >= 0:
                if process.doomed == 0:
                    self._crash(process)
                    return
                process.doomed -= 1
            replica = process.replica
            if replica is None:
                return
            if isinstance(action, Broadcast):
                self._broadcast_as(process, action.message)
            elif isinstance(action, Send):
                self._send_as(process, action.to, action.message)
            elif isinstance(action, Persist):
                process.log = action.log
            elif isinstance(action, Propose):
                self._propose(process, replica, action)
            elif isinstance(action, Validate):
                ok = _validate_block(process.ledger, action.seq, action.digest, action.payload)
                self._log(f"{process.name} validates {action.digest.hex()[:8]}@{action.seq}: {ok}")
                self._later(process, partial(replica.on_validated, action.digest, ok))
            elif isinstance(action, Deliver):
                self._deliver(process, action)
            elif isinstance(action, CatchUp):
                self._catch_up(process, action.seq)
            elif isinstance(action, ViewChanged):
                self.max_view = max(self.max_view, action.view)
                self._log(f"{process.name} view {action.view} (primary {action.primary})")

    def _propose(self, process: _Process, replica: Replica, action: Propose) -> None:
        built = None
        if process.ledger.height == action.seq - 1:
            built = _build_block(process.ledger, process.mempool.values(), self.now)
        self._log(
            f"{process.name} proposes at {action.seq} in view {action.view}:"
            f" {built[0].hex()[:8] if built else None}"
        )
        view, seq = action.view, action.seq
        if built is None:
            self._later(process, partial(replica.on_proposed, view, seq, b"", None))
        else:
            digest, payload = built
            self._later(process, partial(replica.on_proposed, view, seq, digest, payload))

    def _deliver(self, process: _Process, action: Deliver) -> None:
        ledger = process.ledger
        if action.seq <= ledger.height:
            # State transfer got here first.
            if ledger.digests[action.seq] != action.digest:
                self._fail(
                    f"fork: {process.name} delivers {action.digest.hex()[:12]} at"
                    f" {action.seq} but stored {ledger.digests[action.seq].hex()[:12]}",
                    stop=process.honest,
                )
            return
        problem = check_certificate(
            action.certificate, action.seq, action.digest, self.n, self.keys.verify
        )
        if problem is not None:
            self._fail(f"certificate: {process.name} at {action.seq}: {problem}", stop=True)
        if not self._store(process, action.seq, action.digest, action.payload, action.certificate):
            return
        self._log(
            f"{process.name} commits {action.digest.hex()[:12]} at {action.seq}"
            f" (view {action.certificate.view})"
        )

    def _store(
        self, process: _Process, seq: int, digest: bytes, payload: bytes, cert: CommitCertificate
    ) -> bool:
        """Commit a certified block; for a host that cannot, a failure (if honest) and False."""
        ledger = process.ledger
        block = _decode_block(payload)
        problem = None
        if block is None or _digest(payload) != digest:
            problem = "invalid: the block's bytes do not match its digest"
        elif seq != ledger.height + 1 or block.height != seq:
            problem = f"invalid: block at {seq} on a store at height {ledger.height}"
        elif block.prev != ledger.tip:
            problem = f"fork: the certified block at {seq} extends another block at {seq - 1}"
        else:
            acc = ledger.execute(block.txs)
            if acc is None:
                problem = (
                    "double-spend: the certified block holds a transaction that does not apply"
                )
            elif acc.to_bytes(32, "big") != block.state:
                problem = "invalid: the certified block's state hash is wrong"
        if problem is not None or block is None:
            if process.honest:
                self._fail(f"{problem} ({process.name}, height {seq})", stop=True)
            return False
        ledger.apply(block, digest, payload, cert)
        self._hash.update(b"%d d %d %d " % (self.now, process.pid, seq) + digest)
        mempool = process.mempool
        for tx in block.txs:
            mempool.pop(tx.id, None)
        for tx_id, tx in list(mempool.items()):
            if not ledger.applies(tx):
                del mempool[tx_id]
        if process.honest:
            canon = self._canon.get(seq)
            if canon is None:
                self._canon[seq] = (digest, process.name)
            elif canon[0] != digest:
                self._fail(
                    f"fork: at height {seq} {canon[1]} committed {canon[0].hex()[:12]},"
                    f" {process.name} committed {digest.hex()[:12]}",
                    stop=True,
                )
            for tx in block.txs:
                if tx.id not in self.acked:
                    self.acked[tx.id] = seq
                    self._on_ack(tx)
        return True

    # -- state transfer --------------------------------------------------------------------

    def _catch_up(self, process: _Process, seq: int) -> None:
        process.sync_target = max(process.sync_target, seq)
        if process.sync_peer < 0:
            process.sync_tries = 0
            self._sync_next_peer(process)

    def _sync_next_peer(self, process: _Process) -> None:
        if process.sync_tries >= 3 or process.ledger.height >= process.sync_target:
            self._sync_done(process)
            return
        process.sync_tries += 1
        peers = [p for p in self.processes if p.index != process.index]
        peer = peers[self.rng.randrange(len(peers))]
        self._sync_ask(process, peer.pid)

    def _sync_ask(self, process: _Process, peer: int) -> None:
        process.sync_peer = peer
        process.sync_deadline = self.now + _SYNC_TIMEOUT_MS
        request = _SyncRequest(above=process.ledger.height, sender=process.pid)
        self._transmit(process, self.processes[peer], request)

    def _sync_done(self, process: _Process) -> None:
        process.sync_peer = -1
        process.sync_target = 0
        replica = process.replica
        if replica is not None:
            height = process.ledger.height
            self._act(process, replica.on_synced(height, self.now))

    def _on_sync_request(self, process: _Process, request: _SyncRequest) -> None:
        blocks = tuple(process.ledger.blocks[request.above : request.above + _SYNC_BATCH])
        response = _SyncResponse(first=request.above + 1, blocks=blocks)
        self._transmit(process, self.processes[request.sender], response)

    def _on_sync_response(self, process: _Process, src: int, response: _SyncResponse) -> None:
        if src != process.sync_peer:
            return
        ledger = process.ledger
        before = ledger.height
        for offset, (payload, cert) in enumerate(response.blocks):
            seq = response.first + offset
            if seq <= ledger.height:
                continue
            digest = _digest(payload)
            if check_certificate(cert, seq, digest, self.n, self.keys.verify) is not None:
                break
            block = _decode_block(payload)
            if block is None or block.prev != ledger.tip:
                break
            if not self._store(process, seq, digest, payload, cert):
                break
        if ledger.height > before:
            self._log(f"{process.name} synced {before} -> {ledger.height}")
        if ledger.height >= process.sync_target:
            self._sync_done(process)
        elif len(response.blocks) == _SYNC_BATCH and ledger.height > before:
            self._sync_ask(process, src)
        else:
            self._sync_next_peer(process)

    # -- Byzantine behaviour ---------------------------------------------------------------

    def _broadcast_as(self, process: _Process, message: Message) -> None:
        if process.role == BAD_SIGNER:
            for index in range(self.n):
                if index != process.index:
                    self._send_index(process, index, self._forge(message))
        elif process.role == EQUIVOCATOR and isinstance(message, Proposal):
            self._equivocate(process, message)
        else:
            self._broadcast(process, message)

    def _send_as(self, process: _Process, to: int, message: Message) -> None:
        if process.role == BAD_SIGNER:
            message = self._forge(message)
        self._send_index(process, to, message)

    def _forge(self, message: Message) -> Message:
        """A bad signer spoils half its signatures, or claims another sender."""
        rng = self.rng
        if rng.random() < 0.5:
            return message
        if isinstance(message, Proposal):
            pre_prepare = message.pre_prepare
            spoiled = msgspec.structs.replace(pre_prepare, sig=bytes(64))
            return msgspec.structs.replace(message, pre_prepare=spoiled)
        if isinstance(message, Vote):
            if rng.random() < 0.5:
                other = (message.sender + 1 + rng.randrange(self.n - 1)) % self.n
                return msgspec.structs.replace(message, sender=other)
            sig = bytes([message.sig[0] ^ 1]) + message.sig[1:] if message.sig else b"x"
            return msgspec.structs.replace(message, sig=sig)
        return message

    def _equivocate(self, process: _Process, proposal: Proposal) -> None:
        """Send some backups the block, others another block for the same height, some both.

        The other block is valid two times in three (the mempool in another order), and
        otherwise does not execute to the state it claims.
        """
        pre_prepare = proposal.pre_prepare
        block = _decode_block(proposal.payload)
        built = None
        if block is not None and self.rng.randrange(3) == 0:
            wrong = msgspec.structs.replace(block, state=bytes(32))
            payload = _encoder.encode(wrong)
            built = (_digest(payload), payload)
        elif block is not None and process.ledger.height == pre_prepare.seq - 1:
            shuffled = list(process.mempool.values())[::-1]
            built = _build_block(process.ledger, shuffled, self.now + 1)
        if built is None or built[0] == pre_prepare.digest:
            self._broadcast(process, proposal)
            return
        digest, payload = built
        other_pp = msgspec.structs.replace(pre_prepare, digest=digest, sig=b"")
        other_pp = msgspec.structs.replace(
            other_pp, sig=self.keys.sign(process.index, signed_digest(CHAIN_ID, other_pp))
        )
        second = Proposal(pre_prepare=other_pp, payload=payload)
        for index in range(self.n):
            if index == process.index:
                continue
            choice = self.rng.randrange(3)
            if choice == 0:
                self._send_index(process, index, proposal)
            elif choice == 1:
                self._send_index(process, index, second)
            else:
                self._send_index(process, index, second)
                self._send_index(process, index, proposal)

    # -- clients and mempools --------------------------------------------------------------

    def _client(self, liveness: bool) -> None:
        rng = self.rng
        if self._quiet and not liveness:
            return
        if not liveness:
            self._push(self.now + rng.randint(1, 2 * self.plan.tx_gap_ms), _EV_CLIENT, -1, None)
        tx = self._make_tx([self._reserve.pop()]) if liveness else self._new_tx()
        if tx is None:
            return
        if liveness:
            targets = [p for p in self.processes if p.honest and p.up]
            self._liveness.append(tx.id)
        else:
            targets = [p for p in self.processes if p.up]
        if not targets:
            return
        target = targets[rng.randrange(len(targets))]
        self._log(f"client sends tx {tx.id} to {target.name}")
        self._hash.update(b"%d t %d %d" % (self.now, tx.id, target.pid))
        self._add_tx(target, tx, forward=True)

    def _new_tx(self) -> ToyTx | None:
        rng = self.rng
        if self._pending and rng.random() < self.plan.double_spends:
            # Spend again a coin that a transaction not yet committed spends.
            victim = self._pending[rng.choice(sorted(self._pending))]
            coin = victim.spends[rng.randrange(len(victim.spends))]
            return self._make_tx([(coin, self._values[coin])])
        if not self._wallet:
            return None
        count = min(len(self._wallet), rng.randint(1, 2))
        inputs = []
        for _ in range(count):
            inputs.append(self._wallet.pop(rng.randrange(len(self._wallet))))
        tx = self._make_tx(inputs)
        self._pending[tx.id] = tx
        return tx

    def _make_tx(self, inputs: list[tuple[int, int]]) -> ToyTx:
        rng = self.rng
        total = sum(value for _, value in inputs)
        parts = rng.randint(1, min(3, total))
        cuts = sorted(rng.sample(range(1, total), parts - 1)) if parts > 1 else []
        values = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
        creates = []
        for value in values:
            creates.append((self._next_coin, value))
            self._values[self._next_coin] = value
            self._next_coin += 1
        tx = ToyTx(id=self._next_tx, spends=tuple(c for c, _ in inputs), creates=tuple(creates))
        self._next_tx += 1
        return tx

    def _on_ack(self, tx: ToyTx) -> None:
        self._pending.pop(tx.id, None)
        self._wallet.extend(tx.creates)

    def _add_tx(self, process: _Process, tx: ToyTx, forward: bool) -> None:
        if tx.id in process.mempool or not process.ledger.applies(tx):
            return
        process.mempool[tx.id] = tx
        if forward:
            process.forwarded[tx.id] = self.now
            self._forward(process, [tx])

    def _forward(self, process: _Process, txs: list[ToyTx]) -> None:
        self._broadcast(process, Txs(txs=tuple(_encoder.encode(tx) for tx in txs)))

    # -- checks ----------------------------------------------------------------------------

    def _check_quiet(self) -> None:
        honest = [p for p in self.processes if p.honest]
        heights = {p.ledger.height for p in honest}
        settled = (
            all(p.up for p in honest)
            and len(heights) == 1
            and all(tx_id in self.acked for tx_id in self._liveness)
            and len(self._liveness) == _LIVENESS_TXS
            and all(all(tx_id in p.ledger.tx_ids for tx_id in self.acked) for p in honest)
        )
        if settled or self.now - self.plan.fault_ms > _QUIET_MAX_MS:
            self._done = True
        else:
            self._push(self.now + _CHECK_EVERY_MS, _EV_OTHER, -1, _Fault("check"))

    def _final_checks(self) -> None:
        honest = [p for p in self.processes if p.honest]
        if not honest:
            return
        quiet_for = self.now - self.plan.fault_ms
        # No fork: every shared height holds one digest.
        reference = max(honest, key=lambda p: p.ledger.height)
        for process in honest:
            for seq, digest in enumerate(process.ledger.digests):
                if reference.ledger.digests[seq] != digest:
                    self._fail(f"fork: {process.name} and {reference.name} differ at {seq}")
                    break
        heights = {p.name: p.ledger.height for p in honest}
        if len(set(heights.values())) > 1:
            self._fail(f"lost: honest hosts end at different heights {heights}")
        for process in honest:
            missing = sorted(t for t in self.acked if t not in process.ledger.tx_ids)
            if missing:
                self._fail(
                    f"lost: {process.name} lacks acknowledged txs {missing[:5]}"
                    f" ({len(missing)} in all) after {quiet_for} ms of quiet"
                )
            self._check_chain(process)
        absent = [t for t in self._liveness if t not in self.acked]
        if absent or len(self._liveness) < _LIVENESS_TXS:
            self._fail(
                f"liveness: txs {absent} sent after the faults healed are not committed after"
                f" {quiet_for} ms (heights {heights}, view up to {self.max_view})"
            )

    def _check_chain(self, process: _Process) -> None:
        """Replay `process`'s chain from genesis: certificates, no double spend, conservation."""
        replay = Ledger()
        for seq, (payload, cert) in enumerate(process.ledger.blocks, start=1):
            digest = _digest(payload)
            problem = check_certificate(cert, seq, digest, self.n, self.keys.verify)
            if problem is not None:
                self._fail(f"certificate: {process.name} stores at {seq}: {problem}")
                return
            block = _decode_block(payload)
            if block is None or block.prev != replay.tip:
                self._fail(f"invalid: {process.name}'s chain breaks at {seq}")
                return
            acc = replay.execute(block.txs)
            if acc is None:
                self._fail(f"double-spend: {process.name}'s block {seq} does not apply")
                return
            replay.apply(block, digest, payload, cert)
            if sum(replay.coins.values()) != _GENESIS_TOTAL:
                self._fail(f"conservation: {process.name}'s supply changes at {seq}")
                return
        if replay.acc != process.ledger.acc or replay.coins != process.ledger.coins:
            self._fail(f"invalid: {process.name}'s state differs from its chain's")


def _describe(message: Message) -> str:
    """A message in a trace line."""
    if isinstance(message, Proposal):
        return "Proposal " + _describe(message.pre_prepare)
    if isinstance(message, Txs):
        return f"Txs x{len(message.txs)}"
    if isinstance(message, NewView):
        again = " ".join(f"{pp.digest.hex()[:8]}@{pp.seq}" for pp in message.pre_prepares)
        senders = [vc.sender for vc in message.view_changes]
        return f"NewView v{message.view} from {message.sender} vcs {senders} re-propose [{again}]"
    parts = [type(message).__name__]
    view = getattr(message, "view", None)
    if view is not None:
        parts.append(f"v{view}")
    if isinstance(message, ViewChange):
        prepared = " ".join(
            f"{p.pre_prepare.digest.hex()[:8]}@{p.pre_prepare.seq}v{p.pre_prepare.view}"
            for p in message.prepared
        )
        parts.append(f"cp {message.checkpoint_seq} prepared [{prepared}]")
    else:
        digest = getattr(message, "digest", b"")
        parts.append(f"{digest.hex()[:8]}@{getattr(message, 'seq', '?')}")
    sender = getattr(message, "sender", None)
    if sender is not None:
        parts.append(f"from {sender}")
    return " ".join(parts)


def run_seed(seed: int, scenario: Scenario | None = None, trace: bool = False) -> Outcome:
    """Run one seed."""
    return Simulation(seed, scenario, trace).run()


def _run_quietly(args: tuple[int, Scenario]) -> Outcome:
    return run_seed(*args)


def run_seeds(
    seeds: Iterable[int],
    scenario: Scenario | None = None,
    jobs: int = 1,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run many seeds, on `jobs` processes; `on_outcome` hears of each as it ends."""
    scenario = scenario or Scenario()
    outcomes: list[Outcome] = []
    if jobs <= 1:
        for seed in seeds:
            outcome = run_seed(seed, scenario)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
        return outcomes
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs) as pool:
        work = ((seed, scenario) for seed in seeds)
        for outcome in pool.map(_run_quietly, work, chunksize=8):
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    """Run seeds from the command line; the exit status is 1 if the checker found anything."""
    parser = argparse.ArgumentParser(
        prog="python -m tally.consensus.pbft.simulation", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seed", type=int, help="replay one seed and print its trace")
    parser.add_argument("--seeds", type=int, default=300, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=0, help="the first seed")
    parser.add_argument("--jobs", type=int, default=1, help="processes to run seeds on")
    parser.add_argument("--n", type=int, help="replicas (default: 4, or 7 for some seeds)")
    parser.add_argument("--twins", type=int, help="replicas run as twins (default: drawn)")
    parser.add_argument("--split-twins", action="store_true", help="twins split by a partition")
    parser.add_argument(
        "--broken-view-change", action="store_true", help="run the unsafe view change"
    )
    args = parser.parse_args(argv)
    scenario = Scenario(
        n=args.n,
        twins=args.twins,
        split_twins=args.split_twins,
        broken_view_change=args.broken_view_change,
    )
    out = sys.stdout
    if args.seed is not None:
        outcome = run_seed(args.seed, scenario, trace=True)
        for line in outcome.trace:
            out.write(line + "\n")
        out.write(_summary_line(outcome) + "\n")
        return 0 if outcome.ok else 1
    started = time.monotonic()
    failed: list[Outcome] = []
    count = 0

    def progress(outcome: Outcome) -> None:
        nonlocal count
        count += 1
        if not outcome.ok:
            failed.append(outcome)
            out.write(f"\n{_summary_line(outcome)}\n")
        if count % 50 == 0 or count == args.seeds:
            rate = count / max(time.monotonic() - started, 1e-9)
            out.write(f"\r{count}/{args.seeds} seeds, {len(failed)} failed, {rate:.1f} seeds/s")
            out.flush()

    run_seeds(range(args.start, args.start + args.seeds), scenario, args.jobs, progress)
    elapsed = time.monotonic() - started
    out.write(
        f"\n{count} seeds from {args.start} in {elapsed:.1f} s ({count / elapsed:.1f} seeds/s):"
        f" {len(failed)} failed\n"
    )
    for outcome in sorted(failed, key=lambda o: o.seed):
        out.write(f"  replay: python -m tally.consensus.pbft.simulation --seed {outcome.seed}\n")
    return 1 if failed else 0


def _summary_line(outcome: Outcome) -> str:
    status = "ok" if outcome.ok else "FAILED"
    line = (
        f"seed {outcome.seed} {status}: height {outcome.height}, view {outcome.max_view},"
        f" {outcome.messages} messages, {outcome.sim_ms} ms simulated,"
        f" trace {outcome.trace_hash[:16]}; {outcome.description}"
    )
    return "\n  ".join([line, *outcome.failures])


if __name__ == "__main__":
    sys.exit(main())
