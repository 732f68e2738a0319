"""Protocol objects and their canonical encoding: coins, locks, transactions, blocks, ids."""

from tally.model.address import BadAddressError, address_of, lock_hash, parse_address
from tally.model.block import ACCEPTED, Block, CommitCertificate, Header, Receipt
from tally.model.coin import AmountOutOfRangeError, Coin, InvalidAssetCodeError, coin_id
from tally.model.encoding import (
    block_hash,
    decode,
    decode_block,
    decode_tx,
    encode,
    genesis_hash,
    tx_id,
)
from tally.model.genesis import AssetEntry, Genesis, Member
from tally.model.lock import ESCROW_PAYEE, ESCROW_PAYER, EscrowLock, KeyLock, Lock, MultiLock
from tally.model.params import Params
from tally.model.rejection import (
    DecodeError,
    MalformedError,
    NonCanonicalError,
    Rejection,
    TooLargeError,
    TrailingBytesError,
    TruncatedError,
    WrongTypeError,
    all_rejection_classes,
)
from tally.model.tx import (
    AddMember,
    Govern,
    GovernAction,
    Issue,
    Redeem,
    RegisterAsset,
    RevokeMember,
    SetParams,
    Signature,
    SignedTx,
    Transfer,
    TxBody,
    Witness,
    sighash,
)
from tally.model.types import (
    MAX_AMOUNT,
    MIN_AMOUNT,
    Amount,
    AssetCode,
    BlockHash,
    CoinId,
    Hash32,
    Height,
    PublicKey,
    SignatureBytes,
    TxId,
    is_valid_amount,
    is_valid_asset_code,
)

__all__ = [
    # objects
    "Coin", "KeyLock", "MultiLock", "EscrowLock", "Lock", "ESCROW_PAYER", "ESCROW_PAYEE",
    "Issue", "Transfer", "Redeem", "Govern", "GovernAction", "RegisterAsset", "AddMember",
    "RevokeMember", "SetParams", "TxBody", "SignedTx", "Witness", "Signature",
    "Block", "Header", "Receipt", "CommitCertificate", "ACCEPTED",
    "Genesis", "AssetEntry", "Member", "Params",
    # encoding and ids
    "encode", "decode", "decode_tx", "decode_block", "tx_id", "block_hash", "genesis_hash",
    "coin_id", "sighash", "lock_hash", "address_of", "parse_address",
    # types
    "Amount", "AssetCode", "BlockHash", "CoinId", "Hash32", "Height", "PublicKey",
    "SignatureBytes", "TxId", "MIN_AMOUNT", "MAX_AMOUNT", "is_valid_amount",
    "is_valid_asset_code",
    # rejections
    "Rejection", "DecodeError", "MalformedError", "TruncatedError", "TrailingBytesError",
    "WrongTypeError", "NonCanonicalError", "TooLargeError", "AmountOutOfRangeError",
    "InvalidAssetCodeError", "BadAddressError", "all_rejection_classes",
]
