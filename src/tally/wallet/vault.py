"""The wallet file: the seed and the wallet's settings, encrypted at rest under a password.

The file is a small JSON document:

    {"format": "tally-wallet/1",
     "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<hex>"},
     "nonce": "<hex>", "ciphertext": "<hex>"}

The password (UTF-8, NFC-normalised so that the same password typed on two systems gives
the same bytes) is stretched by scrypt with the parameters and salt stored in the file into a
256-bit AES-GCM key. The plaintext is the JSON of `WalletSecret`. The header (format and KDF
parameters) is the associated data, so a file whose parameters were changed fails to open
just as a wrong password does. Every save draws a fresh 12-byte nonce.

Writes are atomic: a temporary file in the same directory (mode 0600) is written, synced and
renamed over the old one, and the directory is synced, so a crash leaves either the old file
or the new one, never a mixture.
"""

from __future__ import annotations

import json
import os
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tally.wallet.errors import WalletError

__all__ = [
    "FORMAT",
    "DEFAULT_SCRYPT_N",
    "WalletSecret",
    "ScryptParams",
    "Vault",
    "WalletPasswordError",
    "WalletFileError",
]

FORMAT: Final = "tally-wallet/1"
"""The format name written in every wallet file."""
DEFAULT_SCRYPT_N: Final = 2**15
"""scrypt's cost parameter for new wallets (about 0.1 s and 32 MiB per unlock)."""
_DEFAULT_R: Final = 8
_DEFAULT_P: Final = 1
_SALT_SIZE: Final = 16
_NONCE_SIZE: Final = 12
_KEY_SIZE: Final = 32
# Bounds on the parameters a file may ask for: below, the file is too weak to be one of
# ours; above, opening it would take minutes or gigabytes (a file is untrusted input).
_MIN_N: Final = 2**10
_MAX_N: Final = 2**20
_MAX_R: Final = 32
_MAX_P: Final = 16
_MAX_FILE_BYTES: Final = 64 * 1024


class WalletPasswordError(WalletError):
    """The wallet file does not open with this password, or was changed since it was written."""

    code = "wallet.password"
    http_status = 401


class WalletFileError(WalletError):
    """A file is not a wallet file of this format (or there is none where one was expected)."""

    code = "wallet.file"


class WalletSecret(msgspec.Struct, frozen=True, kw_only=True):
    """What the wallet file protects: the seed and the wallet's settings."""

    seed: bytes
    """The 32-byte seed every key of the wallet is derived from."""
    chain_id: str
    """The network the wallet belongs to."""
    hrp: str
    """The network's address prefix."""
    node_url: str
    """The node the wallet talks to."""
    next_index: int = 0
    """The index of the next receive key to derive."""
    created_ms: int = 0
    """When the wallet was made, in milliseconds since the Unix epoch."""


@dataclass(frozen=True)
class ScryptParams:
    """The scrypt parameters and salt that turn a password into the file's key."""

    n: int
    """CPU and memory cost, a power of two."""
    r: int
    """Block size."""
    p: int
    """Parallelism."""
    salt: bytes
    """Random salt, 16 bytes."""

    def to_json(self) -> dict[str, Any]:
        """The `kdf` object of the file."""
        return {"name": "scrypt", "n": self.n, "r": self.r, "p": self.p, "salt": self.salt.hex()}

    def derive(self, password: str) -> bytes:
        """The 32-byte AES key for `password`."""
        normalised = unicodedata.normalize("NFC", password).encode("utf-8")
        kdf = Scrypt(salt=self.salt, length=_KEY_SIZE, n=self.n, r=self.r, p=self.p)
        return kdf.derive(normalised)


