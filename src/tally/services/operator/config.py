"""An operator's configuration: one `operator.toml` in the service directory, and its keys.

Paths are relative to the file; amounts are integers in minor units (1.00 = 100). The
customer tiers and their limits, and the float's low, target and high marks, are settings
here, not code:

    [operator]
    name = "operator-a"
    asset = "CNY"
    key_file = "keys/identity.key"        # signs requests to the issuer; its key is the
                                          # operator's Redeem account
    float_key_file = "keys/float.key"     # the float's coins are locked to this key
    hosted_seed_file = "keys/hosted.seed" # hosted wallets' keys derive from it
    database = "sqlite:///..."            # optional: operator.sqlite in this directory;
                                          # a relative SQLite file resolves against it
    node_url = "http://127.0.0.1:7545"
    issuer_url = "http://127.0.0.1:7600"
    tx_window = 100                       # blocks a transaction the operator signs stays valid

    [api]
    host = "127.0.0.1"
    port = 7610
    admin_token_hash = "..."              # sha256 of the admin bearer token

    [float]
    low = 10000000                        # below this, ask the issuer for target - float
    target = 50000000
    high = 100000000                      # above this, redeem float - target

    [tiers.1]
    balance_limit = 1000000               # 10,000.00
    payment_limit = 200000                # 2,000.00
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from tally.crypto.schnorr import PrivateKey
from tally.model.params import Params
from tally.model.types import MAX_AMOUNT, PublicKey
from tally.node.keyfile import new_key, write_key
from tally.services.common.auth import hash_token, new_token
from tally.services.common.config import (
    ConfigFile,
    ServiceConfig,
    ServiceConfigError,
    check_asset,
    resolve_database_url,
    toml_string,
    write_config_file,
)

__all__ = [
    "CONFIG_NAME",
    "DATABASE_FILE",
    "DEFAULT_TIERS",
    "DEFAULT_FLOAT_POLICY",
    "TierLimits",
    "FloatPolicy",
    "OperatorConfig",
    "OperatorConfigError",
    "OperatorIdentity",
    "load_config",
    "render_config",
    "init_operator_dir",
    "write_seed",
    "read_seed",
]

CONFIG_NAME = "operator.toml"
"""The configuration file's name inside the service directory."""
DATABASE_FILE = "operator.sqlite"
"""The database when none is configured: this SQLite file in the service directory."""
_DEFAULT_PORT = 7610
_DEFAULT_TX_WINDOW = 100
_MAX_WINDOW = Params().max_window
_SEED_KIND = "tally-seed"
_SEED_SIZE = 32


class OperatorConfigError(ServiceConfigError):
    """The configuration or a key file is missing or wrong; the message says which setting."""


@dataclass(frozen=True)
class TierLimits:
    """What a customer of one KYC tier may hold and pay."""

    balance_limit: int
    """Most the customer's wallet may hold after a load, in minor units."""
    payment_limit: int
    """Most one payment from a hosted wallet may be, in minor units."""
    offline_payment_limit: int = 50_000
    """Most one offline payment may be, in minor units; the customer's device enforces it."""
    offline_unsettled_limit: int = 200_000
    """Most a device may hold in offline payments not yet settled, each way, in minor units."""
    offline_hops: int = 2
    """Longest trust chain (hops) a device accepts offline."""


DEFAULT_TIERS: Mapping[int, TierLimits] = {
    1: TierLimits(balance_limit=1_000_000, payment_limit=200_000),
    2: TierLimits(
        balance_limit=10_000_000,
        payment_limit=2_000_000,
        offline_payment_limit=100_000,
        offline_unsettled_limit=500_000,
        offline_hops=4,
    ),
    3: TierLimits(
        balance_limit=100_000_000,
        payment_limit=20_000_000,
        offline_payment_limit=500_000,
        offline_unsettled_limit=2_000_000,
        offline_hops=8,
    ),
}
"""Tier 1: 10,000.00 / 2,000.00; tier 2: 100,000.00 / 20,000.00; tier 3: 1,000,000.00 /
200,000.00 (balance / payment). Offline, per device: tier 1 500.00 a payment, 2,000.00
unsettled, 2 hops; tier 2 1,000.00 / 5,000.00 / 4; tier 3 5,000.00 / 20,000.00 / 8."""


@dataclass(frozen=True)
class FloatPolicy:
    """When the operator tops its float up from the issuer, and when it redeems the excess."""

    low: int
    """Below this total, ask the issuer for `target - total`."""
    target: int
    """The total a rebalance aims at."""
    high: int
    """Above this total, redeem `total - target`."""


DEFAULT_FLOAT_POLICY = FloatPolicy(low=10_000_000, target=50_000_000, high=100_000_000)
"""100,000.00 / 500,000.00 / 1,000,000.00."""


