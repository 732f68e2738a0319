"""The node process: mempool, execution pipeline, HTTP API, metrics and configuration."""

from tally.node.core import BlockProposal, GenesisMismatchError, Node
from tally.node.mempool import Mempool, TxResult

__all__ = ["Node", "BlockProposal", "GenesisMismatchError", "Mempool", "TxResult"]