def _check_params(n: int, r: int, p: int) -> None:
    if not (_MIN_N <= n <= _MAX_N and n & (n - 1) == 0):
        raise ValueError(f"scrypt n must be a power of two in {_MIN_N} … {_MAX_N}, got {n}")
    if not (1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise ValueError(f"scrypt r must be in 1 … {_MAX_R} and p in 1 … {_MAX_P}")


def _header_bytes(params: ScryptParams) -> bytes:
    """The associated data: the header in a canonical JSON form."""
    header = {"format": FORMAT, "kdf": params.to_json()}
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _not_a_wallet(path: Path, why: str) -> WalletFileError:
    return WalletFileError(f"{path} is not a Tally wallet file: {why}", path=str(path))


def _hex_field(document: dict[str, Any], name: str, path: Path) -> bytes:
    value = document.get(name)
    if not isinstance(value, str):
        raise _not_a_wallet(path, f"{name!r} is missing or not a string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise _not_a_wallet(path, f"{name!r} is not hex") from None


def _read_document(path: Path) -> tuple[ScryptParams, bytes, bytes]:
    """The KDF parameters, nonce and ciphertext of the file at `path`."""
    try:
        with path.open("rb") as file:
            raw = file.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise WalletFileError(f"there is no wallet file at {path}", path=str(path)) from None
    except OSError as exc:
        raise WalletFileError(f"cannot read {path}: {exc.strerror}", path=str(path)) from None
    if len(raw) > _MAX_FILE_BYTES:
        raise _not_a_wallet(path, f"it is over {_MAX_FILE_BYTES} bytes")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _not_a_wallet(path, "it is not JSON") from None
    if not isinstance(document, dict):
        raise _not_a_wallet(path, "it is not a JSON object")
    if document.get("format") != FORMAT:
        raise _not_a_wallet(path, f"its format is {document.get('format')!r}, not {FORMAT!r}")
    kdf = document.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise _not_a_wallet(path, "its key derivation is not scrypt")
    numbers = [kdf.get(name) for name in ("n", "r", "p")]
    if not all(type(value) is int for value in numbers):
        raise _not_a_wallet(path, "the scrypt parameters are not integers")
    n, r, p = (int(value) for value in numbers)  # type: ignore[arg-type]
    try:
        _check_params(n, r, p)
    except ValueError as exc:
        raise _not_a_wallet(path, str(exc)) from None
    salt = _hex_field(kdf, "salt", path)
    nonce = _hex_field(document, "nonce", path)
    ciphertext = _hex_field(document, "ciphertext", path)
    if len(salt) != _SALT_SIZE or len(nonce) != _NONCE_SIZE:
        raise _not_a_wallet(path, "the salt or nonce has the wrong length")
    return ScryptParams(n=n, r=r, p=p, salt=salt), nonce, ciphertext


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: temporary file, fsync, rename, fsync of the directory."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class Vault:
    """An unlocked wallet file: its secret, and the key to save changes to it.

    Open one with `Vault.create` or `Vault.open`. The AES key stays in memory while the
    vault is open, so that saving a change (the next key index) needs no new scrypt run.
    """

    def __init__(self, path: Path, params: ScryptParams, key: bytes, secret: WalletSecret) -> None:
        self.path = path
        self._params = params
        self._key = key
        self._secret = secret

    @property
    def secret(self) -> WalletSecret:
        """The decrypted contents."""
        return self._secret

    @property
    def params(self) -> ScryptParams:
        """The scrypt parameters of the file."""
        return self._params

    @classmethod
    def create(
        cls,
        path: Path,
        password: str,
        secret: WalletSecret,
        *,
        scrypt_n: int = DEFAULT_SCRYPT_N,
        scrypt_r: int = _DEFAULT_R,
        scrypt_p: int = _DEFAULT_P,
    ) -> Vault:
        """Write a new wallet file at `path`, encrypted under `password`.

        Args:
            path: Where the file goes; nothing may exist there yet.
            password: The password that will open it.
            secret: What the file holds.
            scrypt_n: scrypt's cost, a power of two in 2^10 … 2^20 (tests use 2^10).
            scrypt_r: scrypt's block size.
            scrypt_p: scrypt's parallelism.

        Returns:
            The open vault.

        Raises:
            WalletFileError: a file already exists at `path`.
            ValueError: the scrypt parameters are out of bounds.

        """
        _check_params(scrypt_n, scrypt_r, scrypt_p)
        if path.exists():
            raise WalletFileError(f"a file already exists at {path}", path=str(path))
        params = ScryptParams(
            n=scrypt_n, r=scrypt_r, p=scrypt_p, salt=secrets.token_bytes(_SALT_SIZE)
        )
        vault = cls(path, params, params.derive(password), secret)
        vault.save(secret)
        return vault

    @classmethod
    def open(cls, path: Path, password: str) -> Vault:
        """Decrypt the wallet file at `path`.

        Args:
            path: The wallet file.
            password: Its password.

        Returns:
            The open vault.

        Raises:
            WalletFileError: there is no file, or it is not a wallet file of this format.
            WalletPasswordError: the password is wrong, or the file was tampered with.

        """
        params, nonce, ciphertext = _read_document(path)
        key = params.derive(password)
        try:
            plaintext = AESGCM(key).decrypt(nonce, ciphertext, _header_bytes(params))
        except InvalidTag:
            raise WalletPasswordError(
                f"the wallet at {path} does not open with this password "
                "(or the file was changed since it was written)",
                path=str(path),
            ) from None
        try:
            secret = msgspec.json.decode(plaintext, type=WalletSecret)
        except msgspec.DecodeError as exc:
            raise _not_a_wallet(path, f"its contents are not a wallet secret: {exc}") from None
        return cls(path, params, key, secret)

    def save(self, secret: WalletSecret) -> None:
        """Encrypt `secret` under a fresh nonce and replace the file with it, atomically.

        Args:
            secret: The new contents.

        """
        nonce = secrets.token_bytes(_NONCE_SIZE)
        ciphertext = AESGCM(self._key).encrypt(
            nonce, msgspec.json.encode(secret), _header_bytes(self._params)
        )
        document = {
            "format": FORMAT,
            "kdf": self._params.to_json(),
            "nonce": nonce.hex(),
            "ciphertext": ciphertext.hex(),
        }
        _write_atomically(self.path, json.dumps(document, indent=1).encode() + b"\n")
        self._secret = secret
