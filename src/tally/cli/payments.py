"""`tally issue` and `tally transfer`: build, sign and send the transactions that move money."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated, Any

import typer

from tally.cli.amounts import format_amount, parse_amount
from tally.cli.context import (
    ApiOption,
    JsonOption,
    KeyOption,
    NetworkOption,
    connect,
    key_address,
    node_status,
    open_network,
    read_signer,
    resolve_lock,
)
from tally.cli.network import Network
from tally.cli.output import CliError, console, emit_json, reports_errors
from tally.cli.selection import select_coins
from tally.cli.transactions import WaitOption, report_result
from tally.client.builders import TransferOutput, make_issue, make_transfer
from tally.client.node_client import NodeClient
from tally.client.wire import coins_from_json
from tally.model.coin import Coin
from tally.model.encoding import encode, tx_id
from tally.model.lock import KeyLock
from tally.model.types import CoinId, PublicKey

__all__ = ["issue", "transfer"]

DEFAULT_VALID_FOR = 100
"""Blocks past the current height a new transaction stays valid (`--valid-for`)."""

AmountArgument = Annotated[
    str,
    typer.Argument(
        metavar="AMOUNT",
        help="Minor units (1250), or major units with up to 2 decimals (12.50).",
        show_default=False,
    ),
]
AssetArgument = Annotated[
    str, typer.Argument(metavar="ASSET", help="The asset's code, such as CNY.")
]
ToOption = Annotated[
    str,
    typer.Option(
        "--to",
        help="Recipient: a key file, a public key (64 hex digits), or an address that holds "
        "coins already.",
        show_default=False,
    ),
]
ValidForOption = Annotated[
    int,
    typer.Option(
        "--valid-for", min=1, help="Blocks past the current height the transaction stays valid."
    ),
]


def _valid_until(client: NodeClient | None, network: Network, valid_for: int) -> int:
    if client is None:
        raise CliError("offline signing needs --valid-until HEIGHT")
    height = node_status(client, network)["height"]
    if not isinstance(height, int):
        raise CliError(f"the node at {client.base_url} reports no height")
    return height + valid_for


@reports_errors
def issue(
    amount: AmountArgument,
    asset: AssetArgument,
    to: ToOption,
    reserve_ref: Annotated[
        str | None,
        typer.Option(
            "--reserve-ref",
            help="Hash of the reserve's freeze certificate, 64 hex digits (default: zeros, "
            "as dev networks have no reserve service).",
            show_default=False,
        ),
    ] = None,
    key: KeyOption = None,
    nonce: Annotated[
        int | None,
        typer.Option(help="Makes the issuance unique (default: random).", show_default=False),
    ] = None,
    valid_for: ValidForOption = DEFAULT_VALID_FOR,
    wait: WaitOption = True,
    network: NetworkOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue new coins of ASSET, signed by its issuer (by default the network's issuer key)."""
    net = open_network(network)
    asset = asset.upper()
    minor = parse_amount(amount)
    signer = read_signer(key or net.issuer_key(asset), "an issuance")
    try:
        reference = bytes.fromhex(reserve_ref) if reserve_ref is not None else bytes(32)
    except ValueError:
        raise CliError(f"--reserve-ref must be 64 hex digits, got {reserve_ref!r}") from None
    with connect(net, api) as client:
        lock = resolve_lock(to, net, client)
        tx = make_issue(
            asset,
            signer,
            [(lock, minor)],
            reference,
            nonce if nonce is not None else secrets.randbits(63),
            _valid_until(client, net, valid_for),
            net.chain_id,
        )
        result = client.submit(tx, wait=wait)
    if not as_json and result.get("status") != "rejected":
        console.print(f"issue of [bold]{format_amount(minor)} {asset}[/bold]")
    report_result(result, as_json, "issuance")


