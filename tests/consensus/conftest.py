"""A consortium for the membership and transport tests: a root and four member certificates.

Member `nodeI` has the Schnorr consensus key `key(40 + I)` of `tests.rules.helpers`, and its
certificate and TLS key are written to `nodeI.crt` and `nodeI-tls.key` in a directory of
their own. A second, foreign root issues certificates for the same names and keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tally.consensus.membership import issue_member_certificate, make_root
from tally.model import Member
from tests.rules.helpers import key

NAMES = ("node0", "node1", "node2", "node3")


@dataclass
class Consortium:
    """A root, its key, the members, and where each member's certificate and key lie."""

    root_der: bytes
    root_key: bytes
    members: tuple[Member, ...]
    directory: Path
    files: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    """(certificate, TLS key) files by member name."""

    def issue(self, name: str, consensus_key: bytes | None = None, **kwargs) -> tuple[Path, Path]:
        """Issue (and write) a certificate for `name`, by default with its member key."""
        if consensus_key is None:
            consensus_key = next(m.key for m in self.members if m.name == name)
        cert, tls_key = issue_member_certificate(
            self.root_der, self.root_key, name, consensus_key, **kwargs
        )
        stem = self.directory / f"{name}-{len(list(self.directory.iterdir()))}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(cert)
        key_file.write_bytes(tls_key)
        return cert_file, key_file


def make_consortium(directory: Path, root_name: str = "Tally test consortium") -> Consortium:
    directory.mkdir(parents=True, exist_ok=True)
    root_der, root_key = make_root(root_name)
    members = tuple(
        Member(name=name, key=key(40 + index).public_key) for index, name in enumerate(NAMES)
    )
    consortium = Consortium(root_der, root_key, members, directory)
    for name in NAMES:
        consortium.files[name] = consortium.issue(name)
    return consortium


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    return make_consortium(tmp_path_factory.mktemp("consortium"))


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    """Another root, issuing certificates for the same names and keys."""
    return make_consortium(tmp_path_factory.mktemp("foreign"), "Someone else")
