"""Consortia of 4 (f = 1) and 7 (f = 2) real node processes under steady load, through faults.

The scenarios run in order on one network per size, each with the load running, and each
ends by checking the invariants on every node: one chain, the same state, nothing
acknowledged lost. Recovery times are printed (run with -s to see them) and bounded by the
issue's figures: commits resume within 10 s after the primary is killed and within 20 s
after a partition heals.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.network.harness import Consortium, Load, running

pytestmark = pytest.mark.network


@pytest.fixture(scope="module", params=[4, 7], ids=["4-nodes", "7-nodes"])
def consortium(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Consortium]:
    with running(Path(tmp_path_factory.mktemp("consortium")), request.param) as network:
        yield network


@pytest.fixture
def load(consortium: Consortium) -> Iterator[Load]:
    running = Load(consortium, rate=20.0)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _everyone(consortium: Consortium) -> list[int]:
    return list(range(consortium.size))


def _height(consortium: Consortium, nodes: list[int]) -> int:
    return max(consortium.heights(nodes).values())


def _settle_and_check(consortium: Consortium, load: Load) -> None:
    """Stop the load, let every node reach the top, and check the invariants."""
    load.stop()
    everyone = _everyone(consortium)
    consortium.wait_for(everyone, _height(consortium, everyone), timeout=40)
    consortium.check_invariants(everyone, load.acknowledged)


def test_members_commit_under_load(consortium: Consortium, load: Load) -> None:
    everyone = _everyone(consortium)
    consortium.wait_for(everyone, _height(consortium, everyone) + 5, timeout=30)
    assert load.acknowledged, "no transaction was acknowledged"
    for i in everyone:
        peers = consortium.status(i)["peers"]
        assert peers == [f"node{j}" for j in everyone if j != i]
    _settle_and_check(consortium, load)


def test_an_observer_follows_the_chain_and_checks_every_certificate(
    consortium: Consortium, load: Load
) -> None:
    observer = consortium.add_observer()
    try:
        everyone = _everyone(consortium)
        consortium.wait_for(everyone, _height(consortium, everyone) + 3, timeout=30)
        load.stop()
        top = _height(consortium, everyone)
        consortium.wait_for(everyone, top, timeout=30)
        deadline = time.monotonic() + 30
        status = httpx.get(observer.url + "/v1/status", timeout=5).json()
        while status["height"] < top and time.monotonic() < deadline:
            time.sleep(0.1)
            status = httpx.get(observer.url + "/v1/status", timeout=5).json()
        member = consortium.status(0)
        assert status["height"] == member["height"] == top
        assert status["block_hash"] == member["block_hash"]
        assert status["state_root"] == member["state_root"]
        assert status["consensus"] == "observer"
        assert status["refused_blocks"] == 0
    finally:
        observer.stop()


def test_f_backups_killed_commits_go_on_and_they_catch_up(
    consortium: Consortium, load: Load
) -> None:
    primary = consortium.primary()
    victims = [(primary + 1 + k) % consortium.size for k in range(consortium.f)]
    alive = [i for i in _everyone(consortium) if i not in victims]
    load.targets = alive
    for victim in victims:
        consortium.kill(victim)
    consortium.wait_for(alive, _height(consortium, alive) + 3, timeout=30)
    for victim in victims:
        consortium.restart(victim)
    load.targets = _everyone(consortium)
    consortium.wait_for(victims, _height(consortium, alive), timeout=30)
    _settle_and_check(consortium, load)


def test_primary_killed_view_change_resumes_commits(consortium: Consortium, load: Load) -> None:
    primary = consortium.primary()
    others = [i for i in _everyone(consortium) if i != primary]
    load.targets = others
    time.sleep(1.0)
    view = min(int(consortium.status(i)["view"]) for i in others)
    before = _height(consortium, others)
    consortium.kill(primary)
    killed_at = time.monotonic()
    # Resumed: every other node is in a later view and has committed two more blocks.
    deadline = killed_at + 30
    while time.monotonic() < deadline:
        statuses = [consortium.status(i) for i in others]
        if all(s["view"] > view and s["height"] >= before + 2 for s in statuses):
            break
        time.sleep(0.05)
    resumed = time.monotonic() - killed_at
    print(f"{consortium.size} nodes: commits resumed {resumed:.1f} s after the primary was killed")
    assert resumed < 10, f"no new view with commits {resumed:.1f} s after the primary was killed"
    consortium.restart(primary)
    _settle_and_check(consortium, load)


def test_partition_without_quorum_commits_nothing_then_heals(
    consortium: Consortium, load: Load
) -> None:
    everyone = _everyone(consortium)
    consortium.wait_for(everyone, _height(consortium, everyone) + 1, timeout=30)
    half = consortium.size // 2
    consortium.partition(everyone[:half], everyone[half:])  # neither side has 2f+1
    time.sleep(1.0)  # a block in flight when the cut came may still finish
    frozen = consortium.heights(everyone)
    time.sleep(2.5)
    assert consortium.heights(everyone) == frozen, "a side without a quorum committed"
    consortium.heal()
    healed_at = time.monotonic()
    consortium.wait_for(everyone, max(frozen.values()) + 1, timeout=40)
    resumed = time.monotonic() - healed_at
    print(f"{consortium.size} nodes: commits resumed {resumed:.1f} s after the partition healed")
    assert resumed < 20
    _settle_and_check(consortium, load)


def test_wiped_node_is_restored_by_state_transfer(consortium: Consortium, load: Load) -> None:
    everyone = _everyone(consortium)
    victim = (consortium.primary() + 1) % consortium.size
    load.targets = [i for i in everyone if i != victim]
    consortium.kill(victim)
    data = consortium.nodes[victim].directory / "data"
    for path in sorted(data.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    assert consortium.heights(load.targets)
    consortium.restart(victim)
    target = _height(consortium, load.targets)
    took = consortium.wait_for([victim], target, timeout=40)
    print(f"{consortium.size} nodes: wiped node caught up to height {target} in {took:.1f} s")
    load.targets = everyone
    _settle_and_check(consortium, load)


def test_throughput_with_one_node_down_stays_near_the_fault_free_rate(
    consortium: Consortium,
) -> None:
    everyone = _everyone(consortium)
    victim = (consortium.primary() + 2) % consortium.size
    saturating = Load(consortium, rate=1000.0, seed=5, batch=100)
    saturating.start(workers=4)
    try:
        time.sleep(0.5)
        start = time.monotonic()
        time.sleep(3.0)
        fault_free = saturating.committed_between(start, time.monotonic()) / 3.0
        saturating.targets = [i for i in everyone if i != victim]
        consortium.kill(victim)
        time.sleep(0.5)
        start = time.monotonic()
        time.sleep(3.0)
        one_down = saturating.committed_between(start, time.monotonic()) / 3.0
    finally:
        saturating.stop()
    ratio = one_down / fault_free
    print(
        f"{consortium.size} nodes: throughput fault-free {fault_free:.0f}/s, "
        f"one node down {one_down:.0f}/s, ratio {ratio:.2f}"
    )
    assert fault_free > 0
    assert ratio >= 0.7
    consortium.restart(victim)
    consortium.wait_for(everyone, _height(consortium, everyone), timeout=40)
    consortium.check_invariants(everyone, saturating.acknowledged)
