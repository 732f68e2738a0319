"""The state transition: pure validation and application of transactions and blocks."""

from tally.rules.apply import ZERO_SUPPLY, BlockOutcome, apply_block, validate_tx
from tally.rules.block import BlockMismatchError, build_header, execute_block, tx_root
from tally.rules.certificate import (
    CertificateError,
    check_certificate,
    commit_message,
    quorum_size,
    sign_certificate,
)
from tally.rules.errors import *  # noqa: F403 - the rule errors are part of the public API
from tally.rules.errors import __all__ as _error_names
from tally.rules.locks import Verifier, check_spend
from tally.rules.state import (
    BlockContext,
    Governance,
    StateDelta,
    StateView,
    Supply,
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
    "BlockOutcome",
    "check_certificate",
    "commit_message",
    "sign_certificate",
    "quorum_size",
    "CertificateError",
    "BlockMismatchError",
    "Verifier",
    "check_spend",
    "check_tx",
    "check_window",
    "MAX_MULTISIG_KEYS",
    "BlockContext",
    "Governance",
    "StateDelta",
    "StateView",
    "Supply",
    "ZERO_SUPPLY",
    "coin_element",
    "supply_element",
    "commitment_from_scratch",
    "governance_from_genesis",
    *_error_names,
]
