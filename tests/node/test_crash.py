"""A real node killed with SIGKILL under load loses nothing it acknowledged.

TALLY_CRASHES sets the number of kills (5 by default, 50 in `make test-slow`); the seed of
the kill schedule is printed and TALLY_CRASH_SEED replays it.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tally.model import SignedTx, TxId, encode, tx_id
from tally.node.audit import audit_store
from tally.store.ledger import LedgerStore
from tally.store.lmdb_store import LmdbStore
from tests.node.harness import NodeProcess, free_port, make_node_dir
from tests.rules.helpers import (
    ALICE,
    coin,
    make_genesis,
    make_issue,
    make_transfer,
    outputs_of,
    owner,
)

CRASHES = int(os.environ.get("TALLY_CRASHES", "5"))
LANES = 8
OCTET = {"content-type": "application/octet-stream"}


@dataclass
class Lane:
    """A chain of transfers, each spending the previous one's change."""

    coin_id: bytes
    amount: int
    last_sent: SignedTx | None = None


@dataclass
class Load:
    """Transfers sent while the node runs, and those it acknowledged as committed."""

    url: str
    lanes: list[Lane]
    acknowledged: list[TxId] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run_lane(self, lane: Lane) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            while not self.stop.is_set():
                tx = make_transfer(
                    [(lane.coin_id, owner(ALICE))],
                    [coin("CNY", 1, ALICE), coin("CNY", lane.amount - 1, ALICE)],
                )
                lane.last_sent = tx
                try:
                    response = client.post("/v1/txs?wait=commit", content=encode(tx), headers=OCTET)
                except httpx.TransportError:
                    return  # the node died: this one is not acknowledged
                if response.status_code != 200 or response.json()["status"] != "committed":
                    return
                with self.lock:
                    self.acknowledged.append(tx_id(tx.body))
                lane.coin_id, lane.amount = outputs_of(tx)[1], lane.amount - 1

    def run(self, seconds: float) -> None:
        self.stop.clear()
        threads = [threading.Thread(target=self.run_lane, args=(lane,)) for lane in self.lanes]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        self.stop.set()  # set before the kill too, so that no lane retries on a dead node
        self._threads = threads

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=30)


def _resync(lanes: list[Lane], store: LedgerStore) -> None:
    # A transfer sent just before the kill may have committed without acknowledgement:
    # continue from its change if so.
    for lane in lanes:
        if store.coin(lane.coin_id) is None and lane.last_sent is not None:
            record = store.tx(tx_id(lane.last_sent.body))
            assert record is not None
            assert record.receipt.accepted
            lane.coin_id, lane.amount = outputs_of(lane.last_sent)[1], lane.amount - 1


@pytest.mark.slow
def test_node_killed_under_load_keeps_every_acknowledged_transaction(tmp_path: Path) -> None:
    seed = int(os.environ.get("TALLY_CRASH_SEED", random.randrange(2**32)))
    print(f"crash schedule seed {seed} (TALLY_CRASH_SEED={seed} replays it)")
    rng = random.Random(seed)
    port = free_port()
    node = NodeProcess(make_node_dir(tmp_path, make_genesis(), port), port)
    node_dir = node.directory
    node.start()
    issue = make_issue("CNY", [coin("CNY", 10**12, ALICE) for _ in range(LANES)])
    response = httpx.post(node.url + "/v1/txs?wait=commit", content=encode(issue), headers=OCTET)
    assert response.json()["status"] == "committed"
    lanes = [Lane(coin_id=cid, amount=10**12) for cid in outputs_of(issue)]
    load = Load(url=node.url, lanes=lanes)
    try:
        for crash in range(CRASHES):
            killer = threading.Timer(rng.uniform(0.2, 1.5), node.kill)
            killer.start()
            load.run(rng.uniform(0.2, 1.5) + 0.3)
            killer.join()
            if node.process is not None and node.process.poll() is None:
                node.kill()
            load.join()
            kv = LmdbStore(node_dir / "data")
            store = LedgerStore.open(kv)
            try:
                report = audit_store(store)
                assert report.ok, f"crash {crash}: {report}"
                assert report.outstanding == {"CNY": LANES * 10**12}
                missing = [t.hex() for t in load.acknowledged if store.tx(t) is None]
                assert not missing, f"crash {crash}: acknowledged but lost: {missing[:3]}"
                _resync(lanes, store)
            finally:
                kv.close()
            node.start()
        assert len(load.acknowledged) > CRASHES, "the load never got going"
    finally:
        node.stop()
    print(f"{CRASHES} crashes, {len(load.acknowledged)} acknowledged transfers, none lost")


def test_node_stops_cleanly_on_sigterm_and_resumes_at_its_height(tmp_path: Path) -> None:
    port = free_port()
    node = NodeProcess(make_node_dir(tmp_path, make_genesis(), port), port)
    node.start()
    issue = make_issue("CNY", [coin("CNY", 5, ALICE)])
    response = httpx.post(node.url + "/v1/txs?wait=commit", content=encode(issue), headers=OCTET)
    height = response.json()["height"]
    assert node.stop() == 0
    assert f"stopped cleanly at height {height}" in node.logs[-1].read_text()
    node.start()
    try:
        status = httpx.get(node.url + "/v1/status").json()
        assert status["height"] == height
        assert httpx.get(node.url + f"/v1/txs/{tx_id(issue.body).hex()}").json()["status"] == (
            "committed"
        )
    finally:
        assert node.stop() == 0
