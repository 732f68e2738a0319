"""The operator service: customers, deposit accounts, loads and unloads, hosted wallets, float.

An operator (a bank or payment institution) holds a float of coins under its float key and
keeps a deposit account per customer in its own book. A **load** moves money from a
customer's deposit to the customer's wallet (coins from the float); an **unload** moves the
customer's coins back to the float and credits the deposit. Customers without a device get a
**hosted** wallet whose key the operator derives and holds. Every state-changing call takes an
idempotency key and is written to a journal before anything reaches the ledger, so that a
crash at any moment followed by a restart and a retry moves money exactly once.

Run it with `python -m tally.services.operator DIR` over a directory made by
`init_operator_dir`; talk to it with `OperatorClient`.
"""

from tally.services.operator.client import OperatorClient
from tally.services.operator.config import (
    OperatorConfig,
    OperatorConfigError,
    OperatorIdentity,
    init_operator_dir,
    load_config,
)

__all__ = [
    "OperatorClient",
    "OperatorConfig",
    "OperatorConfigError",
    "OperatorIdentity",
    "init_operator_dir",
    "load_config",
]
