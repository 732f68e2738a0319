"""Offline verification of trust chains and payments, and every tampering refused with its code."""

from __future__ import annotations

import msgspec
import pytest

from tally.model import (
    Coin,
    Height,
    Receipt,
    SignedTx,
    Transfer,
    block_hash,
    coin_id,
    encode,
    tx_id,
)
from tally.model.lock import KeyLock, OfflineLock
from tally.model.tx import Signature, Witness, sighash
from tally.rules.block import tx_inclusion_proof, tx_root
from tally.rules.certificate import sign_certificate
from tally.rules.errors import InclusionProofError
from tally.wallet.offline.chain import merge_chains, prune_chain, verify_chain, verify_payment
from tally.wallet.offline.errors import (
    OfflineAmountError,
    OfflineCertificateError,
    OfflineChainError,
    OfflineExpiredError,
    OfflineFeatureError,
    OfflineLimitError,
    OfflineLockError,
    OfflineNetworkError,
    OfflinePayeeError,
    OfflinePayerBarredError,
    OfflineReplayError,
    OfflineRootError,
    OfflineSignatureError,
    OfflineVersionError,
)
from tally.wallet.offline.limits import OfflineLimits
from tally.wallet.offline.messages import (
    MAGIC,
    TrustChain,
    decode_message,
    decode_payment,
    encode_message,
)
from tally.wallet.offline.purse import OfflineCoin
from tests.rules.helpers import ALICE, BOB, CAROL, DAVE, MALLORY, MEMBER, key, pub

from .chains import (
    GENESIS,
    ROOT_HEIGHT,
    UNLOCK,
    hello,
    issue_offline,
    outputs_of,
    pay,
    purse,
    roots_in_block,
)

MERCHANT, SUPPLIER = BOB, CAROL
LIMITS = OfflineLimits(max_payment=10_000, max_unsettled=50_000, max_hops=4, expiry_margin=20)


def check(paid, *, limits=LIMITS, known_height=ROOT_HEIGHT, unsettled=0, barred=(), hello_=None):
    return verify_payment(
        paid.payment,
        hello_ or paid.payee_hello,
        GENESIS,
        limits,
        known_height=known_height,
        unsettled=unsettled,
        barred=barred,
    )


def refused(error_type, paid, **kwargs):
    with pytest.raises(error_type) as info:
        check(paid, **kwargs)
    assert type(info.value) is error_type
    return info.value


def with_chain(paid, *, roots=None, hops=None):
    chain = paid.payment.chain
    new_chain = TrustChain(
        roots=tuple(roots) if roots is not None else chain.roots,
        hops=tuple(hops) if hops is not None else chain.hops,
    )
    paid.payment = msgspec.structs.replace(paid.payment, chain=new_chain)
    return paid


def resign(tx: SignedTx, signer) -> SignedTx:
    msg = sighash(GENESIS.chain_id, tx_id(tx.body))
    return SignedTx(
        body=tx.body,
        witnesses=tuple(
            Witness(signatures=(Signature(signer=0, sig=signer.sign(msg)),)) for _ in tx.witnesses
        ),
    )


@pytest.fixture
def first_hop():
    """Alice pays the merchant 35.20 out of a 50.00 purse coin."""
    [coin] = purse(ALICE, [5000])
    return pay([coin], ALICE, MERCHANT, 3520)


@pytest.fixture
def second_hop(first_hop):
    """The merchant pays 20.00 of it on to the supplier."""
    return pay([first_hop.received], MERCHANT, SUPPLIER, 2000)


def test_a_split_payment_verifies_offline_and_gives_the_payee_its_coin(first_hop):
    received = check(first_hop)
    assert (received.asset, received.amount) == ("CNY", 3520)
    assert received.coin == Coin(
        asset="CNY",
        amount=3520,
        lock=OfflineLock(owner=pub(MERCHANT), unlock_height=Height(UNLOCK)),
    )
    assert received.payer == pub(ALICE)
    assert received.deadline == UNLOCK
    hop = first_hop.payment.chain.hops[0].body
    assert [o.amount for o in hop.outputs] == [3520, 1480]
    assert hop.outputs[1].lock == OfflineLock(owner=pub(ALICE), unlock_height=Height(UNLOCK))


