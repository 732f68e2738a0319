"""Offline payments end to end, with real node processes for the online parts.

Alice funds her purse online; then the node is stopped and the three devices are reopened
against a port where nothing listens, so that nothing they do offline can reach a node.
Offline, Alice pays a merchant 35.20 out of a 50.00 coin and the merchant pays 20.00 of it
on to a supplier; each payee checks its chain with nothing but the genesis it holds. Then,
for every order of the three devices, a node is started from a copy of the stopped
network, the devices (copies too) settle one after the other, and the ledger ends with the
same coins, conserving the supply.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tally.client import NodeClient, NodeUnreachable
from tally.model import coin_id, tx_id
from tally.wallet.offline.messages import decode_payment, encode_message
from tally.wallet.offline.store import SETTLED

from .network import (
    close_device,
    closed_url,
    create_device,
    devices,
    fund_own,
    ledger_state,
    start_copy,
    start_node,
)

pytestmark = pytest.mark.network

NAMES = ("alice", "merchant", "supplier")


@dataclass(frozen=True)
class OfflineWorld:
    """The stopped network and the three devices after the offline payments."""

    network: Path
    wallets: dict[str, Path]
    before: dict[str, tuple[str, int, object]]
    """The ledger's unspent coins when the node stopped."""
    hop1: bytes
    hop2: bytes
    purse_coin: bytes


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> OfflineWorld:
    root = tmp_path_factory.mktemp("offline-world")
    network = root / "network"
    node = start_node(network)
    wallets = {name: root / name for name in NAMES}
    try:
        created = {name: create_device(wallets[name], node.url) for name in NAMES}
        alice = created["alice"]
        with NodeClient(node.url) as client:
            fund_own(client, alice.wallet, 8000)
            funded = alice.fund("CNY", denominations=[5000], unlock_in=300)
            for device in created.values():
                device.wallet.sync()
            before = ledger_state(client).unspent
        assert alice.balance() == {"CNY": 5000}
        assert alice.wallet.balance() == {"CNY": 3000}
        [purse_coin] = funded["coin_ids"]
        for device in created.values():
            close_device(device)
    finally:
        node.stop()

    # Offline: the node is down, and the devices talk to a port where nothing listens.
    offline = closed_url()
    with devices(*((wallets[name], offline) for name in NAMES)) as (alice, merchant, supplier):
        with pytest.raises(NodeUnreachable):
            alice.wallet.sync()
        first = merchant.hello()
        paid = alice.pay(first, "CNY", 3520)
        received = merchant.receive(decode_payment(encode_message(paid)))
        assert (received.amount, received.payment_id) == (3520, tx_id(paid.chain.hops[0].body))
        assert merchant.balance() == {"CNY": 3520}
        assert alice.balance() == {"CNY": 1480}

        second = supplier.hello()
        onward = merchant.pay(second, "CNY", 2000)
        assert len(onward.chain.hops) == 2
        got = supplier.receive(decode_payment(encode_message(onward)))
        assert (got.amount, len(got.chain.hops)) == (2000, 2)
        assert merchant.balance() == {"CNY": 1520}
        assert supplier.balance() == {"CNY": 2000}
        hop1, hop2 = (tx_id(hop.body) for hop in onward.chain.hops)
        assert hop1 == tx_id(paid.chain.hops[0].body)
    return OfflineWorld(
        network=network,
        wallets=wallets,
        before=before,
        hop1=hop1,
        hop2=hop2,
        purse_coin=bytes.fromhex(purse_coin),
    )


@pytest.mark.parametrize("order", list(itertools.permutations(NAMES)), ids="-".join)
def test_every_settlement_order_ends_with_the_same_coins(world, order, tmp_path):
    copies = {name: tmp_path / name for name in NAMES}
    for name in NAMES:
        shutil.copytree(world.wallets[name], copies[name])
    node = start_copy(world.network, tmp_path / "network")
    try:
        with devices(*((copies[name], node.url) for name in order)) as opened:
            for device in opened:
                report = device.settle()
                assert report.double_spends == []
                assert report.failed == []
                assert report.unsettled == []
                assert {p.status for p in device.store.payments()} == {SETTLED}
            by_name = dict(zip(order, opened, strict=True))
            for device in opened:
                device.wallet.sync()
                device.refresh()
            # Each device now holds its coin on the ledger, proved by a root of its own.
            assert by_name["alice"].balance() == {"CNY": 1480}
            assert by_name["merchant"].balance() == {"CNY": 1520}
            assert by_name["supplier"].balance() == {"CNY": 2000}
            for device in opened:
                [coin] = device.spendable()
                assert coin.hops == 0
                assert len(coin.chain.roots) == 1
        with NodeClient(node.url) as client:
            state = ledger_state(client)
            assert client.tx(world.hop1)["status"] == "committed"
            assert client.tx(world.hop2)["status"] == "committed"
    finally:
        node.stop()
    expected = dict(world.before)
    del expected[world.purse_coin.hex()]
    created = {coin_id(world.hop1, 1), coin_id(world.hop2, 0), coin_id(world.hop2, 1)}
    assert set(state.unspent) == set(expected) | {c.hex() for c in created}
    assert {state.unspent[c.hex()][1] for c in created} == {1480, 2000, 1520}
    assert state.totals() == state.outstanding
