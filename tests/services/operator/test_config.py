"""The operator's directory and `operator.toml`: keys, defaults, limits as configuration."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tally.node.keyfile import read_key
from tally.services.common.auth import hash_token
from tally.services.common.db import sqlite_url
from tally.services.operator.config import (
    DEFAULT_FLOAT_POLICY,
    DEFAULT_TIERS,
    FloatPolicy,
    OperatorConfigError,
    TierLimits,
    init_operator_dir,
    load_config,
    read_seed,
)


def _init(directory: Path, **kwargs: object):
    return init_operator_dir(
        directory,
        name="op-a",
        asset="CNY",
        node_url="http://127.0.0.1:7545",
        issuer_url="http://127.0.0.1:7600",
        port=7610,
        **kwargs,  # type: ignore[arg-type]
    )


def test_init_writes_private_keys_and_a_config_that_loads_with_the_defaults(
    tmp_path: Path,
) -> None:
    identity = _init(tmp_path / "op")
    config = load_config(tmp_path / "op")
    assert config.name == "op-a"
    assert config.asset == "CNY"
    assert config.api_port == 7610
    assert config.node_url == "http://127.0.0.1:7545"
    assert config.issuer_url == "http://127.0.0.1:7600"
    assert config.database_url == sqlite_url(tmp_path / "op" / "operator.sqlite")
    assert config.admin_token_hash == hash_token(identity.admin_token)
    assert config.tiers == DEFAULT_TIERS
    assert config.tiers[1] == TierLimits(balance_limit=1_000_000, payment_limit=200_000)
    assert config.float_policy == DEFAULT_FLOAT_POLICY
    assert read_key(config.key_file).public_key == identity.identity_key
    assert read_key(config.float_key_file).public_key == identity.float_key
    assert identity.identity_key != identity.float_key
    assert len(read_seed(config.hosted_seed_file)) == 32
    config_file = tmp_path / "op" / "operator.toml"
    for path in (config.key_file, config.float_key_file, config.hosted_seed_file, config_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The token itself is nowhere on disk.
    assert identity.admin_token not in (tmp_path / "op" / "operator.toml").read_text()


def test_limits_and_float_marks_are_configuration(tmp_path: Path) -> None:
    tiers = {1: TierLimits(500, 100), 4: TierLimits(9_000, 3_000)}
    policy = FloatPolicy(low=10, target=20, high=30)
    _init(tmp_path / "op", tiers=tiers, float_policy=policy, database="sqlite:////x/y.db")
    config = load_config(tmp_path / "op" / "operator.toml")
    assert dict(config.tiers) == tiers
    assert config.float_policy == policy
    assert config.database_url == "sqlite:////x/y.db"
    # Editing the file changes the limits: no code involved.
    path = tmp_path / "op" / "operator.toml"
    path.write_text(path.read_text().replace("balance_limit = 500", "balance_limit = 777"))
    assert load_config(path).tiers[1].balance_limit == 777


def test_offline_limits_are_tier_configuration_too(tmp_path: Path) -> None:
    tiers = {2: TierLimits(9_000, 3_000, offline_payment_limit=700, offline_hops=3)}
    _init(tmp_path / "op", tiers=tiers)
    path = tmp_path / "op" / "operator.toml"
    limits = load_config(path).tiers[2]
    assert (limits.offline_payment_limit, limits.offline_hops) == (700, 3)
    assert limits.offline_unsettled_limit == TierLimits(1, 1).offline_unsettled_limit
    path.write_text(path.read_text().replace("offline_hops = 3", "offline_hops = 5"))
    assert load_config(path).tiers[2].offline_hops == 5
    # A file written before the offline limits existed gets the tier's defaults.
    bare = "\n".join(line for line in path.read_text().splitlines() if "offline_" not in line)
    path.write_text(bare + "\n")
    assert (
        load_config(path).tiers[2].offline_payment_limit == DEFAULT_TIERS[2].offline_payment_limit
    )


def test_init_refuses_an_existing_operator_and_bad_settings(tmp_path: Path) -> None:
    _init(tmp_path / "op")
    with pytest.raises(OperatorConfigError, match="already"):
        _init(tmp_path / "op")
    with pytest.raises(OperatorConfigError, match="asset"):
        init_operator_dir(tmp_path / "x", name="x", asset="cny", node_url="", issuer_url="", port=1)
    with pytest.raises(OperatorConfigError, match="low <= target <= high"):
        _init(tmp_path / "y", float_policy=FloatPolicy(low=5, target=4, high=6))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('asset = "CNY"', 'asset = "cny"'), "asset"),
        (('name = "op-a"\n', ""), "missing setting 'name'"),
        (("balance_limit = 1000000", "balance_limit = -1"), "balance_limit"),
        (("payment_limit = 200000", "payment_limit = 1.5"), "payment_limit"),
        (("[tiers.1]", "[tiers.one]"), "tier names"),
        (("low = 10000000", "low = 100000000000"), "low <= target <= high"),
        (("port = 7610", "port = [7610"), "not valid TOML"),
        (("tx_window = 100", "tx_window = 5000"), "tx_window"),
        (("port = 7610", "port = 70000"), "TCP port"),
        (('admin_token_hash = "', 'admin_token_hash = "zz'), "admin_token_hash"),
        (('node_url = "http', 'node_url = "ftp'), "node_url"),
    ],
)
def test_load_config_names_the_wrong_setting(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    _init(tmp_path / "op")
    path = tmp_path / "op" / "operator.toml"
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(OperatorConfigError, match=message):
        load_config(path)


def test_a_relative_sqlite_database_resolves_against_the_directory(tmp_path: Path) -> None:
    _init(tmp_path / "op", database="sqlite:///books/operator.sqlite")
    # Whatever the working directory, the database is the one in the service directory.
    expected = sqlite_url(tmp_path / "op" / "books" / "operator.sqlite")
    assert load_config(tmp_path / "op").database_url == expected


def test_any_name_survives_the_round_trip_through_operator_toml(tmp_path: Path) -> None:
    name = 'Bank "Ü" \\ 🏦\tbranch'
    init_operator_dir(
        tmp_path / "op",
        name=name,
        asset="CNY",
        node_url="http://127.0.0.1:7545",
        issuer_url="http://127.0.0.1:7600",
        port=7610,
    )
    assert load_config(tmp_path / "op").name == name


def test_load_config_of_a_missing_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(OperatorConfigError, match="cannot read"):
        load_config(tmp_path / "nowhere")


def test_the_module_says_how_to_run_it_and_refuses_a_bad_directory(tmp_path: Path) -> None:
    usage = subprocess.run(
        [sys.executable, "-m", "tally.services.operator"], capture_output=True, text=True
    )
    assert usage.returncode == 2
    assert "usage: python -m tally.services.operator SERVICE_DIR" in usage.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "tally.services.operator", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
