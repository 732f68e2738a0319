"""Cryptography for Tally: hashes, signatures, Merkle trees, the state commitment, addresses.

Everything here is pure: no I/O, no clock, no randomness. The same inputs give the same
bytes on every node. Callers that need randomness (key generation, signing with fresh
auxiliary data) draw it themselves, with ``os.urandom``, and pass it in.

- `tagged_hash`, `sha256`: SHA-256, domain-separated by tag as in BIP-340.
- `PrivateKey`, `verify`, `is_valid_public_key`: BIP-340 Schnorr over secp256k1.
- `merkle_root`, `merkle_proof`, `verify_merkle_proof`, `MerkleProof`: the block's
  transaction and receipt tree.
- `StateCommitment`: the incremental multiset hash (LtHash16) of the ledger state.
- `encode_address`, `decode_address`: bech32m (BIP-350) address text.
"""

from tally.crypto.bech32 import InvalidAddressError, decode_address, encode_address
from tally.crypto.commitment import StateCommitment
from tally.crypto.hashing import sha256, tagged_hash
from tally.crypto.merkle import MerkleProof, merkle_proof, merkle_root, verify_merkle_proof
from tally.crypto.schnorr import InvalidKeyError, PrivateKey, is_valid_public_key, verify

__all__ = [
    # hashing
    "tagged_hash",
    "sha256",
    # schnorr
    "PrivateKey",
    "verify",
    "is_valid_public_key",
    "InvalidKeyError",
    # merkle
    "merkle_root",
    "MerkleProof",
    "merkle_proof",
    "verify_merkle_proof",
    # commitment
    "StateCommitment",
    # bech32
    "encode_address",
    "decode_address",
    "InvalidAddressError",
]
