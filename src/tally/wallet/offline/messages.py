"""What two devices exchange offline: hellos, and payments that carry their trust chain.

The messages are transport-neutral bytes (files, QR codes, a loopback socket): a MessagePack
array `[magic, version, message]`, where `magic` is `"tally-offline"`, `version` the protocol
version the message is written in, and `message` a tagged struct (`Hello` or
`OfflinePayment`). A reader checks the magic and the version before it reads anything else,
so that a message of a version it does not speak is refused as such (`offline.version`)
rather than as garbage; and, like every protocol object, a message must be the canonical
encoding of what it decodes to.

A payment goes like this:

1. The payee's device writes a `Hello` (role `payee`): the versions and features it
   supports, a fresh 16-byte nonce, and a fresh key of its wallet to be paid to.
2. The payer's device writes its own `Hello` (role `payer`, a fresh nonce of its own), and
   both derive the same `Agreement` from the two hellos (`tally.wallet.offline.negotiation`).
3. The payer sends an `OfflinePayment`: its hello, the `TrustChain` from coins on the
   ledger to the payment (the roots' inclusion data and the hops), and a `binding`
   signature over the last hop's id and both nonces, by the key that signed the last hop.
   A payment is thus good for one payee's one hello: shown to any other device, or twice to
   the same one, it is refused as a replay.

A `RootProof` is what the node's `/v1/txs/{txid}/inclusion` returns, decoded: a transaction,
its receipt and position in its block, the Merkle proof of both under the header's
transaction root, the header, and the header's commit certificate.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, TypeAlias

import msgspec

from tally.crypto.hashing import tagged_hash
from tally.model.block import CommitCertificate, Header, Receipt
from tally.model.encoding import decode, encode, prepare_decoders
from tally.model.offline import TxInclusionProof
from tally.model.rejection import Rejection
from tally.model.tx import SignedTx
from tally.model.types import AssetCode, Hash32, PublicKey, SignatureBytes, TxId
from tally.wallet.offline.errors import OfflineMessageError, OfflineVersionError

__all__ = [
    "MAGIC",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "NONCE_SIZE",
    "MAX_MESSAGE_BYTES",
    "ROLE_PAYER",
    "ROLE_PAYEE",
    "Features",
    "Hello",
    "Agreement",
    "RootProof",
    "TrustChain",
    "OfflinePayment",
    "Message",
    "encode_message",
    "decode_message",
    "decode_hello",
    "decode_payment",
    "binding_message",
    "agreement_id",
    "root_from_inclusion",
    "encode_root",
    "decode_root",
]

MAGIC: Final = "tally-offline"
"""The first element of every offline message."""
PROTOCOL_VERSION: Final = 1
"""The protocol version this module writes."""
SUPPORTED_VERSIONS: Final[tuple[int, ...]] = (PROTOCOL_VERSION,)
"""Every protocol version this module reads."""
NONCE_SIZE: Final = 16
"""Bytes of a hello's fresh random nonce."""
MAX_MESSAGE_BYTES: Final = 1024 * 1024
"""The largest message a device reads; a long chain of big transfers still fits."""
ROLE_PAYER: Final = "payer"
"""The role of the device that pays."""
ROLE_PAYEE: Final = "payee"
"""The role of the device that is paid."""

_BINDING_TAG: Final = "tally/offline/binding"
_AGREEMENT_TAG: Final = "tally/offline/agreement"