@dataclass(frozen=True, kw_only=True)
class OperatorConfig(ServiceConfig):
    """Everything an operator service needs to start.

    `key_file` is the identity key: it signs requests to the issuer, and its public key is
    the operator's Redeem account.
    """

    directory: Path
    """The service directory (holds `operator.toml`, keys, logs, the default database)."""
    float_key_file: Path
    """The float key: the float's coins are locked to it."""
    hosted_seed_file: Path
    """The seed hosted wallets' keys derive from, one index per customer."""
    issuer_url: str
    """The issuer service's API."""
    api_port: int = _DEFAULT_PORT
    """Port of the API."""
    tx_window: int = _DEFAULT_TX_WINDOW
    """Blocks a transaction the operator signs stays valid for."""
    float_policy: FloatPolicy = DEFAULT_FLOAT_POLICY
    """The float's low, target and high marks."""
    tiers: Mapping[int, TierLimits] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    """Limits per KYC tier."""


class OperatorIdentity(NamedTuple):
    """What `init_operator_dir` hands back: shown once, needed to register the operator."""

    admin_token: str
    """The admin bearer token (only its hash is stored)."""
    identity_key: PublicKey
    """The operator's identity public key (the issuer knows the operator by it)."""
    float_key: PublicKey
    """The float's public key (issuance goes to it)."""


def _amount(value: object, where: str, *, zero: bool = False) -> int:
    lowest = 0 if zero else 1
    if type(value) is not int or not lowest <= value <= MAX_AMOUNT:
        raise OperatorConfigError(f"{where} must be an integer in {lowest} … {MAX_AMOUNT}")
    return value


_BARE_TIER = TierLimits(balance_limit=0, payment_limit=0)
"""Defaults of a tier beyond 3: the offline limits; the online limits must be set."""


def _tier(number: int, table: Mapping[str, Any]) -> TierLimits:  # Any: TOML values
    default = DEFAULT_TIERS.get(number, _BARE_TIER)
    values = {
        key: _amount(table.get(key, getattr(default, key)), f"[tiers.{number}] {key}")
        for key in (
            "balance_limit",
            "payment_limit",
            "offline_payment_limit",
            "offline_unsettled_limit",
            "offline_hops",
        )
    }
    return TierLimits(**values)


def _tiers(document: object) -> dict[int, TierLimits]:
    if not isinstance(document, dict) or not document:
        return dict(DEFAULT_TIERS)
    tiers: dict[int, TierLimits] = {}
    for name, table in document.items():
        if not str(name).isdigit() or int(name) < 1:
            raise OperatorConfigError(f"tier names are numbers 1, 2, …; got [tiers.{name}]")
        if not isinstance(table, dict):
            raise OperatorConfigError(f"[tiers.{name}] must be a table")
        tiers[int(name)] = _tier(int(name), table)
    return dict(sorted(tiers.items()))


def _float_policy(table: Mapping[str, Any]) -> FloatPolicy:  # Any: TOML values
    marks = {
        name: _amount(
            table.get(name, getattr(DEFAULT_FLOAT_POLICY, name)), f"[float] {name}", zero=True
        )
        for name in ("low", "target", "high")
    }
    policy = FloatPolicy(**marks)
    _check_policy(policy)
    return policy


def _check_policy(policy: FloatPolicy) -> None:
    if not policy.low <= policy.target <= policy.high:
        raise OperatorConfigError(
            f"[float] needs low <= target <= high, got {policy.low}, {policy.target}, {policy.high}"
        )


def load_config(path: Path) -> OperatorConfig:
    """Read an operator's `operator.toml` (or the directory holding it).

    Raises:
        OperatorConfigError: the file is missing, not TOML, or a setting is missing or wrong.
    """
    file = ConfigFile.read(path, CONFIG_NAME, OperatorConfigError)
    settings = file.service_settings(
        "operator", database_file=DATABASE_FILE, default_port=_DEFAULT_PORT, default_name=None
    )
    try:
        float_policy = _float_policy(file.table("float"))
        tiers = _tiers(file.document.get("tiers"))
    except OperatorConfigError as exc:
        file.fail(str(exc))
    return OperatorConfig(
        **settings,
        directory=file.directory,
        float_key_file=file.file("operator", "float_key_file"),
        hosted_seed_file=file.file("operator", "hosted_seed_file"),
        issuer_url=file.url("operator", "issuer_url"),
        tx_window=file.integer(
            "operator", "tx_window", _DEFAULT_TX_WINDOW, low=1, high=_MAX_WINDOW, unit=" blocks"
        ),
        float_policy=float_policy,
        tiers=tiers,
    )


