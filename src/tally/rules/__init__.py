"""The state transition: pure validation and application of transactions and blocks."""

from tally.rules.apply import ZERO_SUPPLY, BlockOutcome, apply_block, validate_tx
from tally.rules.block import (
    BlockMismatchError,
    build_header,
    execute_block,
    tx_inclusion_proof,
    tx_leaf,
    tx_root,
)
from tally.rules.certificate import (
    CertificateError,
    check_certificate,
    commit_message,
    quorum_size,
    sign_certificate,
)
from tally.rules.errors import *  # noqa: F403 - the rule errors are part of the public API
from tally.rules.errors import __all__ as _error_names
from tally.rules.locks import Verifier, check_offline_spend, check_spend, is_offline_hop
from tally.rules.offline import TxInclusionProof, verify_double_spend_proof, verify_tx_inclusion
from tally.rules.state import (
    BlockContext,
    DoubleSpend,
    Governance,
    StateDelta,
    StateView,
    Supply,
    barred_element,
    coin_element,
    commitment_from_scratch,
    governance_from_genesis,
    supply_element,
)
from tally.rules.stateless import MAX_MULTISIG_KEYS, check_tx, check_window

__all__ = [
    "apply_block",
    "validate_tx",
    "execute_block",
    "build_header",
    "tx_root",
    "tx_leaf",
    "tx_inclusion_proof",
    "BlockOutcome",
    "check_certificate",
    "commit_message",
    "sign_certificate",
    "quorum_size",
    "CertificateError",
    "BlockMismatchError",
    "Verifier",
    "check_spend",
    "check_offline_spend",
    "is_offline_hop",
    "verify_tx_inclusion",
    "verify_double_spend_proof",
    "TxInclusionProof",
    "check_tx",
    "check_window",
    "MAX_MULTISIG_KEYS",
    "BlockContext",
    "DoubleSpend",
    "Governance",
    "StateDelta",
    "StateView",
    "Supply",
    "ZERO_SUPPLY",
    "coin_element",
    "supply_element",
    "barred_element",
    "commitment_from_scratch",
    "governance_from_genesis",
    *_error_names,
]
