"""Random offline payment graphs, settled in random orders against the ledger's rules.

Four devices start from purse coins issued in one block. Hypothesis draws a program of
offline payments: splits, onward payments of money received offline (multi-hop chains), and
cheats, where a device pays a coin it has already paid away (a double spend). Every payee
checks its payment offline, as a device does. Then each payment is settled by its payer and
by its payee, in a random order, hop by hop and idempotently (a hop settled before is
answered with its first result, as the node does), against the pure rules of a `Ledger`.

Whatever the order: the supply is conserved, no coin is spent twice, of two hops that spend
one coin at most one is applied, and every hop recorded as a double spend yields a
`DoubleSpendProof` that verifies from the two transactions alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import event, given, settings
from hypothesis import strategies as st

from tally.model import AssetCode, Coin, Receipt, SignedTx, Transfer, block_hash, coin_id, tx_id
from tally.model.offline import DoubleSpendProof
from tally.model.types import CoinId, TxId
from tally.rules.block import tx_inclusion_proof
from tally.rules.certificate import sign_certificate
from tally.rules.offline import verify_double_spend_proof
from tally.wallet.offline.chain import verify_payment
from tally.wallet.offline.limits import OfflineLimits
from tally.wallet.offline.messages import OfflinePayment, RootProof, TrustChain
from tally.wallet.offline.purse import OfflineCoin
from tests.rules.helpers import ALICE, BOB, CAROL, CHAIN_ID, DAVE, MEMBER, Ledger, key, make_issue

from .chains import offline_coin_lock, outputs_of, pay

DEVICES = (ALICE, BOB, CAROL, DAVE)
UNLOCK = 900
LIMITS = OfflineLimits(max_payment=10**9, max_unsettled=10**12, max_hops=64, expiry_margin=0)
DOUBLE_SPEND = "offline.double_spend"


@dataclass
class Device:
    index: int
    coins: list[OfflineCoin] = field(default_factory=list)
    """Coins it may pay honestly."""
    spent: list[OfflineCoin] = field(default_factory=list)
    """Coins it has paid away; a cheat pays one of them again."""


def start(ledger: Ledger) -> dict[int, Device]:
    """Purse coins for every device, issued in one block, with their root proofs."""
    amounts = [5000, 3000]
    tx = make_issue(
        "CNY",
        [c for d in DEVICES for c in _purse_outputs(d, amounts)],
        nonce=ledger.next_nonce(),
    )
    committed = ledger.commit(tx)
    assert committed.codes == ["ok"]
    header = committed.block.header
    certificate = sign_certificate(
        CHAIN_ID, header.height, block_hash(header), 0, [(0, key(MEMBER))]
    )
    root = RootProof(
        tx=tx,
        index=0,
        receipt=Receipt(code="ok"),
        proof=tx_inclusion_proof(committed.txids, committed.block.receipts, 0),
        header=header,
        certificate=certificate,
    )
    chain = TrustChain(roots=(root,), hops=())
    txid = tx_id(tx.body)
    devices = {d: Device(d) for d in DEVICES}
    for position, output in enumerate(outputs_of(tx)):
        owner = DEVICES[position // len(amounts)]
        devices[owner].coins.append(
            OfflineCoin(coin_id=coin_id(txid, position), coin=output, key_index=owner, chain=chain)
        )
    return devices


def _purse_outputs(owner: int, amounts: list[int]) -> list[Coin]:
    return [
        Coin(asset=AssetCode("CNY"), amount=a, lock=offline_coin_lock(owner, UNLOCK))
        for a in amounts
    ]


@dataclass
class Settled:
    results: dict[TxId, str] = field(default_factory=dict)
    """The first result of every hop submitted."""
    txs: dict[TxId, SignedTx] = field(default_factory=dict)


def settle(ledger: Ledger, payment: OfflinePayment, settled: Settled) -> None:
    """Submit a chain hop by hop; a hop settled before gives its first result."""
    for hop in payment.chain.hops:
        txid = tx_id(hop.body)
        settled.txs[txid] = hop
        code = settled.results.get(txid)
        if code is None:
            code = settled.results[txid] = ledger.commit(hop).codes[0]
        if code != "ok":
            return


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_offline_graphs_settle_safely_in_any_order(data):
    ledger = Ledger()
    devices = start(ledger)
    issued = ledger.balance("CNY")
    payments: list[tuple[OfflinePayment, int, int]] = []
    for _ in range(data.draw(st.integers(min_value=1, max_value=14), label="payments")):
        payer = devices[data.draw(st.sampled_from(DEVICES), label="payer")]
        cheat = bool(payer.spent) and data.draw(st.booleans(), label="cheat")
        pool = payer.spent if cheat else payer.coins
        if not pool:
            continue
        coin = data.draw(st.sampled_from(pool), label="coin")
        payee = devices[data.draw(st.sampled_from([d for d in DEVICES if d != payer.index]))]
        amount = data.draw(st.integers(min_value=1, max_value=coin.coin.amount), label="amount")
        paid = pay([coin], payer.index, payee.index, amount)
        # The payee checks the chain offline: even a double spend looks good alone.
        received = verify_payment(
            paid.payment, paid.payee_hello, ledger.genesis, LIMITS, known_height=1, unsettled=0
        )
        assert received.amount == amount
        if not cheat:
            payer.coins.remove(coin)
            payer.spent.append(coin)
            if paid.change is not None:
                payer.coins.append(paid.change)
        payee.coins.append(paid.received)
        payments.append((paid.payment, payer.index, payee.index))

    events = [(number, holder) for number, (_, a, b) in enumerate(payments) for holder in (a, b)]
    settled = Settled()
    for number, _holder in data.draw(st.permutations(events), label="settlement order"):
        settle(ledger, payments[number][0], settled)

    # Conservation: the unspent coins add up to what was issued.
    assert ledger.balance("CNY") == issued
    assert ledger.view.supplies[AssetCode("CNY")].outstanding == issued
    # No coin is spent twice; of hops that share an input at most one is applied.
    applied = [txid for txid, code in settled.results.items() if code == "ok"]
    inputs: list[CoinId] = []
    for txid in applied:
        body = settled.txs[txid].body
        assert isinstance(body, Transfer)
        inputs.extend(body.inputs)
    assert len(inputs) == len(set(inputs))
    for cid in inputs:
        assert cid not in ledger.view.coins
    # Every double spend yields a proof a third party verifies from the two transfers.
    recorded = {record.second: record for record in ledger.view.double_spends}
    event(f"double spends recorded: {min(len(recorded), 3)}{'+' if len(recorded) >= 3 else ''}")
    event(f"longest chain: {max((len(p.chain.hops) for p, _, _ in payments), default=0)}")
    for txid, code in settled.results.items():
        if code != DOUBLE_SPEND:
            continue
        record = recorded[txid]
        assert record.first in applied
        proof = DoubleSpendProof(
            chain_id=CHAIN_ID,
            coin_id=record.coin_id,
            owner=record.owner,
            first=settled.txs[record.first],
            second=settled.txs[txid],
        )
        verify_double_spend_proof(proof)
        assert record.owner in ledger.view.barred
