"""The messages PBFT replicas exchange, and what each one's signature covers.

Castro and Liskov's protocol, with a block as the request: the sequence number is the block
height and the digest is the block hash. Every vote is signed by its sender, so a quorum of
votes is a certificate anyone can check. A `Commit` signs exactly the message a
`CommitCertificate` signature signs (`tally.rules.certificate.commit_message`): 2f+1 commits
are the block's commit certificate, with no second signature.

The block itself travels beside its pre-prepare (`Proposal`, `Payload`), not inside it, so
that view-change proofs carry digests and stay small.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

import msgspec

from tally.crypto.hashing import tagged_hash
from tally.model.encoding import encode
from tally.model.types import BlockHash, Hash32, Height
from tally.rules.certificate import commit_message

__all__ = [
    "PrePrepare",
    "Prepare",
    "Commit",
    "Checkpoint",
    "PreparedProof",
    "ViewChange",
    "NewView",
    "Proposal",
    "Fetch",
    "Payload",
    "Txs",
    "Message",
    "Vote",
    "signed_digest",
    "encode_message",
    "decode_message",
]

_Digest = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
_Sig = Annotated[bytes, msgspec.Meta(max_length=64)]
_Index = Annotated[int, msgspec.Meta(ge=0, le=1023)]
_Count = Annotated[int, msgspec.Meta(ge=0, le=2**62)]


class PrePrepare(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=1):
    """The primary of `view` assigns block `digest` to height `seq`."""

    view: _Count
    seq: _Count
    digest: _Digest
    sender: _Index
    sig: _Sig = b""


class Prepare(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=2):
    """A backup accepted the pre-prepare of (`view`, `seq`, `digest`) after executing the block."""

    view: _Count
    seq: _Count
    digest: _Digest
    sender: _Index
    sig: _Sig = b""


class Commit(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=3):
    """The sender holds a prepared certificate for (`view`, `seq`, `digest`)."""

    view: _Count
    seq: _Count
    digest: _Digest
    sender: _Index
    sig: _Sig = b""


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=4):
    """The sender committed height `seq`, whose block hash is `digest`."""

    seq: _Count
    digest: _Digest
    sender: _Index
    sig: _Sig = b""


class PreparedProof(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A pre-prepare and 2f matching prepares from other replicas: a prepared certificate."""

    pre_prepare: PrePrepare
    prepares: tuple[Prepare, ...]


class ViewChange(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=5):
    """The sender moves to `view`: its stable checkpoint, with proof, and what it prepared above."""

    view: _Count
    checkpoint_seq: _Count
    checkpoint_digest: _Digest
    checkpoint_proof: tuple[Checkpoint, ...]
    """2f+1 checkpoints of (`checkpoint_seq`, `checkpoint_digest`); empty at height 0."""
    prepared: tuple[PreparedProof, ...]
    """For each height above the checkpoint, the prepared certificate of the highest view."""
    sender: _Index
    sig: _Sig = b""


class NewView(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=6):
    """The primary of `view` starts it: 2f+1 view changes and the pre-prepares they imply."""

    view: _Count
    view_changes: tuple[ViewChange, ...]
    pre_prepares: tuple[PrePrepare, ...]
    sender: _Index
    sig: _Sig = b""


class Proposal(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=7):
    """A pre-prepare with its block's bytes; only the pre-prepare is signed."""

    pre_prepare: PrePrepare
    payload: bytes


class Fetch(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=8):
    """Asks peers for the block with `digest` at height `seq`."""

    seq: _Count
    digest: _Digest
    sender: _Index


class Payload(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=9):
    """A block's bytes; the receiver checks them against `digest` before using them."""

    seq: _Count
    digest: _Digest
    payload: bytes


class Txs(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=10):
    """Transactions a node forwards to its peers, in canonical bytes; not a PBFT message."""

    txs: tuple[bytes, ...]


Message: TypeAlias = (
    PrePrepare
    | Prepare
    | Commit
    | Checkpoint
    | ViewChange
    | NewView
    | Proposal
    | Fetch
    | Payload
    | Txs
)
Vote: TypeAlias = PrePrepare | Prepare | Commit | Checkpoint | ViewChange | NewView
"""The messages that carry a signature."""

_TAGS: dict[type, str] = {
    PrePrepare: "tally/pbft/pre-prepare",
    Prepare: "tally/pbft/prepare",
    Checkpoint: "tally/pbft/checkpoint",
    ViewChange: "tally/pbft/view-change",
    NewView: "tally/pbft/new-view",
}


def signed_digest(chain_id: str, vote: Vote) -> Hash32:
    """The 32 bytes the sender of `vote` signs: every field but the signature, and the chain.

    A commit signs the commit-certificate message, so that 2f+1 commits are a certificate.
    """
    if isinstance(vote, Commit):
        return commit_message(chain_id, Height(vote.seq), BlockHash(vote.digest), vote.view)
    unsigned = msgspec.structs.replace(vote, sig=b"")
    return Hash32(tagged_hash(_TAGS[type(vote)], encode((chain_id, unsigned))))


def encode_message(message: Message) -> bytes:
    """The canonical bytes of a message for the wire."""
    return encode(message)


# Built at import, while one thread runs: see `tally.model.encoding.prepare_decoders`.
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


def decode_message(data: bytes) -> Message:
    """A message from the wire.

    Raises:
        msgspec.DecodeError: not a valid message (also for a wrong field type or bound).
    """
    return _decoder.decode(data)
