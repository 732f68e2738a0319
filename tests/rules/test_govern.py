import pytest

from tally.model import (
    AddMember,
    AssetCode,
    Member,
    Params,
    RegisterAsset,
    RevokeMember,
    SetParams,
)
from tally.rules import (
    GovernThresholdError,
    InvalidParamsError,
    InvalidSignatureError,
    LastMemberError,
    MemberExistsError,
    MemberUnknownError,
    SignerIndexError,
    TooManyInputsError,
    UnauthorizedIssuerError,
)

from .helpers import (
    ADMINS,
    ALICE,
    BOB,
    CNY,
    CNY_ISSUER,
    MALLORY,
    MEMBER,
    Ledger,
    coin,
    expect_rejection,
    key,
    make_genesis,
    make_govern,
    make_issue,
    make_transfer,
    owner,
    pub,
    sign,
)

EUR = AssetCode("EUR")
EUR_ISSUER = 12


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def test_register_asset_lets_its_issuer_issue(ledger):
    register = make_govern(RegisterAsset(asset=EUR, issuer=pub(EUR_ISSUER)))
    block = ledger.commit(register)
    assert block.codes == ["ok"]
    assert block.outcome.delta.issuers == {EUR: pub(EUR_ISSUER)}
    assert ledger.view.issuers[EUR] == pub(EUR_ISSUER)
    issue = make_issue("EUR", [coin("EUR", 5, ALICE)], issuer=EUR_ISSUER)
    assert ledger.commit(issue).codes == ["ok"]
    assert ledger.balance("EUR") == 5


def test_register_asset_takes_effect_for_later_transactions_of_the_same_block(ledger):
    register = make_govern(RegisterAsset(asset=EUR, issuer=pub(EUR_ISSUER)))
    issue = make_issue("EUR", [coin("EUR", 5, ALICE)], issuer=EUR_ISSUER)
    assert ledger.commit(register, issue).codes == ["ok", "ok"]


def test_register_asset_again_replaces_the_issuer_key(ledger):
    rekey = make_govern(RegisterAsset(asset=CNY, issuer=pub(EUR_ISSUER)))
    assert ledger.commit(rekey).codes == ["ok"]
    old = make_issue("CNY", [coin("CNY", 5, ALICE)])
    error = expect_rejection(ledger, old, UnauthorizedIssuerError)
    assert error.detail == {"asset": "CNY", "key": pub(CNY_ISSUER).hex()}
    new = make_issue("CNY", [coin("CNY", 5, ALICE)], issuer=EUR_ISSUER)
    assert ledger.commit(new).codes == ["ok"]


def test_add_member_appends_to_the_members(ledger):
    tx = make_govern(AddMember(name="member-1", key=pub(21)))
    block = ledger.commit(tx)
    assert block.codes == ["ok"]
    members = ledger.view.governance().members
    assert members == (
        Member(name="member-0", key=pub(MEMBER)),
        Member(name="member-1", key=pub(21)),
    )
    assert block.outcome.delta.governance is not None
    assert block.outcome.delta.governance.members == members


@pytest.mark.parametrize(
    "action",
    [AddMember(name="member-0", key=pub(21)), AddMember(name="other", key=pub(MEMBER))],
    ids=["same-name", "same-key"],
)
def test_add_member_rejects_existing_name_or_key(ledger, action):
    error = expect_rejection(ledger, make_govern(action), MemberExistsError)
    assert error.code == "govern.member_exists"
    assert error.detail == {"name": action.name}


def test_add_member_rejects_a_member_added_earlier_in_the_same_block(ledger):
    first = make_govern(AddMember(name="member-1", key=pub(21)), nonce=1)
    second = make_govern(AddMember(name="member-1", key=pub(22)), nonce=2)
    assert ledger.commit(first, second).codes == ["ok", MemberExistsError.code]
    assert [m.name for m in ledger.view.governance().members] == ["member-0", "member-1"]


def test_revoke_member_removes_it(ledger):
    ledger.commit(make_govern(AddMember(name="member-1", key=pub(21))))
    tx = make_govern(RevokeMember(key=pub(MEMBER)))
    assert ledger.commit(tx).codes == ["ok"]
    assert ledger.view.governance().members == (Member(name="member-1", key=pub(21)),)


def test_revoke_member_rejects_unknown_key(ledger):
    error = expect_rejection(ledger, make_govern(RevokeMember(key=pub(21))), MemberUnknownError)
    assert error.code == "govern.member_unknown"