def render_config(
    *,
    name: str,
    asset: str,
    node_url: str,
    issuer_url: str,
    port: int,
    admin_token_hash: str,
    database: str | None = None,
    host: str = "127.0.0.1",
    tiers: Mapping[int, TierLimits] | None = None,
    float_policy: FloatPolicy | None = None,
    key_file: str = "keys/identity.key",
    float_key_file: str = "keys/float.key",
    hosted_seed_file: str = "keys/hosted.seed",
) -> str:
    """The text of an `operator.toml` (paths relative to the service directory)."""
    policy = float_policy or DEFAULT_FLOAT_POLICY
    lines = [
        "# Tally operator service. Paths are relative to this file; amounts in minor units.",
        "[operator]",
        f"name = {toml_string(name)}",
        f"asset = {toml_string(asset)}",
        f"key_file = {toml_string(key_file)}",
        f"float_key_file = {toml_string(float_key_file)}",
        f"hosted_seed_file = {toml_string(hosted_seed_file)}",
        (
            f"database = {toml_string(database)}"
            if database
            else f'# database = "postgresql+psycopg://user@host/db"  (default: {DATABASE_FILE})'
        ),
        f"node_url = {toml_string(node_url)}",
        f"issuer_url = {toml_string(issuer_url)}",
        f"tx_window = {_DEFAULT_TX_WINDOW}  # blocks a transaction the operator signs stays valid",
        "",
        "[api]",
        f"host = {toml_string(host)}",
        f"port = {port}",
        "# SHA-256 of the admin token: the token itself is shown once and not stored.",
        f"admin_token_hash = {toml_string(admin_token_hash)}",
        "",
        "[float]",
        f"low = {policy.low}",
        f"target = {policy.target}",
        f"high = {policy.high}",
    ]
    for tier, limits in sorted((tiers or DEFAULT_TIERS).items()):
        lines += [
            "",
            f"[tiers.{tier}]",
            f"balance_limit = {limits.balance_limit}",
            f"payment_limit = {limits.payment_limit}",
            f"offline_payment_limit = {limits.offline_payment_limit}",
            f"offline_unsettled_limit = {limits.offline_unsettled_limit}",
            f"offline_hops = {limits.offline_hops}",
        ]
    return "\n".join(lines) + "\n"


def write_seed(path: Path, seed: bytes) -> None:
    """Write a 32-byte seed to `path`, created with mode 0600; never overwrites a file."""
    if len(seed) != _SEED_SIZE:
        raise ValueError(f"a seed is {_SEED_SIZE} bytes, got {len(seed)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"kind": _SEED_KIND, "seed": seed.hex()}, out, indent=2)
        out.write("\n")


def read_seed(path: Path) -> bytes:
    """Read a seed file written by `write_seed`.

    Raises:
        OperatorConfigError: missing, unreadable, or not a seed file.
    """
    try:
        document = json.loads(Path(path).read_text())
        seed = bytes.fromhex(document["seed"]) if document.get("kind") == _SEED_KIND else b""
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise OperatorConfigError(f"cannot read seed file {path}: {exc}") from None
    if len(seed) != _SEED_SIZE:
        raise OperatorConfigError(f"{path} is not a Tally seed file")
    return seed


def init_operator_dir(
    directory: Path,
    *,
    name: str,
    asset: str,
    node_url: str,
    issuer_url: str,
    port: int,
    database: str | None = None,
    tiers: Mapping[int, TierLimits] | None = None,
    float_policy: FloatPolicy | None = None,
    host: str = "127.0.0.1",
) -> OperatorIdentity:
    """Make a service directory: fresh identity and float keys, a hosted seed, `operator.toml`.

    The keys, the seed and `operator.toml` are readable only by their owner (0600).

    Args:
        directory: Where to write; created if missing; must not hold an `operator.toml`.
        name: The operator's name.
        asset: The asset it distributes.
        node_url: The ledger node's API.
        issuer_url: The issuer service's API.
        port: The port the API will listen on.
        database: SQLAlchemy URL; None for `operator.sqlite` in the directory.
        tiers: Limits per tier; the defaults when None.
        float_policy: The float's marks; the defaults when None.
        host: The address the API will listen on.

    Returns:
        The admin token (shown once), the identity public key and the float public key.

    Raises:
        OperatorConfigError: the directory is already an operator's, or a setting is wrong.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_NAME
    if config_path.exists():
        raise OperatorConfigError(f"{config_path} exists: {directory} is already an operator's")
    check_asset(asset, OperatorConfigError)
    if database is not None:
        resolve_database_url(database, directory, OperatorConfigError)  # refuse it before writing
    if float_policy is not None:
        _check_policy(float_policy)
    directory.mkdir(parents=True, exist_ok=True)
    identity: PrivateKey = new_key()
    float_key: PrivateKey = new_key()
    write_key(directory / "keys" / "identity.key", identity, label=f"{name} identity")
    write_key(directory / "keys" / "float.key", float_key, label=f"{name} float")
    write_seed(directory / "keys" / "hosted.seed", os.urandom(_SEED_SIZE))
    token = new_token()
    write_config_file(
        config_path,
        render_config(
            name=name,
            asset=asset,
            node_url=node_url,
            issuer_url=issuer_url,
            port=port,
            admin_token_hash=hash_token(token),
            database=database,
            host=host,
            tiers=tiers,
            float_policy=float_policy,
        ),
    )
    return OperatorIdentity(
        admin_token=token,
        identity_key=PublicKey(identity.public_key),
        float_key=PublicKey(float_key.public_key),
    )
