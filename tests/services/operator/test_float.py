"""How the operator takes its issuer's answers: what is final and what is worth a retry."""

from __future__ import annotations

import pytest

from tally.services.common.client import ServiceCallError
from tally.services.operator.float import issuer_call_error


@pytest.mark.parametrize(
    ("status", "code", "permanent"),
    [
        (0, "service.unreachable", False),  # no answer: try again
        (429, "mempool.full", False),
        (502, "service.upstream", False),  # the issuer's node is down
        (500, "service.internal", False),
        # The ledger refused the issuance and the issuer released the reserve: asking again
        # with the same key answers the same, forever, so the journal row must fail now.
        (502, "issuance.failed", True),
        (409, "idempotency.conflict", True),
        (422, "funds.insufficient", True),
        (403, "auth.forbidden", True),
    ],
)
def test_an_issuer_refusal_is_final_unless_it_may_pass(
    status: int, code: str, permanent: bool
) -> None:
    error = issuer_call_error(ServiceCallError(status, code, "refused", {}), "an issuance")
    assert (error.permanent, error.code) == (permanent, code)
    assert f"{status} to an issuance: {code}" in str(error)
