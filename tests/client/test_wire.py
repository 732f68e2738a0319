"""The node's JSON coin views read back into exactly the coins they show."""

from __future__ import annotations

import pytest

from tally.client import WireError, coin_from_json, coins_from_json, lock_from_json
from tally.model import Amount, AssetCode, Coin, CoinId, Lock
from tally.node.views import coin_json
from tests.rules.helpers import (
    ALICE,
    BOB,
    CAROL,
    HRP,
    escrow_lock,
    key_lock,
    multi_lock,
    offline_lock,
    pub,
)


@pytest.mark.parametrize(
    "lock",
    [
        key_lock(ALICE),
        multi_lock(2, [ALICE, BOB, CAROL]),
        escrow_lock(ALICE, BOB, 9),
        offline_lock(ALICE, 2**40),
    ],
    ids=["key", "multisig", "escrow", "offline"],
)
def test_coin_views_round_trip_for_every_lock_kind(lock: Lock) -> None:
    coin = Coin(asset=AssetCode("CNY"), amount=Amount(2**63 - 1), lock=lock)
    cid = CoinId(bytes(range(32)))
    view = coin_json(cid, coin, HRP)
    assert coin_from_json(view) == (cid, coin)
    assert coins_from_json({"coins": [view, view]}) == [(cid, coin), (cid, coin)]


def test_malformed_views_raise_wire_error() -> None:
    with pytest.raises(WireError, match="unknown lock kind"):
        lock_from_json({"kind": "hash"})
    with pytest.raises(WireError, match="64 hex digits"):
        lock_from_json({"kind": "key", "key": "zz"})
    with pytest.raises(WireError, match="32 bytes"):
        lock_from_json({"kind": "key", "key": "00" * 31})
    with pytest.raises(WireError, match="malformed coin"):
        coin_from_json({"coin_id": "00" * 32, "asset": "CNY"})
    with pytest.raises(WireError, match="coins"):
        coins_from_json({})
    with pytest.raises(WireError, match="malformed offline lock"):
        lock_from_json({"kind": "offline", "owner": pub(ALICE).hex()})
    with pytest.raises(WireError, match="malformed offline lock"):
        lock_from_json({"kind": "offline", "owner": pub(ALICE).hex(), "unlock_height": "x"})
    with pytest.raises(WireError, match="64 hex digits"):
        lock_from_json({"kind": "offline", "owner": None, "unlock_height": 3})


def test_offline_lock_view_names_owner_and_unlock_height() -> None:
    view = coin_json(
        CoinId(bytes(32)),
        Coin(asset=AssetCode("CNY"), amount=Amount(1), lock=offline_lock(BOB, 7)),
        HRP,
    )
    assert view["lock"]["kind"] == "offline"
    assert (view["lock"]["owner"], view["lock"]["unlock_height"]) == (pub(BOB).hex(), 7)
    assert view["lock"]["address"].startswith(HRP + "1")
