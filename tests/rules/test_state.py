from hypothesis import given
from hypothesis import strategies as st

from tally.crypto import StateCommitment
from tally.model import AssetCode, CoinId, encode
from tally.rules import (
    Supply,
    coin_element,
    commitment_from_scratch,
    governance_from_genesis,
    supply_element,
)

from .helpers import ALICE, MEMBER, coin, make_genesis, pub


def test_coin_element_is_tagged_id_then_canonical_bytes():
    cid = CoinId(bytes([7]) * 32)
    data = encode(coin("CNY", 5, ALICE))
    assert coin_element(cid, data) == b"C" + cid + data


def test_supply_element_encodes_asset_issued_and_redeemed():
    element = supply_element(AssetCode("CNY"), Supply(issued=9, redeemed=4))
    assert element == b"S" + encode(("CNY", 9, 4))
    assert element != supply_element(AssetCode("CNY"), Supply(issued=9, redeemed=5))


def test_supply_outstanding_is_issued_minus_redeemed():
    assert Supply(issued=9, redeemed=4).outstanding == 5


def test_commitment_from_scratch_of_nothing_is_the_empty_commitment():
    assert commitment_from_scratch([], []) == StateCommitment()


@given(
    coins=st.dictionaries(st.binary(min_size=32, max_size=32), st.integers(1, 10**6), max_size=8),
    supplies=st.dictionaries(st.sampled_from(["CNY", "USD", "EUR"]), st.integers(0, 10**6)),
)
def test_commitment_from_scratch_ignores_order(coins, supplies):
    coin_rows = [(CoinId(cid), encode(coin("CNY", amount, ALICE))) for cid, amount in coins.items()]
    supply_rows = [(AssetCode(a), Supply(issued=n, redeemed=0)) for a, n in supplies.items()]
    forward = commitment_from_scratch(coin_rows, supply_rows)
    backward = commitment_from_scratch(coin_rows[::-1], supply_rows[::-1])
    assert forward == backward


def test_governance_from_genesis_copies_admins_members_and_params():
    genesis = make_genesis(admin_threshold=3)
    governance = governance_from_genesis(genesis)
    assert governance.admins == genesis.admins
    assert governance.admin_threshold == 3
    assert governance.members[0].key == pub(MEMBER)
    assert governance.params == genesis.params