def test_a_second_hop_verifies_and_the_chain_shows_both_hops(second_hop):
    received = check(second_hop)
    assert received.amount == 2000
    assert len(second_hop.payment.chain.hops) == 2
    assert len(second_hop.payment.chain.roots) == 1
    verified = verify_chain(second_hop.payment.chain, GENESIS)
    assert sorted(c.amount for c in verified.unspent.values()) == [1480, 1520, 2000]
    assert verified.owners == {pub(ALICE), pub(MERCHANT)}


def test_a_payment_from_two_purse_coins_of_different_roots_verifies():
    coins = purse(ALICE, [1000]) + purse(ALICE, [700])
    paid = pay(coins, ALICE, MERCHANT, 1500)
    assert len(paid.payment.chain.roots) == 2
    assert check(paid).amount == 1500


# -- tampering, each with its own code ---------------------------------------------------------


def test_a_forged_certificate_is_refused(first_hop):
    [root] = first_hop.payment.chain.roots
    forged = sign_certificate(
        GENESIS.chain_id,
        root.header.height,
        root.certificate.block_hash,
        0,
        [(0, key(MALLORY))],
    )
    with_chain(first_hop, roots=[msgspec.structs.replace(root, certificate=forged)])
    assert refused(OfflineCertificateError, first_hop).code == "offline.certificate"


def test_a_certificate_without_a_quorum_is_refused(first_hop):
    [root] = first_hop.payment.chain.roots
    empty = msgspec.structs.replace(root.certificate, signatures=())
    with_chain(first_hop, roots=[msgspec.structs.replace(root, certificate=empty)])
    refused(OfflineCertificateError, first_hop)


def test_a_wrong_inclusion_proof_is_refused():
    fund = issue_offline(ALICE, [5000])
    other = issue_offline(DAVE, [10])
    root, _ = roots_in_block([fund, other])
    # The payment starts from a root in a two-transaction block; then its proof is broken.
    offline = OfflineCoin(
        coin_id=coin_id(tx_id(fund.body), 0),
        coin=outputs_of(fund)[0],
        key_index=ALICE,
        chain=TrustChain(roots=(root,), hops=()),
    )
    paid = pay([offline], ALICE, MERCHANT, 3520)
    assert check(paid).amount == 3520
    sibling = bytes(32)
    bad_proof = msgspec.structs.replace(root.proof, siblings=(sibling,))
    with_chain(paid, roots=[msgspec.structs.replace(root, proof=bad_proof)])
    assert refused(InclusionProofError, paid).code == "offline.inclusion"


def test_a_root_proved_at_the_wrong_position_is_refused(first_hop):
    [root] = first_hop.payment.chain.roots
    with_chain(first_hop, roots=[msgspec.structs.replace(root, index=1)])
    refused(InclusionProofError, first_hop)


def test_a_hop_signed_by_the_wrong_key_is_refused(first_hop):
    [hop] = first_hop.payment.chain.hops
    with_chain(first_hop, hops=[resign(hop, key(MALLORY))])
    error = refused(OfflineSignatureError, first_hop)
    assert error.code == "offline.signature"
    assert error.detail["owner"] == pub(ALICE).hex()


def test_an_amount_changed_after_signing_is_refused(first_hop):
    [hop] = first_hop.payment.chain.hops
    body = hop.body
    assert isinstance(body, Transfer)
    raised = msgspec.structs.replace(body.outputs[0], amount=4520)
    tampered = SignedTx(
        body=msgspec.structs.replace(body, outputs=(raised, body.outputs[1])),
        witnesses=hop.witnesses,
    )
    with_chain(first_hop, hops=[tampered])
    first_hop.payment = msgspec.structs.replace(first_hop.payment, amount=4520)
    assert refused(OfflineAmountError, first_hop).code == "offline.amount"


def test_a_payment_amount_that_differs_from_the_hop_is_refused(first_hop):
    first_hop.payment = msgspec.structs.replace(first_hop.payment, amount=3000)
    refused(OfflineAmountError, first_hop)


