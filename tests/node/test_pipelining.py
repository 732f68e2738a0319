"""The orderer executes a block while the previous one is still being written."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from tally.consensus.solo import SoloOrderer
from tally.model import block_hash, tx_id
from tally.node.core import BlockProposal, Node
from tally.store.ledger import LedgerStore
from tally.store.memory import MemoryStore
from tests.rules.helpers import (
    ALICE,
    BOB,
    MEMBER,
    coin,
    key,
    make_genesis,
    make_issue,
    make_transfer,
    outputs_of,
    owner,
)


@pytest.fixture
def node() -> Node:
    return Node.create(LedgerStore.open(MemoryStore()), make_genesis(), key(MEMBER), "member-0")


def _commit(node: Node, proposal: BlockProposal) -> None:
    # The solo orderer signs the certificate; its threads are not started here.
    orderer = SoloOrderer(node, node.key, 0, max_txs=lambda: 100, interval_ms=lambda: 50)
    header = proposal.block.header
    node.commit(proposal, orderer.certify(block_hash(header), header.height))


def _funded(node: Node) -> bytes:
    issue = make_issue("CNY", [coin("CNY", 100, ALICE)])
    node.admit_tx(issue, tx_id(issue.body))
    proposal = node.propose(100, 1)
    assert proposal is not None
    _commit(node, proposal)
    return outputs_of(issue)[0]


def test_next_block_sees_the_unwritten_block_before_it(node: Node) -> None:
    alice_coin = _funded(node)
    pay = make_transfer(
        [(alice_coin, owner(ALICE))], [coin("CNY", 60, BOB), coin("CNY", 40, ALICE)]
    )
    node.admit_tx(pay, tx_id(pay.body))
    first = node.propose(100, 2)
    assert first is not None
    change = outputs_of(pay)[1]
    onward = make_transfer([(change, owner(ALICE))], [coin("CNY", 40, BOB)])
    node.admit_tx(onward, tx_id(onward.body))  # spends change that is not yet written
    second = node.propose(100, 3)
    assert second is not None
    assert second.block.header.height == first.block.header.height + 1
    assert second.block.header.prev_hash == block_hash(first.block.header)
    assert [r.code for r in second.outcome.receipts] == ["ok"]
    _commit(node, first)
    _commit(node, second)
    assert node.store.tip() == (second.block.header.height, block_hash(second.block.header))
    assert node.store.stored_commitment() == node.store.recompute_commitment()


def test_a_commit_landing_while_the_next_block_is_proposed_is_not_missed(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice_coin = _funded(node)
    pay = make_transfer([(alice_coin, owner(ALICE))], [coin("CNY", 100, BOB)])
    node.admit_tx(pay, tx_id(pay.body))
    first = node.propose(100, 2)
    assert first is not None
    again = make_issue("CNY", [coin("CNY", 1, BOB)], nonce=5)
    node.admit_tx(again, tx_id(again.body))

    # The first block's commit finishes just after the next proposal opened its snapshot:
    # the snapshot misses the block, and the in-flight list no longer has it.
    real_reader = node.store.reader
    landed: list[bool] = []

    @contextlib.contextmanager
    def reader() -> Iterator[Any]:
        with real_reader() as snapshot:
            if not landed:
                landed.append(True)
                _commit(node, first)
            yield snapshot

    monkeypatch.setattr(node.store, "reader", reader)
    second = node.propose(100, 3)
    assert second is not None
    assert second.block.header.height == first.block.header.height + 1
    assert second.block.header.prev_hash == block_hash(first.block.header)
    monkeypatch.undo()
    _commit(node, second)
    assert node.store.stored_commitment() == node.store.recompute_commitment()
