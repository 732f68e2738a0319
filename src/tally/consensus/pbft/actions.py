"""What a replica asks its host to do, and the state it asks the host to keep across crashes.

The replica (`tally.consensus.pbft.replica`) never does I/O. Each call returns a list of these
actions, and the host carries them out in order before it gives the replica its next event:
a `Persist` that precedes a `Broadcast` is on disk before the message leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from tally.consensus.pbft.messages import Checkpoint, Message, Payload, PreparedProof, PrePrepare
from tally.model.block import CommitCertificate

__all__ = [
    "Send",
    "Broadcast",
    "Persist",
    "Propose",
    "Validate",
    "Deliver",
    "CatchUp",
    "ViewChanged",
    "Action",
    "ReplicaLog",
]


class ReplicaLog(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """What a replica must find again after a crash so as not to contradict what it sent.

    It never prepares a second block for a (view, height) it prepared (`accepted`), never
    returns to a view it left (`view`), its view changes still report every block it
    prepared (`prepared`), and it can still hand out those blocks (`blocks`).
    """

    view: int
    active: bool
    """False while the replica is changing to `view`."""
    checkpoint_seq: int
    checkpoint_digest: bytes
    checkpoint_proof: tuple[Checkpoint, ...]
    accepted: tuple[PrePrepare, ...]
    """Pre-prepares it sent a prepare for (or, as primary, sent), above the checkpoint."""
    prepared: tuple[PreparedProof, ...]
    """Its prepared certificate of the highest view for each height above the checkpoint."""
    blocks: tuple[Payload, ...] = ()
    """The bytes of the blocks of `accepted` and `prepared` above its committed height.

    A view change re-proposes a prepared block, and no store holds it before it commits: if
    every replica that had its bytes restarted without them, no view could ever commit it.
    """


@dataclass(frozen=True)
class Send:
    """Send `message` to replica `to`."""

    to: int
    message: Message


@dataclass(frozen=True)
class Broadcast:
    """Send `message` to every other replica."""

    message: Message


@dataclass(frozen=True)
class Persist:
    """Write `log` durably (replacing the previous one) before the next action."""

    log: ReplicaLog


@dataclass(frozen=True)
class Propose:
    """As primary of `view`, build the block at height `seq` and answer with `on_proposed`."""

    view: int
    seq: int


@dataclass(frozen=True)
class Validate:
    """Execute `payload` as the block at `seq` and answer with `on_validated`."""

    seq: int
    digest: bytes
    payload: bytes


@dataclass(frozen=True)
class Deliver:
    """Block `digest` is final at height `seq`: commit it durably with `certificate`."""

    seq: int
    digest: bytes
    payload: bytes
    certificate: CommitCertificate


@dataclass(frozen=True)
class CatchUp:
    """Peers have committed up to `seq` at least: catch up by state transfer.

    Fetch the blocks with their certificates, check them, commit them, and answer with
    `on_synced`, also when no peer had anything (the replica forgets an unanswered request
    after a view timeout, and meanwhile does not propose). When no peer hands out the bytes of
    a block the replica needs, `seq` is a guess: peers that committed it have it in store.
    """

    seq: int


@dataclass(frozen=True)
class ViewChanged:
    """The replica now works in `view` (for logs and metrics)."""

    view: int
    primary: int


Action = Send | Broadcast | Persist | Propose | Validate | Deliver | CatchUp | ViewChanged