def _read_coins_file(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise CliError(f"{path} is not JSON: {exc}") from None
    if isinstance(document, list):
        document = {"coins": document}
    if not isinstance(document, dict):
        raise CliError(f"{path}: expected the output of `tally balance --json`")
    return document


def _write_new(path: Path, data: bytes) -> None:
    try:
        with path.open("xb") as out:
            out.write(data)
    except FileExistsError:
        raise CliError(f"{path} exists; choose another file for the signed transaction") from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


@reports_errors
def transfer(
    amount: AmountArgument,
    asset: AssetArgument,
    to: ToOption,
    key: KeyOption = None,
    sign_only: Annotated[
        Path | None,
        typer.Option(
            "--sign-only",
            help="Write the signed transaction to this file instead of sending it "
            "(send it later with `tally tx submit`).",
            show_default=False,
        ),
    ] = None,
    coins_file: Annotated[
        Path | None,
        typer.Option(
            "--coins",
            help="Spend from this coin list (`tally balance --json` output) instead of asking "
            "the node; with --valid-until, signs without a node.",
            show_default=False,
        ),
    ] = None,
    valid_until: Annotated[
        int | None,
        typer.Option(
            "--valid-until",
            min=1,
            help="Last block height for the transaction (default: current + --valid-for).",
            show_default=False,
        ),
    ] = None,
    valid_for: ValidForOption = DEFAULT_VALID_FOR,
    wait: WaitOption = True,
    network: NetworkOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pay AMOUNT of ASSET from the --key holder's coins; the change goes back to them.

    Spends as few coins as possible, an exact coin first.
    """
    net = open_network(network)
    asset = asset.upper()
    minor = parse_amount(amount)
    signer = read_signer(key, "a transfer")
    own_lock = KeyLock(key=PublicKey(signer.public_key))
    address = key_address(signer, net.hrp)
    offline = coins_file is not None and valid_until is not None and sign_only is not None
    client = None if offline else connect(net, api)
    try:
        recipient = resolve_lock(to, net, client)
        listing = (
            _read_coins_file(coins_file)
            if coins_file is not None
            else _require(client).address_coins(address, limit=10_000)
        )
        chosen = _pick_coins(listing, own_lock, address, asset, minor, net.params().max_inputs)
        change = sum(coin.amount for _, coin in chosen) - minor
        outputs: list[TransferOutput] = [(recipient, asset, minor)]
        if change:
            outputs.append((own_lock, asset, change))
        tx = make_transfer(
            [(cid, signer) for cid, _ in chosen],
            outputs,
            valid_until if valid_until is not None else _valid_until(client, net, valid_for),
            net.chain_id,
        )
        if sign_only is not None:
            _write_new(sign_only, encode(tx))
            txid = tx_id(tx.body).hex()
            if as_json:
                emit_json({"txid": txid, "file": str(sign_only), "inputs": len(chosen)})
            else:
                console.print(
                    f"signed transfer of {format_amount(minor)} {asset} written to {sign_only}"
                    f"\ntxid {txid}\nsend it with: tally tx submit {sign_only}"
                )
            return
        result = _require(client).submit(tx, wait=wait)
    finally:
        if client is not None:
            client.close()
    if not as_json and result.get("status") != "rejected":
        console.print(
            f"transfer of [bold]{format_amount(minor)} {asset}[/bold] from {len(chosen)} coin(s)"
            + (f", change {format_amount(change)}" if change else "")
        )
    report_result(result, as_json, "transfer")


def _pick_coins(
    listing: dict[str, Any],
    own_lock: KeyLock,
    address: str,
    asset: str,
    amount: int,
    max_inputs: int,
) -> list[tuple[CoinId, Coin]]:
    coins = [
        (cid, coin)
        for cid, coin in coins_from_json(listing)
        if coin.asset == asset and coin.lock == own_lock
    ]
    held = sum(coin.amount for _, coin in coins)
    if held < amount:
        raise CliError(
            f"{address} holds {format_amount(held)} {asset} in {len(coins)} coin(s), "
            f"less than {format_amount(amount)}"
        )
    return select_coins(coins, amount, max_inputs)


def _require(client: NodeClient | None) -> NodeClient:
    if client is None:  # unreachable: offline signing neither lists coins nor submits
        raise CliError("this needs the node; drop --coins or --valid-until")
    return client
