"""Python SDK for the node API: transaction builders and blocking and asyncio clients."""

from tally.client.builders import (
    BuilderError,
    IssueOutput,
    LockLike,
    Signers,
    TransferOutput,
    make_escrow_capture,
    make_escrow_reclaim,
    make_govern,
    make_issue,
    make_redeem,
    make_transfer,
    sign_inputs,
    to_lock,
)
from tally.client.errors import NodeError, NodeRejection, NodeResponseError, NodeUnreachable
from tally.client.node_client import DEFAULT_TIMEOUT, AsyncNodeClient, NodeClient
from tally.client.wire import WireError, coin_from_json, coins_from_json, lock_from_json

__all__ = [
    # builders
    "make_issue",
    "make_transfer",
    "make_redeem",
    "make_govern",
    "make_escrow_capture",
    "make_escrow_reclaim",
    "sign_inputs",
    "to_lock",
    "BuilderError",
    "LockLike",
    "Signers",
    "IssueOutput",
    "TransferOutput",
    # clients
    "NodeClient",
    "AsyncNodeClient",
    "DEFAULT_TIMEOUT",
    # errors
    "NodeError",
    "NodeRejection",
    "NodeUnreachable",
    "NodeResponseError",
    # wire views
    "coin_from_json",
    "coins_from_json",
    "lock_from_json",
    "WireError",
]