def test_a_balanced_change_of_amounts_after_signing_breaks_the_signature(first_hop):
    [hop] = first_hop.payment.chain.hops
    body = hop.body
    assert isinstance(body, Transfer)
    moved = (
        msgspec.structs.replace(body.outputs[0], amount=4000),
        msgspec.structs.replace(body.outputs[1], amount=1000),
    )
    tampered = SignedTx(body=msgspec.structs.replace(body, outputs=moved), witnesses=hop.witnesses)
    with_chain(first_hop, hops=[tampered])
    first_hop.payment = msgspec.structs.replace(first_hop.payment, amount=4000)
    refused(OfflineSignatureError, first_hop)


def test_a_payment_replayed_to_a_third_device_is_refused(first_hop):
    third = hello("payee", owner=MERCHANT)  # even with the merchant's own key
    error = refused(OfflineReplayError, first_hop, hello_=third)
    assert error.code == "offline.replay"


def test_a_payment_rebound_to_a_third_device_without_the_payers_key_is_refused(first_hop):
    third = hello("payee", owner=MERCHANT)
    first_hop.payment = msgspec.structs.replace(first_hop.payment, payee_nonce=third.nonce)
    refused(OfflineReplayError, first_hop, hello_=third)


def test_an_expired_lock_is_refused():
    [coin] = purse(ALICE, [5000], unlock=ROOT_HEIGHT + 10)
    paid = pay([coin], ALICE, MERCHANT, 3520)
    error = refused(OfflineExpiredError, paid)
    assert error.code == "offline.expired"
    assert error.detail["deadline"] == ROOT_HEIGHT + 10
    # The same chain is fine for a device content with a smaller margin.
    assert check(paid, limits=msgspec.structs.replace(LIMITS, expiry_margin=5)).amount == 3520
    # A device that has seen a later height refuses it even so.
    refused(
        OfflineExpiredError,
        paid,
        limits=msgspec.structs.replace(LIMITS, expiry_margin=5),
        known_height=ROOT_HEIGHT + 6,
    )


def test_a_chain_over_the_hop_limit_is_refused(second_hop):
    error = refused(
        OfflineLimitError, second_hop, limits=msgspec.structs.replace(LIMITS, max_hops=1)
    )
    assert error.code == "offline.limit"
    assert error.detail["which"] == "max_hops"


def test_amounts_over_the_limits_are_refused(first_hop):
    small = msgspec.structs.replace(LIMITS, max_payment=3000)
    assert refused(OfflineLimitError, first_hop, limits=small).detail["which"] == "max_payment"
    full = refused(OfflineLimitError, first_hop, unsettled=LIMITS.max_unsettled - 100)
    assert full.detail["which"] == "max_unsettled"


def test_an_unknown_protocol_version_is_refused(first_hop):
    raw = encode_message(first_hop.payment)
    assert decode_payment(raw) == first_hop.payment
    _, _, message = msgspec.msgpack.decode(raw, type=tuple[str, int, msgspec.Raw])
    future = encode((MAGIC, 99, msgspec.msgpack.decode(message)))
    with pytest.raises(OfflineVersionError) as info:
        decode_message(future)
    assert info.value.code == "offline.version"
    first_hop.payment = msgspec.structs.replace(first_hop.payment, version=2)
    refused(OfflineVersionError, first_hop)


# -- other refusals -----------------------------------------------------------------------------


def test_a_root_of_another_network_is_refused(first_hop):
    [root] = roots_in_block([first_hop.payment.chain.roots[0].tx], chain_id="other-chain")
    with_chain(first_hop, roots=[root])
    refused(OfflineNetworkError, first_hop)


def test_a_rejected_root_is_refused(first_hop):
    [root] = first_hop.payment.chain.roots
    receipt = Receipt(code="input.spent")
    txid = tx_id(root.tx.body)
    header = msgspec.structs.replace(root.header, tx_root=tx_root([txid], [receipt]))
    certificate = sign_certificate(
        GENESIS.chain_id, header.height, block_hash(header), 0, [(0, key(MEMBER))]
    )
    bad = msgspec.structs.replace(
        root,
        receipt=receipt,
        header=header,
        certificate=certificate,
        proof=tx_inclusion_proof([txid], [receipt], 0),
    )
    with_chain(first_hop, roots=[bad])
    assert refused(OfflineRootError, first_hop).code == "offline.root"


def test_a_hop_spending_a_coin_the_chain_does_not_create_is_refused(second_hop):
    chain = second_hop.payment.chain
    with_chain(second_hop, hops=chain.hops[1:])
    refused(OfflineChainError, second_hop)


