"""Randomized fault schedules on a real 4-node consortium, one seed at a time.

Each seed draws a schedule of faults — kill -9 and restart, SIGSTOP and SIGCONT, cutting a
node off, delays, loss and duplication on a node's links — at most f = 1 node at a time,
while the load runs. Then every fault is removed, the nodes must agree on one chain again,
and every acknowledged transaction must be on every node.

The schedule is a pure function of the seed (`schedule`), printed when a seed fails; set
`TALLY_NETWORK_SEED=S` to run that seed alone. `TALLY_NETWORK_SEEDS=N` runs N seeds (the
slow run uses 500); the default is 20.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.network.harness import Consortium, Load, running

pytestmark = pytest.mark.network

SIZE = 4
KINDS = ("kill", "pause", "isolate", "delay", "lossy")


@dataclass(frozen=True)
class Fault:
    """One fault on one node for `seconds`, after `gap` seconds of calm."""

    kind: str
    node: int
    seconds: float
    gap: float


def schedule(seed: int, events: int = 2) -> list[Fault]:
    """The faults of `seed`, in order; the same seed always gives the same schedule."""
    rng = random.Random(seed)
    return [
        Fault(
            kind=rng.choice(KINDS),
            node=rng.randrange(SIZE),
            seconds=round(rng.uniform(0.5, 1.5), 2),
            gap=round(rng.uniform(0.1, 0.6), 2),
        )
        for _ in range(events)
    ]


def _seeds() -> list[int]:
    one = os.environ.get("TALLY_NETWORK_SEED")
    if one is not None:
        return [int(one)]
    return list(range(int(os.environ.get("TALLY_NETWORK_SEEDS", "20"))))


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    with running(Path(tmp_path_factory.mktemp("random-faults")), SIZE) as network:
        yield network


def _inject(consortium: Consortium, fault: Fault, seed: int) -> None:
    node = fault.node
    if fault.kind == "kill":
        consortium.kill(node)
        time.sleep(fault.seconds)
        consortium.restart(node)
    elif fault.kind == "pause":
        consortium.pause(node)
        time.sleep(fault.seconds)
        consortium.resume(node)
    else:
        rules = {
            "isolate": {"blocked": [f"node{j}" for j in range(SIZE) if j != node]},
            "delay": {"delay_ms": 150, "jitter_ms": 100, "reorder": 0.2, "seed": seed},
            "lossy": {"drop": 0.3, "duplicate": 0.2, "seed": seed},
        }[fault.kind]
        consortium.set_faults(node, **rules)
        if fault.kind == "isolate":
            # A partition cuts both ways: the others refuse the node too.
            for other in range(SIZE):
                if other != node:
                    consortium.set_faults(other, blocked=[f"node{node}"])
        time.sleep(fault.seconds)
        consortium.heal()


@pytest.mark.parametrize("seed", _seeds())
def test_a_random_fault_schedule_keeps_one_chain_and_every_commit(
    consortium: Consortium, seed: int
) -> None:
    everyone = list(range(SIZE))
    faults = schedule(seed)
    load = Load(consortium, rate=20.0, seed=seed + 1)
    load.start()
    try:
        for fault in faults:
            time.sleep(fault.gap)
            _inject(consortium, fault, seed)
    finally:
        load.stop()
    start = max(consortium.heights(everyone).values())
    try:
        consortium.wait_for(everyone, start, timeout=40)
        consortium.check_invariants(everyone, load.acknowledged)
    except AssertionError as failure:
        raise AssertionError(f"seed {seed}, schedule {faults}: {failure}") from None
    assert load.acknowledged, f"seed {seed}: nothing was committed under {faults}"


def test_the_schedule_is_a_function_of_the_seed() -> None:
    assert schedule(7) == schedule(7)
    assert len({tuple(schedule(seed)) for seed in range(20)}) == 20
    assert {fault.kind for seed in range(20) for fault in schedule(seed)} == set(KINDS)
