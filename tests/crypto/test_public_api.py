import ast
import importlib
from pathlib import Path

import tally.crypto

CRYPTO_DIR = Path(tally.crypto.__file__).resolve().parent
MODULES = sorted(path.stem for path in CRYPTO_DIR.glob("*.py") if path.stem != "__init__")
FORBIDDEN = {"time", "random", "os", "socket", "asyncio", "secrets", "datetime", "threading"}

EXPECTED = {
    "tagged_hash",
    "sha256",
    "PrivateKey",
    "verify",
    "is_valid_public_key",
    "InvalidKeyError",
    "merkle_root",
    "MerkleProof",
    "merkle_proof",
    "verify_merkle_proof",
    "StateCommitment",
    "encode_address",
    "decode_address",
    "InvalidAddressError",
}


def test_package_exports_the_public_api():
    assert set(tally.crypto.__all__) == EXPECTED
    for name in tally.crypto.__all__:
        assert getattr(tally.crypto, name) is not None


def test_every_module_declares_all_and_exports_only_public_names():
    exported = set()
    for stem in MODULES:
        module = importlib.import_module(f"tally.crypto.{stem}")
        assert module.__doc__, stem
        names = module.__all__
        assert all(not name.startswith("_") for name in names), stem
        assert all(hasattr(module, name) for name in names), stem
        exported.update(names)
    assert exported == set(tally.crypto.__all__)


def test_crypto_does_no_io_clock_or_randomness_imports():
    for path in CRYPTO_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not roots & FORBIDDEN, f"{path.name} imports {roots & FORBIDDEN}"