def test_a_hop_into_an_ordinary_lock_is_refused(first_hop):
    [hop] = first_hop.payment.chain.hops
    body = hop.body
    assert isinstance(body, Transfer)
    plain = msgspec.structs.replace(body.outputs[1], lock=KeyLock(key=pub(ALICE)))
    new_body = msgspec.structs.replace(body, outputs=(body.outputs[0], plain))
    signed = resign(SignedTx(body=new_body, witnesses=hop.witnesses), key(ALICE))
    with_chain(first_hop, hops=[signed])
    assert refused(OfflineLockError, first_hop).code == "offline.lock"


def test_a_hop_that_unlocks_earlier_than_its_input_is_refused(first_hop):
    [hop] = first_hop.payment.chain.hops
    body = hop.body
    assert isinstance(body, Transfer)
    early = msgspec.structs.replace(
        body.outputs[1], lock=OfflineLock(owner=pub(ALICE), unlock_height=Height(UNLOCK - 1))
    )
    new_body = msgspec.structs.replace(body, outputs=(body.outputs[0], early))
    with_chain(
        first_hop, hops=[resign(SignedTx(body=new_body, witnesses=hop.witnesses), key(ALICE))]
    )
    refused(OfflineLockError, first_hop)


def test_features_not_agreed_are_refused():
    [coin] = purse(ALICE, [5000])
    no_split = pay(
        [coin], ALICE, MERCHANT, 3520, payee_hello=hello("payee", owner=MERCHANT, split=False)
    )
    assert refused(OfflineFeatureError, no_split).code == "offline.feature"
    [coin] = purse(ALICE, [5000])
    first = pay([coin], ALICE, MERCHANT, 3520)
    single = hello("payee", owner=SUPPLIER, multi_hop=False)
    onward = pay([first.received], MERCHANT, SUPPLIER, 2000, payee_hello=single)
    refused(OfflineFeatureError, onward)


def test_a_payment_that_does_not_pay_the_payees_key_is_refused(first_hop):
    [hop] = first_hop.payment.chain.hops
    body = hop.body
    assert isinstance(body, Transfer)
    elsewhere = msgspec.structs.replace(
        body.outputs[0], lock=OfflineLock(owner=pub(DAVE), unlock_height=Height(UNLOCK))
    )
    new_body = msgspec.structs.replace(body, outputs=(elsewhere, body.outputs[1]))
    with_chain(
        first_hop, hops=[resign(SignedTx(body=new_body, witnesses=hop.witnesses), key(ALICE))]
    )
    assert refused(OfflinePayeeError, first_hop).code == "offline.payee"


def test_a_chain_by_a_barred_payer_is_refused(second_hop):
    error = refused(OfflinePayerBarredError, second_hop, barred=[pub(ALICE)])
    assert error.code == "offline.payer_barred"


def test_a_chain_that_spends_one_coin_twice_is_refused():
    [coin] = purse(ALICE, [5000])
    one = pay([coin], ALICE, MERCHANT, 1000)
    two = pay([coin], ALICE, SUPPLIER, 2000)
    merged = merge_chains([one.payment.chain, two.payment.chain])
    with pytest.raises(OfflineChainError):
        verify_chain(merged, GENESIS)


def test_prune_keeps_only_what_leads_to_a_coin(second_hop, first_hop):
    chain = second_hop.payment.chain
    change_of_first = first_hop.change
    assert change_of_first is not None
    pruned = prune_chain(chain, [change_of_first.coin_id])
    assert pruned.hops == chain.hops[:1]
    assert pruned.roots == chain.roots
    assert prune_chain(chain, []) == TrustChain(roots=(), hops=())


def test_a_hop_with_a_witness_for_each_input_but_a_missing_one_is_refused(first_hop):
    [hop] = first_hop.payment.chain.hops
    with_chain(first_hop, hops=[SignedTx(body=hop.body, witnesses=())])
    refused(OfflineSignatureError, first_hop)


def test_a_chain_whose_hop_is_not_a_transfer_is_refused(first_hop):
    [root] = first_hop.payment.chain.roots
    with_chain(first_hop, hops=[root.tx])
    refused(OfflineChainError, first_hop)
    assert isinstance(root.tx.body, Transfer) is False