def test_revoke_member_rejects_the_last_member(ledger):
    error = expect_rejection(ledger, make_govern(RevokeMember(key=pub(MEMBER))), LastMemberError)
    assert error.code == "govern.last_member"
    assert ledger.view.governance().members == (Member(name="member-0", key=pub(MEMBER)),)


def test_set_params_replaces_the_parameters(ledger):
    new = Params(max_inputs=1, max_window=50)
    block = ledger.commit(make_govern(SetParams(params=new)))
    assert block.codes == ["ok"]
    assert ledger.view.governance().params == new


def test_set_params_applies_from_the_next_block_on(ledger):
    a, b = ledger.fund(ALICE, "CNY", 1, 1)
    set_params = make_govern(SetParams(params=Params(max_inputs=1)))
    merge = make_transfer([(a, owner(ALICE)), (b, owner(ALICE))], [coin("CNY", 2, ALICE)])
    assert ledger.commit(set_params, merge).codes == ["ok", "ok"]
    (c,) = [cid for cid in ledger.view.coins]
    (d,) = ledger.fund(ALICE, "CNY", 1)
    again = make_transfer([(c, owner(ALICE)), (d, owner(ALICE))], [coin("CNY", 3, ALICE)])
    error = expect_rejection(ledger, again, TooManyInputsError)
    assert error.detail == {"count": 2, "limit": 1}


@pytest.mark.parametrize(
    "params",
    [
        Params(max_tx_bytes=1023),
        Params(max_tx_bytes=2048, max_block_bytes=1024),
        Params(max_inputs=0),
        Params(max_inputs=1025),
        Params(max_outputs=0),
        Params(max_outputs=1025),
        Params(max_block_txs=0),
        Params(max_window=0),
        Params(block_interval_ms=0),
    ],
    ids=[
        "tx-bytes-small",
        "tx-over-block",
        "no-inputs",
        "inputs-huge",
        "no-outputs",
        "outputs-huge",
        "no-txs",
        "no-window",
        "no-interval",
    ],
)
def test_set_params_rejects_out_of_range_parameters(ledger, params):
    error = expect_rejection(ledger, make_govern(SetParams(params=params)), InvalidParamsError)
    assert error.code == "govern.params_invalid"
    assert error.detail == {"params": repr(params)}


def test_govern_rejects_fewer_admin_signatures_than_threshold(ledger):
    tx = make_govern(RegisterAsset(asset=EUR, issuer=pub(MALLORY)), admins=(1,))
    error = expect_rejection(ledger, tx, GovernThresholdError)
    assert error.code == "govern.threshold"
    assert error.detail == {"found": 1, "threshold": 2}


def test_govern_accepts_any_threshold_of_admins(ledger):
    for nonce, admins in enumerate([(0, 1), (0, 2), (1, 2), (0, 1, 2)]):
        tx = make_govern(RegisterAsset(asset=EUR, issuer=pub(nonce)), admins=admins, nonce=nonce)
        assert ledger.commit(tx).codes == ["ok"]


def test_govern_rejects_signer_index_beyond_the_admins(ledger):
    body = make_govern(RegisterAsset(asset=EUR, issuer=pub(MALLORY))).body
    tx = sign(body, [[(0, key(ADMINS[0])), (3, key(MALLORY))]])
    error = expect_rejection(ledger, tx, SignerIndexError)
    assert error.code == "witness.signer"
    assert error.detail == {"signer": 3}


def test_govern_rejects_signature_by_a_non_admin(ledger):
    body = make_govern(RegisterAsset(asset=EUR, issuer=pub(MALLORY))).body
    tx = sign(body, [[(0, key(ADMINS[0])), (1, key(MALLORY))]])
    error = expect_rejection(ledger, tx, InvalidSignatureError)
    assert error.code == "sig.invalid"
    assert error.detail == {"key": pub(ADMINS[1]).hex(), "signer": 1}


def test_govern_with_a_one_of_one_admin():
    ledger = Ledger(make_genesis(admins=(BOB,), admin_threshold=1))
    body = make_govern(RegisterAsset(asset=EUR, issuer=pub(EUR_ISSUER))).body
    assert ledger.commit(sign(body, [owner(BOB)])).codes == ["ok"]


def test_rejected_govern_changes_nothing(ledger):
    tx = make_govern(AddMember(name="member-1", key=pub(21)), admins=(2,))
    expect_rejection(ledger, tx, GovernThresholdError)
    block = ledger.commit(tx)
    assert block.outcome.delta.governance is None
    assert len(ledger.view.governance().members) == 1
