"""Reading the node's JSON views back into protocol objects.

The API shows coins with hex ids, amounts as decimal strings and locks by kind
(`tally.node.views`). A client that wants to spend a coin needs the `Coin` itself, whose
lock must be exact: these functions rebuild it and refuse anything that does not fit.
"""

from __future__ import annotations

from typing import Any

from tally.model.coin import Coin
from tally.model.lock import EscrowLock, KeyLock, Lock, MultiLock, OfflineLock
from tally.model.types import Amount, AssetCode, CoinId, Height, PublicKey

__all__ = ["WireError", "lock_from_json", "coin_from_json", "coins_from_json"]


class WireError(ValueError):
    """A JSON document is not the view the API promises."""


def _key(value: object) -> PublicKey:
    if not isinstance(value, str):
        raise WireError(f"a key is 64 hex digits, got {value!r}")
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise WireError(f"a key is 64 hex digits, got {value[:80]!r}") from None
    if len(key) != 32:
        raise WireError(f"a key is 32 bytes, got {len(key)}")
    return PublicKey(key)


# Any: a JSON document as the API returns it; every field is checked before use.
def lock_from_json(view: dict[str, Any]) -> Lock:
    """The lock of an API lock view (`{"kind": "key", "key": ...}` and so on).

    Kinds: `key` (`key`), `multisig` (`threshold`, `keys`), `escrow` (`payer`, `payee`,
    `expiry`) and `offline` (`owner`, `unlock_height`).

    Raises:
        WireError: an unknown kind or a malformed field.
    """
    kind = view.get("kind")
    try:
        if kind == "key":
            return KeyLock(key=_key(view["key"]))
        if kind == "multisig":
            return MultiLock(
                threshold=int(view["threshold"]), keys=tuple(_key(k) for k in view["keys"])
            )
        if kind == "escrow":
            return EscrowLock(
                payer=_key(view["payer"]),
                payee=_key(view["payee"]),
                expiry=Height(int(view["expiry"])),
            )
        if kind == "offline":
            return OfflineLock(
                owner=_key(view["owner"]),
                unlock_height=Height(int(view["unlock_height"])),
            )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"malformed {kind} lock: {exc!r}") from None
    raise WireError(f"unknown lock kind {kind!r}")


def coin_from_json(view: dict[str, Any]) -> tuple[CoinId, Coin]:
    """The id and coin of an API coin view.

    Raises:
        WireError: a malformed field.
        Rejection: an amount out of range or a malformed asset code (from `Coin`).
    """
    try:
        cid = bytes.fromhex(view["coin_id"])
        amount = int(view["amount"])
        asset = str(view["asset"])
        lock = lock_from_json(view["lock"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"malformed coin: {exc!r}") from None
    if len(cid) != 32:
        raise WireError(f"a coin id is 32 bytes, got {len(cid)}")
    return CoinId(cid), Coin(asset=AssetCode(asset), amount=Amount(amount), lock=lock)


def coins_from_json(document: dict[str, Any]) -> list[tuple[CoinId, Coin]]:
    """The coins of an address listing (`GET /v1/addresses/{address}/coins`).

    Raises:
        WireError: the document or one of its coins is malformed.
    """
    coins = document.get("coins")
    if not isinstance(coins, list):
        raise WireError('an address listing has a "coins" list')
    return [coin_from_json(view) for view in coins]