_Key = Annotated[PublicKey, msgspec.Meta(min_length=32, max_length=32)]
_Nonce = Annotated[bytes, msgspec.Meta(min_length=NONCE_SIZE, max_length=NONCE_SIZE)]
_Sig = Annotated[SignatureBytes, msgspec.Meta(min_length=64, max_length=64)]
_Asset = Annotated[AssetCode, msgspec.Meta(min_length=2, max_length=12)]
_Amount = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
_Version = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class Features(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """What a device can do in an offline payment; the agreement keeps what both can."""

    split: bool
    """Pays from a larger coin with change (payer), or accepts a hop with change (payee)."""
    multi_hop: bool
    """Pays onward coins received offline (payer), or accepts a chain of several hops (payee)."""
    assets: Annotated[tuple[_Asset, ...], msgspec.Meta(max_length=32)]
    """The assets the device pays or accepts, sorted."""
    max_amount: _Amount
    """The largest single payment the device makes or accepts, in minor units."""


class Hello(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=1):
    """The first message of each device: who it is in this payment and what it supports."""

    role: Literal["payer", "payee"]
    """`payer` or `payee`."""
    chain_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """The network the device pays on."""
    versions: Annotated[tuple[_Version, ...], msgspec.Meta(min_length=1, max_length=16)]
    """Every protocol version the device speaks."""
    features: Features
    """What the device can do."""
    nonce: _Nonce
    """16 fresh random bytes; the payment binds the nonces of both hellos."""
    receive_key: _Key | None
    """The payee's fresh key that the payment is locked to (None in a payer's hello)."""


class Agreement(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """What a payer's and a payee's hellos agree on; both devices derive the same one."""

    version: _Version
    """The highest protocol version both speak."""
    chain_id: str
    """The network."""
    payer_nonce: _Nonce
    """The payer's hello nonce."""
    payee_nonce: _Nonce
    """The payee's hello nonce."""
    payee: _Key
    """The key the payment is locked to: `OfflineLock(payee, unlock_height)`."""
    features: Features
    """What both can do: split and multi-hop if both can, the assets both take, the
    smaller maximum amount."""


class RootProof(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Proof that a transaction is in a final block: the root of a trust chain."""

    tx: SignedTx
    """The transaction that created the coins the chain starts from."""
    index: Annotated[int, msgspec.Meta(ge=0)]
    """Its position in its block."""
    receipt: Receipt
    """Its receipt: it must be accepted."""
    proof: TxInclusionProof
    """The Merkle proof of the transaction and its receipt under the header's `tx_root`."""
    header: Header
    """The header of the block that holds it."""
    certificate: CommitCertificate
    """The header's commit certificate: a quorum of the consortium's members signed it."""


class TrustChain(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """The hops from coins on the ledger to the current holder, with the roots' proofs."""

    roots: tuple[RootProof, ...]
    """Proofs of the on-ledger transactions whose outputs the first hops spend."""
    hops: tuple[SignedTx, ...]
    """Signed transfers in an order that settles: each spends outputs of a root or of
    earlier hops only."""


class OfflinePayment(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=2):
    """A payment from one device to another, with everything the payee checks offline."""

    version: _Version
    """The agreed protocol version (also the message's)."""
    payer_hello: Hello
    """The payer's hello, from which the payee derives the agreement."""
    payee_nonce: _Nonce
    """The nonce of the payee's hello this payment answers."""
    payee: _Key
    """The payee's key (from its hello); the last hop pays `OfflineLock(payee, …)`."""
    asset: _Asset
    """The asset paid."""
    amount: _Amount
    """The amount paid, in minor units: one output of the last hop."""
    chain: TrustChain
    """From the ledger to the payment; the last hop is the payment itself."""
    binding: _Sig
    """Signature by the key that signs the last hop's first input, over
    `binding_message(version, chain_id, last hop id, payer nonce, payee nonce)`."""


Message: TypeAlias = Hello | OfflinePayment
"""Every message two devices exchange."""


def binding_message(
    version: int, chain_id: str, last_txid: TxId, payer_nonce: bytes, payee_nonce: bytes
) -> Hash32:
    """The 32 bytes a payment's `binding` signs: the last hop and both hellos' nonces."""
    data = encode((version, chain_id, bytes(last_txid), bytes(payer_nonce), bytes(payee_nonce)))
    return Hash32(tagged_hash(_BINDING_TAG, data))


def agreement_id(agreement: Agreement) -> Hash32:
    """A short id of an agreement, for logs and the devices' screens."""
    return Hash32(tagged_hash(_AGREEMENT_TAG, encode(agreement)))


def encode_message(message: Message) -> bytes:
    """The bytes of `message` in its envelope, in the version it is written in.

    A hello is written in the lowest version it lists (every device reads a hello);
    a payment in its agreed version.
    """
    version = min(message.versions) if isinstance(message, Hello) else message.version
    return encode((MAGIC, version, message))


def decode_message(data: bytes) -> Message:
    """Read an offline message: envelope, version, then the message itself, strictly.

    Raises:
        OfflineMessageError: not an offline message, too large, malformed, or not
            canonical.
        OfflineVersionError: written in a protocol version this device does not speak.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise OfflineMessageError(
            f"an offline message is at most {MAX_MESSAGE_BYTES} bytes, got {len(data)}",
            size=len(data),
        )
    try:
        magic, version, _ = msgspec.msgpack.decode(data, type=tuple[str, int, msgspec.Raw])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise OfflineMessageError(f"not an offline message: {exc}") from None
    if magic != MAGIC:
        raise OfflineMessageError(f"not an offline message: magic {magic[:40]!r}")
    if version not in SUPPORTED_VERSIONS:
        raise OfflineVersionError(
            f"the message is of protocol version {version}; this device speaks "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}",
            version=version,
            supported=list(SUPPORTED_VERSIONS),
        )
    try:
        _, _, message = decode(data, tuple[str, int, Message])
    except Rejection as exc:  # malformed, or a value a protocol object refuses
        raise OfflineMessageError(f"a malformed offline message: {exc.message}") from None
    if isinstance(message, OfflinePayment) and message.version != version:
        raise OfflineVersionError(
            f"a payment of version {message.version} in an envelope of version {version}",
            version=message.version,
        )
    return message


def decode_hello(data: bytes) -> Hello:
    """Read a message that must be a `Hello`.

    Raises:
        OfflineMessageError: another message, or not a message.
        OfflineVersionError: as `decode_message`.
    """
    message = decode_message(data)
    if not isinstance(message, Hello):
        raise OfflineMessageError(f"expected a hello, got a {type(message).__name__}")
    return message


def decode_payment(data: bytes) -> OfflinePayment:
    """Read a message that must be an `OfflinePayment`.

    Raises:
        OfflineMessageError: another message, or not a message.
        OfflineVersionError: as `decode_message`.
    """
    message = decode_message(data)
    if not isinstance(message, OfflinePayment):
        raise OfflineMessageError(f"expected a payment, got a {type(message).__name__}")
    return message


def encode_root(root: RootProof) -> bytes:
    """The canonical bytes of a root proof, as a wallet stores it."""
    return encode(root)


def decode_root(data: bytes) -> RootProof:
    """A root proof from its canonical bytes.

    Raises:
        DecodeError: not the canonical bytes of a root proof.
    """
    return decode(data, RootProof)


def _hex_field(view: dict[str, Any], name: str) -> bytes:
    value = view.get(name)
    if not isinstance(value, str):
        raise OfflineMessageError(f"the inclusion view has no hex field {name!r}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise OfflineMessageError(f"the inclusion view's {name!r} is not hex") from None


# Any: the JSON document of `GET /v1/txs/{txid}/inclusion`; every field is checked here.
def root_from_inclusion(view: dict[str, Any]) -> RootProof:
    """The root proof in a node's inclusion view (`NodeClient.inclusion`).

    Nothing is verified here but the shape: `tally.wallet.offline.chain.verify_root` checks
    the certificate and the proof, as every device that receives the root does.

    Raises:
        OfflineMessageError: a field is missing, not hex, or not the encoding it should be.
    """
    index = view.get("index")
    if type(index) is not int or index < 0:
        raise OfflineMessageError("the inclusion view has no transaction index")
    try:
        return RootProof(
            tx=decode(_hex_field(view, "tx"), SignedTx),
            index=index,
            receipt=decode(_hex_field(view, "receipt"), Receipt),
            proof=decode(_hex_field(view, "proof"), TxInclusionProof),
            header=decode(_hex_field(view, "header"), Header),
            certificate=decode(_hex_field(view, "certificate"), CommitCertificate),
        )
    except Rejection as exc:
        raise OfflineMessageError(f"the inclusion view is malformed: {exc.message}") from None


prepare_decoders(tuple[str, int, Message], RootProof, TrustChain, Hello, OfflinePayment)
