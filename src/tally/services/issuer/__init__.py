"""The issuer service: operators' reserve accounts, issuance against frozen reserve, audit.

A central bank runs it with the key registered for its asset in genesis. Operators (banks,
payment institutions) hold reserve accounts here; an issuance freezes reserve, signs a
freeze certificate and submits an `Issue` citing its hash; a committed `Redeem` releases the
reserve again. `GET /v1/audit` shows that the ledger's outstanding supply equals the frozen
reserves. See `api` for the endpoints, `client` for the typed client and the JSON documents,
`config` for `issuer.toml`, and `service` for the money flows.
"""

from tally.services.issuer.certificate import (
    FreezeCertificate,
    SignedFreezeCertificate,
    certificate_hash,
    check_certificate,
    decode_certificate,
    sign_certificate,
    verify_certificate,
)
from tally.services.issuer.client import IssuerClient
from tally.services.issuer.config import IssuerConfig, init_issuer_dir, load_issuer_config

__all__ = [
    "FreezeCertificate",
    "SignedFreezeCertificate",
    "certificate_hash",
    "check_certificate",
    "decode_certificate",
    "sign_certificate",
    "verify_certificate",
    "IssuerClient",
    "IssuerConfig",
    "init_issuer_dir",
    "load_issuer_config",
]
