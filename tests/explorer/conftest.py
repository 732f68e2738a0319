"""A small ledger with every kind of transaction, and the explorer mounted over it.

`chain` commits its blocks straight into an in-memory store (`append_block`), so that it
can hold what an orderer never produces on demand: a transaction rejected in its block.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from tally.explorer import mount_explorer
from tally.explorer.bench import append_block
from tally.model import (
    AssetCode,
    RegisterAsset,
    address_of,
    block_hash,
    coin_id,
    tx_id,
)
from tally.node.api import create_app
from tally.node.core import Node
from tally.store.ledger import LedgerStore
from tally.store.memory import MemoryStore
from tests.rules.helpers import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    HRP,
    MEMBER,
    coin,
    escrow_lock,
    key,
    key_lock,
    make_genesis,
    make_govern,
    make_issue,
    make_redeem,
    make_transfer,
    multi_lock,
    owner,
    pub,
)


@dataclass
class Chain:
    """Ids of what the test ledger holds, as hex strings."""

    node: Node
    issue_tx: str
    usd_issue_tx: str
    alice_coin: str
    transfer_tx: str
    bob_coin: str
    change_coin: str
    multisig_coin: str
    escrow_coin: str
    rejected_tx: str
    redeem_tx: str
    govern_tx: str
    redeemed_coin: str
    transfer_height: int
    transfer_block_hash: str
    tip: int
    alice: str
    bob: str
    carol: str


def build_chain() -> Chain:
    """Five blocks: issuances, a transfer to four lock kinds, a rejection, a redemption."""
    store = LedgerStore.open(MemoryStore())
    store.init_genesis(make_genesis())
    member = key(MEMBER)

    issue = make_issue("CNY", [coin("CNY", 100_000, ALICE), coin("CNY", 5_000, BOB)])
    usd = make_issue("USD", [coin("USD", 250_075, CAROL)], nonce=1)
    append_block(store, [issue, usd], key=member)
    issue_id = tx_id(issue.body)
    alice_coin = coin_id(issue_id, 0)
    bob_first = coin_id(issue_id, 1)

    transfer = make_transfer(
        [(alice_coin, owner(ALICE))],
        [
            coin("CNY", 30_000, BOB),
            coin("CNY", 50_000, ALICE),
            coin("CNY", 15_000, multi_lock(2, [ALICE, BOB, CAROL])),
            coin("CNY", 5_000, escrow_lock(ALICE, DAVE, 400)),
        ],
    )
    transfer_block = append_block(store, [transfer], key=member)
    transfer_id = tx_id(transfer.body)

    double_spend = make_transfer([(alice_coin, owner(ALICE))], [coin("CNY", 100_000, CAROL)])
    redeem = make_redeem("CNY", [(bob_first, owner(BOB))])
    append_block(store, [double_spend, redeem], key=member)

    govern = make_govern(RegisterAsset(asset=AssetCode("EUR"), issuer=pub(CAROL)))
    append_block(store, [govern], key=member)
    append_block(store, [], key=member)

    node = Node(store, member, "member-0")
    return Chain(
        node=node,
        issue_tx=issue_id.hex(),
        usd_issue_tx=tx_id(usd.body).hex(),
        alice_coin=alice_coin.hex(),
        transfer_tx=transfer_id.hex(),
        bob_coin=coin_id(transfer_id, 0).hex(),
        change_coin=coin_id(transfer_id, 1).hex(),
        multisig_coin=coin_id(transfer_id, 2).hex(),
        escrow_coin=coin_id(transfer_id, 3).hex(),
        rejected_tx=tx_id(double_spend.body).hex(),
        redeem_tx=tx_id(redeem.body).hex(),
        govern_tx=tx_id(govern.body).hex(),
        redeemed_coin=bob_first.hex(),
        transfer_height=transfer_block.header.height,
        transfer_block_hash=block_hash(transfer_block.header).hex(),
        tip=store.tip()[0],
        alice=address_of(key_lock(ALICE), HRP),
        bob=address_of(key_lock(BOB), HRP),
        carol=address_of(key_lock(CAROL), HRP),
    )


@pytest.fixture(scope="module")
def chain() -> Chain:
    return build_chain()


@pytest.fixture(scope="module")
def explorer_app(chain: Chain) -> FastAPI:
    app = create_app(chain.node, verify_threads=1)
    mount_explorer(app, chain.node)
    return app


@pytest.fixture(scope="module")
def web(explorer_app: FastAPI, chain: Chain) -> Iterator[TestClient]:
    with TestClient(explorer_app) as client:
        assert explorer_app.state.explorer.index is None  # the store answers instead
        yield client
