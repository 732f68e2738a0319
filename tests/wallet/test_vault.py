"""The wallet file: scrypt + AES-GCM at rest, atomic writes, and clear refusals."""

from __future__ import annotations

import json
import stat
import unicodedata
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tally.wallet.vault import (
    DEFAULT_SCRYPT_N,
    FORMAT,
    Vault,
    WalletFileError,
    WalletPasswordError,
    WalletSecret,
)

FAST_N = 2**10
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test password


def secret(**changes) -> WalletSecret:
    base = WalletSecret(
        seed=bytes(range(32)),
        chain_id="tally-test",
        hrp="tly",
        node_url="http://127.0.0.1:7545",
        next_index=3,
        created_ms=1_700_000_000_000,
    )
    return msgspec.structs.replace(base, **changes)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "wallet.json"


def make(path: Path, password: str = PASSWORD, **kwargs) -> Vault:
    return Vault.create(path, password, secret(), scrypt_n=FAST_N, **kwargs)


def document(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def rewrite(path: Path, **fields) -> None:
    doc = document(path)
    doc.update(fields)
    path.write_text(json.dumps(doc))


def test_a_wallet_file_opens_with_its_password(path):
    make(path)
    vault = Vault.open(path, PASSWORD)
    assert vault.secret == secret()
    assert vault.params.n == FAST_N


def test_the_file_is_json_with_format_kdf_nonce_and_ciphertext_and_mode_0600(path):
    make(path)
    doc = document(path)
    assert set(doc) == {"format", "kdf", "nonce", "ciphertext"}
    assert doc["format"] == FORMAT == "tally-wallet/1"
    assert doc["kdf"]["name"] == "scrypt"
    assert (doc["kdf"]["n"], doc["kdf"]["r"], doc["kdf"]["p"]) == (FAST_N, 8, 1)
    assert len(bytes.fromhex(doc["kdf"]["salt"])) == 16
    assert len(bytes.fromhex(doc["nonce"])) == 12
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The seed is nowhere in the file, in any spelling.
    text = path.read_text()
    assert bytes(range(32)).hex() not in text
    assert "tally-test" not in text


def test_new_wallets_default_to_scrypt_n_2_to_the_15(path):
    Vault.create(path, PASSWORD, secret())
    assert document(path)["kdf"]["n"] == DEFAULT_SCRYPT_N == 2**15
    assert Vault.open(path, PASSWORD).secret == secret()


def test_a_wrong_password_is_refused_with_wallet_password(path):
    make(path)
    with pytest.raises(WalletPasswordError) as info:
        Vault.open(path, "wrong password")
    assert info.value.code == "wallet.password"
    assert info.value.http_status == 401
    assert "password" in info.value.message


def test_a_changed_ciphertext_is_refused(path):
    make(path)
    ciphertext = document(path)["ciphertext"]
    flipped = ("0" if ciphertext[10] != "0" else "1").join([ciphertext[:10], ciphertext[11:]])
    rewrite(path, ciphertext=flipped)
    with pytest.raises(WalletPasswordError):
        Vault.open(path, PASSWORD)


def test_changed_header_parameters_are_refused_as_associated_data(path):
    make(path)
    doc = document(path)
    doc["kdf"]["r"] = 9
    path.write_text(json.dumps(doc))
    with pytest.raises(WalletPasswordError):
        Vault.open(path, PASSWORD)


def test_a_changed_nonce_is_refused(path):
    make(path)
    rewrite(path, nonce="00" * 12)
    with pytest.raises(WalletPasswordError):
        Vault.open(path, PASSWORD)


@pytest.mark.parametrize(
    "content",
    [
        b"not json at all",
        b"\xff\xfe",
        b"[1, 2, 3]",
        b'{"format": "tally-wallet/2"}',
        b'{"format": "tally-wallet/1", "kdf": {"name": "pbkdf2"}}',
        b'{"format": "tally-wallet/1", "kdf": {"name": "scrypt", "n": "1024", "r": 8, "p": 1}}',
        b'{"format": "tally-wallet/1", "kdf": {"name": "scrypt", "n": 1073741824, "r": 8, '
        b'"p": 1, "salt": "00"}}',
        b'{"format": "tally-wallet/1", "kdf": {"name": "scrypt", "n": 1000, "r": 8, "p": 1}}',
        b'{"format": "tally-wallet/1", "kdf": {"name": "scrypt", "n": 1024, "r": 8, "p": 1, '
        b'"salt": "zz"}, "nonce": "00", "ciphertext": "00"}',
        b'{"format": "tally-wallet/1", "kdf": {"name": "scrypt", "n": 1024, "r": 8, "p": 1, '
        b'"salt": "00"}, "nonce": "000000000000000000000000", "ciphertext": "00"}',
    ],
)
def test_a_file_that_is_not_a_wallet_is_refused_with_wallet_file(path, content):
    path.write_bytes(content)
    with pytest.raises(WalletFileError) as info:
        Vault.open(path, PASSWORD)
    assert info.value.code == "wallet.file"
    assert info.value.http_status == 400
    assert str(path) in info.value.message


def test_a_missing_file_is_refused_with_wallet_file(path):
    with pytest.raises(WalletFileError, match="no wallet file"):
        Vault.open(path, PASSWORD)


def test_create_refuses_to_overwrite_a_file(path):
    path.write_text("precious")
    with pytest.raises(WalletFileError, match="already exists"):
        make(path)
    assert path.read_text() == "precious"


def test_create_refuses_scrypt_parameters_out_of_bounds(path):
    with pytest.raises(ValueError, match="power of two"):
        Vault.create(path, PASSWORD, secret(), scrypt_n=1000)
    assert not path.exists()


def test_save_rewrites_under_a_fresh_nonce_atomically(path):
    vault = make(path)
    before = document(path)
    vault.save(secret(next_index=42))
    after = document(path)
    assert after["nonce"] != before["nonce"]
    assert after["kdf"] == before["kdf"]
    assert vault.secret.next_index == 42
    assert Vault.open(path, PASSWORD).secret.next_index == 42
    assert sorted(p.name for p in path.parent.iterdir()) == ["wallet.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_password_is_normalised_so_composed_and_decomposed_forms_match(path):
    password = unicodedata.normalize("NFC", "pässwörd")
    make(path, password)
    assert Vault.open(path, unicodedata.normalize("NFD", password)).secret == secret()
