"""The PBFT orderer on real nodes (memory stores) linked in-process, without TLS.

What the network tests show on processes, here in one process and in seconds: transactions
sent to one node reach every node and commit with a quorum certificate, a node that was
stopped catches up by state transfer, and a dead primary is replaced.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from tally.consensus.pbft.orderer import PbftOrderer
from tally.crypto import schnorr
from tally.model.block import CommitCertificate
from tally.model.encoding import encode
from tally.node.core import BlockProposal, Node
from tally.node.observer import Observer
from tally.rules.certificate import check_certificate
from tally.store.ledger import LedgerStore
from tally.store.memory import MemoryStore
from tests.rules.helpers import ALICE, CNY, coin, key, make_genesis, make_issue

MEMBERS = [(f"node{i}", 40 + i) for i in range(4)]
NAMES = [name for name, _ in MEMBERS]


class Switchboard:
    """In-memory links between orderers; a node that is down neither sends nor receives."""

    def __init__(self) -> None:
        self.orderers: dict[str, PbftOrderer[BlockProposal]] = {}
        self.down: set[str] = set()

    def link(self, name: str) -> Link:
        return Link(self, name)


class Link:
    def __init__(self, board: Switchboard, name: str) -> None:
        self._board = board
        self._name = name

    def send(self, peer: str, data: bytes) -> None:
        if self._name in self._board.down or peer in self._board.down:
            return
        target = self._board.orderers.get(peer)
        if target is not None:
            target.on_message(self._name, data)

    def broadcast(self, data: bytes) -> None:
        for peer in NAMES:
            if peer != self._name:
                self.send(peer, data)


def _start(
    board: Switchboard, nodes: dict[str, Node], name: str, tmp: Path, byzantine: str | None
) -> None:
    node = nodes[name]
    orderer: PbftOrderer[BlockProposal] = PbftOrderer(
        node,
        node.key,
        NAMES.index(name),
        NAMES,
        tmp / f"{name}.log",
        max_txs=node.params_max_txs,
        view_timeout_ms=500,
        checkpoint_interval=4,
        byzantine=byzantine,
    )
    orderer.attach(board.link(name))
    board.orderers[name] = orderer
    orderer.start()


@pytest.fixture
def byzantine() -> dict[str, str]:
    """Members that misbehave, by name; none unless a test says so."""
    return {}


@pytest.fixture
def network(
    tmp_path: Path, byzantine: dict[str, str]
) -> Iterator[tuple[Switchboard, dict[str, Node]]]:
    genesis = make_genesis(members=MEMBERS)
    board = Switchboard()
    nodes = {
        name: Node.create(LedgerStore.open(MemoryStore()), genesis, key(index), name)
        for name, index in MEMBERS
    }
    for name in NAMES:
        _start(board, nodes, name, tmp_path, byzantine.get(name))
    try:
        yield board, nodes
    finally:
        for orderer in board.orderers.values():
            orderer.stop()


def _wait(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def _submit(node: Node, nonce: int) -> bytes:
    tx = make_issue(CNY, [coin(CNY, 100, ALICE)], nonce=nonce)
    txid, _ = node.admit(encode(tx))
    return txid


def test_a_transaction_sent_to_one_node_commits_on_all_with_a_quorum_certificate(
    network: tuple[Switchboard, dict[str, Node]],
) -> None:
    _, nodes = network
    txid = _submit(nodes["node2"], 1)
    _wait(lambda: all(node.result(txid) is not None for node in nodes.values()))
    heights = {node.store.tip() for node in nodes.values()}
    assert len(heights) == 1
    height = nodes["node0"].store.tip()[0]
    members = nodes["node0"].members()
    for node in nodes.values():
        block = node.store.block(height)
        certificate = node.store.certificate(height)
        assert block is not None
        assert certificate is not None
        check_certificate(certificate, block.header, members, schnorr.verify)
        assert len(certificate.signatures) >= 3


def test_a_stopped_backup_catches_up_and_a_dead_primary_is_replaced(
    network: tuple[Switchboard, dict[str, Node]],
) -> None:
    board, nodes = network
    board.down.add("node3")
    for nonce in range(10, 20):
        _submit(nodes["node1"], nonce)
        time.sleep(0.02)
    _wait(lambda: nodes["node1"].mempool.waiting() == 0 and len(nodes["node1"].mempool) == 0)
    board.down.discard("node3")
    # node3 learns of the later heights from the next block's votes or checkpoints.
    txid = _submit(nodes["node1"], 99)
    _wait(lambda: nodes["node3"].result(txid) is not None)
    assert nodes["node3"].store.tip() == nodes["node0"].store.tip()
    # The primary of view 0 goes down: the others change view and go on.
    board.down.add("node0")
    txid = _submit(nodes["node2"], 100)
    _wait(lambda: all(nodes[n].result(txid) is not None for n in ("node1", "node2", "node3")))
    assert board.orderers["node1"].view >= 1
    tips = {nodes[n].store.tip() for n in ("node1", "node2", "node3")}
    assert len(tips) == 1


HONEST = ("node1", "node2", "node3")


@pytest.mark.parametrize(
    "byzantine",
    [{"node0": "equivocate"}, {"node0": "bad-signatures"}, {"node0": "double-vote"}],
    ids=["equivocating-primary", "bad-signatures", "double-vote"],
)
def test_honest_members_agree_and_go_on_despite_a_byzantine_one(
    network: tuple[Switchboard, dict[str, Node]], byzantine: dict[str, str]
) -> None:
    _, nodes = network
    txids = [_submit(nodes["node1"], nonce) for nonce in range(200, 205)]
    for txid in txids:
        _wait(lambda txid=txid: all(nodes[n].result(txid) is not None for n in HONEST))
    top = min(nodes[n].store.tip()[0] for n in HONEST)
    members = nodes["node1"].members()
    for height in range(1, top + 1):
        hashes = {nodes[n].committed_digest(height) for n in HONEST}
        assert len(hashes) == 1, f"fork at height {height}"
        certificate = nodes["node1"].store.certificate(height)
        block = nodes["node1"].store.block(height)
        assert certificate is not None
        assert block is not None
        check_certificate(certificate, block.header, members, schnorr.verify)
        if byzantine["node0"] == "bad-signatures":
            assert 0 not in {s.signer for s in certificate.signatures}


def test_an_observer_follows_with_certificates_and_refuses_forgeries(
    network: tuple[Switchboard, dict[str, Node]],
) -> None:
    _, nodes = network
    for nonce in range(300, 303):  # one block each
        txid = _submit(nodes["node2"], nonce)
        _wait(lambda txid=txid: nodes["node0"].result(txid) is not None)
    source = nodes["node0"]
    genesis = source.genesis
    watcher = Node.create(LedgerStore.open(MemoryStore()), genesis, key(77), "observer")
    observer = Observer(watcher, ["http://unused"])
    raw, certificate = _served(source, 1)
    # A certificate with one signature short of the quorum proves nothing.
    short = msgspec.structs.replace(certificate, signatures=certificate.signatures[:2])
    assert not observer.follow(encode((raw, encode(short))))
    # Nor does a certificate for another block.
    _, other_certificate = _served(source, 2)
    assert not observer.follow(encode((raw, encode(other_certificate))))
    assert not observer.follow(b"\x00garbage")
    assert watcher.committed_height() == 0
    assert observer.refused == 3
    for height in range(1, source.committed_height() + 1):
        block_bytes, block_certificate = _served(source, height)
        assert observer.follow(encode((block_bytes, encode(block_certificate))))
    assert watcher.store.tip() == source.store.tip()
    assert watcher.store.stored_commitment().digest() == source.store.stored_commitment().digest()


def _served(node: Node, height: int) -> tuple[bytes, CommitCertificate]:
    found = node.committed_block(height)
    assert found is not None
    return found
