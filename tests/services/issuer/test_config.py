"""The issuer's directory: `init_issuer_dir`, `issuer.toml`, and refusals of bad settings."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tally.node.keyfile import read_key
from tally.services.common.auth import hash_token, token_matches
from tally.services.issuer.config import (
    CONFIG_FILE,
    KEY_FILE,
    IssuerConfigError,
    init_issuer_dir,
    load_issuer_config,
)
from tests.rules.helpers import CNY_ISSUER, key


def make_dir(tmp_path: Path, **kwargs: object) -> tuple[Path, str]:
    directory = tmp_path / "issuer"
    options: dict[str, object] = {
        "asset": "CNY",
        "issuer_key": key(CNY_ISSUER),
        "node_url": "http://127.0.0.1:7545/",
        "port": 7601,
    }
    options.update(kwargs)
    token = init_issuer_dir(directory, **options)  # type: ignore[arg-type]
    return directory, token


def test_init_writes_the_key_and_a_config_that_loads(tmp_path: Path) -> None:
    directory, token = make_dir(tmp_path, name="people's bank")
    key_file = directory / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / CONFIG_FILE).stat().st_mode) == 0o600
    assert read_key(key_file) == key(CNY_ISSUER)

    config = load_issuer_config(directory)
    assert config.name == "people's bank"
    assert config.asset == "CNY"
    assert config.key_file == key_file.resolve()
    assert config.node_url == "http://127.0.0.1:7545"
    assert (config.api_host, config.api_port, config.url) == (
        "127.0.0.1",
        7601,
        "http://127.0.0.1:7601",
    )
    assert config.database_url == f"sqlite:///{(directory / 'issuer.sqlite').resolve()}"
    # Only the token's hash is stored.
    text = (directory / CONFIG_FILE).read_text()
    assert token not in text
    assert config.admin_token_hash == hash_token(token)
    assert token_matches(token, config.admin_token_hash)
    assert load_issuer_config(directory / CONFIG_FILE) == config


def test_a_postgresql_url_is_kept_and_a_relative_sqlite_path_resolves(tmp_path: Path) -> None:
    url = "postgresql+psycopg://tally:secret@db.example:5432/issuer"
    directory, _ = make_dir(tmp_path, database=url)
    assert load_issuer_config(directory).database_url == url
    relative, _ = make_dir(tmp_path / "rel", database="sqlite:///data/books.sqlite")
    assert load_issuer_config(relative).database_url == (
        f"sqlite:///{(relative / 'data' / 'books.sqlite').resolve()}"
    )


def test_init_refuses_a_directory_that_holds_an_issuer(tmp_path: Path) -> None:
    directory, _ = make_dir(tmp_path)
    before = (directory / CONFIG_FILE).read_text()
    with pytest.raises(IssuerConfigError, match="already holds an issuer"):
        make_dir(tmp_path)
    assert (directory / CONFIG_FILE).read_text() == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"asset": "cny"}, "asset"),
        ({"database": "sqlite:///:memory:"}, "SQLite file"),
        ({"database": "not a url"}, "not a database URL"),
    ],
)
def test_init_refuses_bad_arguments_before_writing(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(IssuerConfigError, match=message):
        make_dir(tmp_path, **kwargs)
    assert not (tmp_path / "issuer" / KEY_FILE).exists()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('asset = "CNY"\n', "", "missing setting 'asset'"),
        ('asset = "CNY"', 'asset = "cny"', "asset"),
        ("port = 7601", "port = 70000", "TCP port"),
        ("port = 7601", 'port = "x"', "port is an integer"),
        ("valid_window = 100", "valid_window = 0", "valid_window"),
        ("admin_token_hash = ", 'admin_token_hash = "abc"\n#', "admin_token_hash"),
        ('node_url = "http', 'node_url = "ftp', "node_url"),
        ("[issuer]", "[issuer", "not valid TOML"),
    ],
)
def test_load_names_the_bad_setting(tmp_path: Path, old: str, new: str, message: str) -> None:
    directory, _ = make_dir(tmp_path)
    path = directory / CONFIG_FILE
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(IssuerConfigError, match=message):
        load_issuer_config(directory)


def test_load_of_a_missing_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(IssuerConfigError, match="cannot read"):
        load_issuer_config(tmp_path / "nowhere")
