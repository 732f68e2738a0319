"""Commit certificates: what members sign to make a block final, and how anyone checks it."""

from __future__ import annotations

from collections.abc import Sequence

from tally.crypto.hashing import tagged_hash
from tally.crypto.schnorr import PrivateKey
from tally.model.block import CommitCertificate, Header
from tally.model.encoding import block_hash, encode
from tally.model.genesis import Member
from tally.model.rejection import Rejection
from tally.model.tx import Signature
from tally.model.types import BlockHash, Hash32, Height, SignatureBytes
from tally.rules.locks import Verifier

__all__ = [
    "commit_message",
    "sign_certificate",
    "quorum_size",
    "check_certificate",
    "CertificateError",
]


class CertificateError(Rejection):
    """A commit certificate does not prove the block final."""

    code = "certificate.invalid"


def quorum_size(member_count: int) -> int:
    """Signatures needed among n = 3f+1 members: 2f+1 (1 for a single member)."""
    faulty = (member_count - 1) // 3
    return 2 * faulty + 1


def commit_message(chain_id: str, height: Height, digest: BlockHash, view: int) -> Hash32:
    """The 32-byte message a member signs to commit block `digest` at `height` in `view`."""
    return Hash32(tagged_hash("tally/commit", encode((chain_id, height, digest, view))))


def sign_certificate(
    chain_id: str,
    height: Height,
    digest: BlockHash,
    view: int,
    signers: Sequence[tuple[int, PrivateKey]],
) -> CommitCertificate:
    """A certificate of block `digest` signed by each `(member index, key)` in `signers`.

    Signing is deterministic (BIP-340 with zero auxiliary randomness), so this stays pure.
    """
    msg = commit_message(chain_id, height, digest, view)
    return CommitCertificate(
        height=height,
        block_hash=digest,
        view=view,
        signatures=tuple(
            Signature(signer=index, sig=SignatureBytes(key.sign(msg)))
            for index, key in sorted(signers, key=lambda pair: pair[0])
        ),
    )


def check_certificate(
    certificate: CommitCertificate,
    header: Header,
    members: tuple[Member, ...],
    verify: Verifier,
) -> None:
    """Check that `certificate` carries a quorum of valid member signatures over `header`.

    Raises:
        CertificateError: wrong height or hash, unknown or repeated signer, a bad
            signature, or fewer signatures than the quorum.
    """
    digest = block_hash(header)
    if certificate.height != header.height or certificate.block_hash != digest:
        raise CertificateError("the certificate is for another block", height=certificate.height)
    needed = quorum_size(len(members))
    msg = commit_message(header.chain_id, header.height, digest, certificate.view)
    last = -1
    for signature in certificate.signatures:
        if signature.signer <= last or signature.signer >= len(members):
            raise CertificateError(
                f"signer {signature.signer} is unknown or repeated", signer=signature.signer
            )
        last = signature.signer
        if not verify(members[signature.signer].key, msg, signature.sig):
            raise CertificateError(
                f"the signature of member {members[signature.signer].name} does not verify",
                signer=signature.signer,
            )
    if len(certificate.signatures) < needed:
        raise CertificateError(
            f"{len(certificate.signatures)} signatures, a quorum is {needed}",
            found=len(certificate.signatures),
            quorum=needed,
        )
