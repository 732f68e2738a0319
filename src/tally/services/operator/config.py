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
    database = "sqlite:///..."            # optional: operator.sqlite in this directory
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
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from tally.crypto.schnorr import PrivateKey
from tally.model.types import MAX_AMOUNT, PublicKey, is_valid_asset_code
from tally.node.keyfile import new_key, write_key
from tally.services.common.auth import hash_token, new_token
from tally.services.common.db import sqlite_url

__all__ = [
    "CONFIG_NAME",
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
_DATABASE_NAME = "operator.sqlite"
_SEED_KIND = "tally-seed"
_SEED_SIZE = 32


class OperatorConfigError(Exception):
    """The configuration or a key file is missing or wrong; the message says which setting."""


@dataclass(frozen=True)
class TierLimits:
    """What a customer of one KYC tier may hold and pay."""

    balance_limit: int
    """Most the customer's wallet may hold after a load, in minor units."""
    payment_limit: int
    """Most one payment from a hosted wallet may be, in minor units."""


DEFAULT_TIERS: Mapping[int, TierLimits] = {
    1: TierLimits(balance_limit=1_000_000, payment_limit=200_000),
    2: TierLimits(balance_limit=10_000_000, payment_limit=2_000_000),
    3: TierLimits(balance_limit=100_000_000, payment_limit=20_000_000),
}
"""Tier 1: 10,000.00 / 2,000.00; tier 2: 100,000.00 / 20,000.00; tier 3: 1,000,000.00 /
200,000.00 (balance / payment)."""


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


@dataclass(frozen=True)
class OperatorConfig:
    """Everything an operator service needs to start."""

    directory: Path
    """The service directory (holds `operator.toml`, keys, logs, the default database)."""
    name: str
    """The operator's name, as registered at the issuer."""
    asset: str
    """The asset it distributes (`CNY`)."""
    key_file: Path
    """The identity key: signs requests to the issuer; its public key is the Redeem account."""
    float_key_file: Path
    """The float key: the float's coins are locked to it."""
    hosted_seed_file: Path
    """The seed hosted wallets' keys derive from, one index per customer."""
    database: str
    """SQLAlchemy URL of the operator's database."""
    node_url: str
    """The ledger node's API."""
    issuer_url: str
    """The issuer service's API."""
    admin_token_hash: str
    """SHA-256 (hex) of the admin bearer token."""
    api_host: str = "127.0.0.1"
    """Address the API listens on."""
    api_port: int = 7610
    """Port of the API."""
    tx_window: int = 100
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
    if type(value) is not int or not (0 if zero else 1) <= value <= MAX_AMOUNT:
        lowest = 0 if zero else 1
        raise OperatorConfigError(f"{where} must be an integer in {lowest} … {MAX_AMOUNT}")
    return value


def _tiers(document: object) -> dict[int, TierLimits]:
    if not isinstance(document, dict) or not document:
        return dict(DEFAULT_TIERS)
    tiers: dict[int, TierLimits] = {}
    for name, table in document.items():
        if not str(name).isdigit() or int(name) < 1:
            raise OperatorConfigError(f"tier names are numbers 1, 2, …; got [tiers.{name}]")
        if not isinstance(table, dict):
            raise OperatorConfigError(f"[tiers.{name}] must be a table")
        default = DEFAULT_TIERS.get(int(name))
        balance = table.get("balance_limit", default.balance_limit if default else None)
        payment = table.get("payment_limit", default.payment_limit if default else None)
        tiers[int(name)] = TierLimits(
            balance_limit=_amount(balance, f"[tiers.{name}] balance_limit"),
            payment_limit=_amount(payment, f"[tiers.{name}] payment_limit"),
        )
    return dict(sorted(tiers.items()))


def _float_policy(table: object) -> FloatPolicy:
    if not isinstance(table, dict):
        return DEFAULT_FLOAT_POLICY
    policy = FloatPolicy(
        low=_amount(table.get("low", DEFAULT_FLOAT_POLICY.low), "[float] low", zero=True),
        target=_amount(
            table.get("target", DEFAULT_FLOAT_POLICY.target), "[float] target", zero=True
        ),
        high=_amount(table.get("high", DEFAULT_FLOAT_POLICY.high), "[float] high", zero=True),
    )
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
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_NAME
    try:
        document = tomllib.loads(path.read_text())
    except OSError as exc:
        raise OperatorConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise OperatorConfigError(f"{path} is not valid TOML: {exc}") from None
    base = path.parent.resolve()
    operator = document.get("operator", {})
    api = document.get("api", {})
    try:
        asset = str(operator["asset"])
        if not is_valid_asset_code(asset):
            raise OperatorConfigError(f"{path}: asset {asset!r} is not an asset code like CNY")
        database = operator.get("database") or sqlite_url(base / _DATABASE_NAME)
        tx_window = int(operator.get("tx_window", 100))
        if not 1 <= tx_window <= 1000:
            raise OperatorConfigError(f"{path}: tx_window must be 1 … 1000 blocks")
        return OperatorConfig(
            directory=base,
            name=str(operator["name"]),
            asset=asset,
            key_file=(base / operator["key_file"]).resolve(),
            float_key_file=(base / operator["float_key_file"]).resolve(),
            hosted_seed_file=(base / operator["hosted_seed_file"]).resolve(),
            database=str(database),
            node_url=str(operator["node_url"]),
            issuer_url=str(operator["issuer_url"]),
            admin_token_hash=str(api["admin_token_hash"]),
            api_host=str(api.get("host", "127.0.0.1")),
            api_port=int(api.get("port", 7610)),
            tx_window=tx_window,
            float_policy=_float_policy(document.get("float")),
            tiers=_tiers(document.get("tiers")),
        )
    except KeyError as exc:
        raise OperatorConfigError(f"{path}: missing setting {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise OperatorConfigError(f"{path}: {exc}") from None


def _quote(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


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
        f"name = {_quote(name)}",
        f"asset = {_quote(asset)}",
        f"key_file = {_quote(key_file)}",
        f"float_key_file = {_quote(float_key_file)}",
        f"hosted_seed_file = {_quote(hosted_seed_file)}",
        (
            f"database = {_quote(database)}"
            if database
            else f"# database = ...  (default: {_DATABASE_NAME} in this directory)"
        ),
        f"node_url = {_quote(node_url)}",
        f"issuer_url = {_quote(issuer_url)}",
        "tx_window = 100  # blocks a transaction the operator signs stays valid",
        "",
        "[api]",
        f"host = {_quote(host)}",
        f"port = {port}",
        f"admin_token_hash = {_quote(admin_token_hash)}",
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
    if not is_valid_asset_code(asset):
        raise OperatorConfigError(f"asset {asset!r} is not an asset code like CNY")
    if float_policy is not None:
        _check_policy(float_policy)
    directory.mkdir(parents=True, exist_ok=True)
    identity: PrivateKey = new_key()
    float_key: PrivateKey = new_key()
    write_key(directory / "keys" / "identity.key", identity, label=f"{name} identity")
    write_key(directory / "keys" / "float.key", float_key, label=f"{name} float")
    write_seed(directory / "keys" / "hosted.seed", os.urandom(_SEED_SIZE))
    token = new_token()
    config_path.write_text(
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
        )
    )
    return OperatorIdentity(
        admin_token=token,
        identity_key=PublicKey(identity.public_key),
        float_key=PublicKey(float_key.public_key),
    )
