"""Byzantine members among real processes: the honest ones agree and keep committing.

Each case starts its own consortium with the liars configured from the first block, so that
the equivocating member is the primary of view 0: it sends half the backups one block and
half another for every height. Others sign every vote badly, or follow each vote with one for
another block. With 7 nodes (f = 2) two members lie at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.network.harness import Consortium, Load, running

pytestmark = pytest.mark.network

CASES = {
    "4-nodes-equivocating-primary": (4, {0: "equivocate"}),
    "4-nodes-bad-signatures": (4, {1: "bad-signatures"}),
    "4-nodes-double-vote": (4, {2: "double-vote"}),
    "7-nodes-equivocating-primary-and-bad-signatures": (
        7,
        {0: "equivocate", 1: "bad-signatures"},
    ),
}
EVIDENCE = {
    "equivocate": "test fault: equivocating at height",
    "bad-signatures": "test fault: corrupted the signature",
    "double-vote": "test fault: voting for two blocks",
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def consortium(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Consortium]:
    size, liars = CASES[request.param]
    with running(tmp_path / "consortium", size, liars) as network:
        yield network


def test_honest_members_agree_and_commit_despite_byzantine_ones(consortium: Consortium) -> None:
    honest = [i for i in range(consortium.size) if i not in consortium.byzantine]
    load = Load(consortium, rate=20.0)
    load.targets = honest
    load.start()
    try:
        consortium.wait_for(honest, 5, timeout=40)
    finally:
        load.stop()
    top = max(consortium.heights(honest).values())
    consortium.wait_for(honest, top, timeout=40)
    consortium.check_invariants(honest, load.acknowledged)
    assert load.acknowledged
    # The liars did lie: each one's log shows its fault at work.
    for liar, how in consortium.byzantine.items():
        logged = consortium.nodes[liar].logs[-1].read_text()
        assert EVIDENCE[how] in logged, f"node{liar} never misbehaved ({how})"
