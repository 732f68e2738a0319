"""What both services' configuration files share: reading settings, paths, writing files."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from tally.services.common.config import (
    ConfigFile,
    ServiceConfigError,
    resolve_database_url,
    toml_string,
    write_config_file,
)
from tally.services.common.db import sqlite_url

TOKEN_HASH = "ab" * 32


class _Error(ServiceConfigError):
    """A service's own configuration error."""


def _file(tmp_path: Path, text: str) -> ConfigFile:
    (tmp_path / "svc.toml").write_text(text)
    return ConfigFile.read(tmp_path, "svc.toml", _Error)


def test_paths_and_a_relative_sqlite_file_resolve_against_the_directory(tmp_path: Path) -> None:
    config = _file(tmp_path, '[svc]\nkey_file = "keys/a.key"\ndatabase = "sqlite:///db/x.sqlite"\n')
    assert config.file("svc", "key_file") == (tmp_path / "keys" / "a.key").resolve()
    assert config.database_url("svc", "svc.sqlite") == sqlite_url(tmp_path / "db" / "x.sqlite")
    missing = _file(tmp_path, "[svc]\n")
    assert missing.database_url("svc", "svc.sqlite") == sqlite_url(tmp_path / "svc.sqlite")


def test_other_database_urls_are_kept_and_memory_is_refused(tmp_path: Path) -> None:
    url = "postgresql+psycopg://tally:secret@db.example:5432/svc"
    assert resolve_database_url(url, tmp_path) == url
    absolute = f"sqlite:///{tmp_path / 'abs.sqlite'}"
    assert resolve_database_url(absolute, Path("/elsewhere")) == absolute
    with pytest.raises(_Error, match="not memory"):
        resolve_database_url("sqlite:///:memory:", tmp_path, _Error)
    with pytest.raises(ServiceConfigError, match="not a database URL"):
        resolve_database_url("not a url", tmp_path)


def test_the_api_table_is_read_and_checked(tmp_path: Path) -> None:
    api = _file(tmp_path, f'[api]\nport = 7000\nadmin_token_hash = "{TOKEN_HASH.upper()}"\n').api(1)
    assert (api.host, api.port, api.admin_token_hash) == ("127.0.0.1", 7000, TOKEN_HASH)
    assert _file(tmp_path, f'[api]\nadmin_token_hash = "{TOKEN_HASH}"\n').api(7600).port == 7600


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[api]\n", "missing setting 'admin_token_hash' in \\[api\\]"),
        ('[api]\nadmin_token_hash = "abc"\n', "admin_token_hash is a SHA-256"),
        (f'[api]\nport = 0\nadmin_token_hash = "{TOKEN_HASH}"\n', "port is an integer in 1"),
        (f'[api]\nport = "80"\nadmin_token_hash = "{TOKEN_HASH}"\n', "port is an integer"),
        (f'[api]\nhost = 1\nadmin_token_hash = "{TOKEN_HASH}"\n', "host is a string"),
        ("api = 5\n", "\\[api\\] is not a table"),
    ],
)
def test_a_wrong_setting_is_named_with_its_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(_Error, match=message) as refused:
        _file(tmp_path, text).api(7600)
    assert str(tmp_path / "svc.toml") in str(refused.value)


def test_a_missing_or_malformed_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(_Error, match="cannot read"):
        ConfigFile.read(tmp_path / "nowhere", "svc.toml", _Error)
    with pytest.raises(_Error, match="not valid TOML"):
        _file(tmp_path, "[svc\n")


@pytest.mark.parametrize("value", ["plain", 'quote " and \\ back', "tab\tnew\nline\x7f", "Ü 🏦"])
def test_toml_string_reads_back_as_the_same_text(value: str) -> None:
    assert tomllib.loads(f"x = {toml_string(value)}")["x"] == value


def test_a_config_file_is_written_for_its_owner_only_and_never_overwritten(
    tmp_path: Path,
) -> None:
    path = tmp_path / "svc.toml"
    write_config_file(path, "x = 1\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_config_file(path, "x = 2\n")
    assert path.read_text() == "x = 1\n"
