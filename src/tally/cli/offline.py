"""`tally wallet offline`: pay and get paid with no network, then settle online.

Two devices exchange messages as files (any transport that carries bytes will do):

    merchant$ tally wallet offline hello --out hello.bin            # fresh key and nonce
    alice$    tally wallet offline pay --hello hello.bin --asset CNY --amount 35.20 -o pay.bin
    merchant$ tally wallet offline receive pay.bin                  # checked offline

`hello`, `pay`, `receive` and `status` contact no node. `fund` (move coins into the offline
purse), `settle` (submit every chain the device holds, fetch double-spend proofs), `unlock`
(purse coins past their unlock height back into ordinary coins) and `migrate` (settle, then
sweep everything to another wallet) need the node. Before a device receives offline money it
needs the network's genesis, against whose consortium members it checks certificates:
`tally wallet offline setup --genesis genesis.bin`, which also sets the device's limits.

Every command takes the wallet options of `tally wallet` (`--wallet`, `--password-file`);
amounts are read as `parse_amount` reads them (`35.20` or `3520`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from tally.cli.amounts import format_amount, parse_amount
from tally.cli.context import JsonOption
from tally.cli.output import CliError, console, details_grid, emit_json, money, reports_errors
from tally.cli.wallet import (
    AmountOption,
    AssetOption,
    NodeOption,
    PasswordFileOption,
    WalletOption,
    open_wallet,
)
from tally.model.encoding import decode, tx_id
from tally.model.genesis import Genesis
from tally.model.rejection import Rejection
from tally.services.operator.client import OperatorClient
from tally.wallet.offline.device import DEFAULT_UNLOCK_IN, OfflineWallet
from tally.wallet.offline.limits import DEFAULT_LIMITS, OfflineLimits
from tally.wallet.offline.messages import decode_hello, decode_payment, encode_message
from tally.wallet.offline.migration import migrate_wallet
from tally.wallet.wallet import Wallet

__all__ = ["app"]

app = typer.Typer(
    name="offline",
    help="Offline payments: fund a purse, pay and receive through files, settle online.",
    no_args_is_help=True,
)

OutOption = Annotated[
    Path,
    typer.Option("--out", "-o", metavar="FILE", help="Write the message to FILE."),
]
SplitOption = Annotated[
    bool,
    typer.Option("--split/--no-split", help="Pay (or accept) a coin larger than the amount."),
]
MultiHopOption = Annotated[
    bool,
    typer.Option(
        "--multi-hop/--single-hop", help="Pay (or accept) money received offline, not yet settled."
    ),
]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


def _optional_amount(text: str | None) -> int | None:
    return parse_amount(text) if text is not None else None


@app.command("setup")
@reports_errors
def setup(
    genesis_file: Annotated[
        Path,
        typer.Option(
            "--genesis",
            metavar="FILE",
            help="The network's genesis (genesis.bin): certificates are checked against its "
            "members.",
        ),
    ],
    max_payment: Annotated[
        str | None,
        typer.Option("--max-payment", help="The largest offline payment.", show_default=False),
    ] = None,
    max_unsettled: Annotated[
        str | None,
        typer.Option(
            "--max-unsettled", help="The most held unsettled, each way.", show_default=False
        ),
    ] = None,
    max_hops: Annotated[
        int | None,
        typer.Option("--max-hops", help="The longest chain accepted.", show_default=False),
    ] = None,
    expiry_margin: Annotated[
        int | None,
        typer.Option(
            "--expiry-margin",
            help="Blocks left to settle that a payment must leave.",
            show_default=False,
        ),
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(
            "--operator",
            metavar="URL",
            help="Take the limits of this wallet's tier from its operator (options still win).",
            show_default=False,
        ),
    ] = None,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Keep the network's genesis as trust anchor and set this device's offline limits."""
    try:
        genesis = decode(_read(genesis_file), Genesis)
    except Rejection as exc:
        raise CliError(f"{genesis_file} is not a genesis file: {exc.message}") from None
    with open_wallet(wallet_dir, password_file, None) as wallet, OfflineWallet.open(wallet) as dev:
        current = dev.limits if dev.store.genesis() is not None else DEFAULT_LIMITS
        if operator is not None:
            current = _tier_limits(operator, wallet, current)
        limits = OfflineLimits(
            max_payment=_optional_amount(max_payment) or current.max_payment,
            max_unsettled=_optional_amount(max_unsettled) or current.max_unsettled,
            max_hops=max_hops if max_hops is not None else current.max_hops,
            expiry_margin=expiry_margin if expiry_margin is not None else current.expiry_margin,
        )
        dev.setup(genesis, limits)
        view = {"chain_id": genesis.chain_id, "members": len(genesis.members), **_limits(limits)}
    if as_json:
        emit_json(view)
        return
    grid = details_grid()
    for name, value in view.items():
        grid.add_row(name.replace("_", " "), str(value))
    console.print(grid)


def _tier_limits(operator: str, wallet: Wallet, current: OfflineLimits) -> OfflineLimits:
    """The offline limits the operator's tier configuration gives this wallet's customer."""
    with OperatorClient(operator, key=wallet.identity_key) as client:
        tier = client.me()["limits"]
    return msgspec.structs.replace(
        current,
        max_payment=int(tier["offline_payment_limit"]),
        max_unsettled=int(tier["offline_unsettled_limit"]),
        max_hops=int(tier["offline_hops"]),
    )


def _limits(limits: OfflineLimits) -> dict[str, Any]:
    return {
        **money(limits.max_payment, "max_payment"),
        **money(limits.max_unsettled, "max_unsettled"),
        "max_hops": limits.max_hops,
        "expiry_margin": limits.expiry_margin,
    }


@app.command("fund")
@reports_errors
def fund(
    asset: AssetOption,
    amount: Annotated[
        str | None,
        typer.Option(
            "--amount", help="How much to move into the purse (split 1-2-5).", show_default=False
        ),
    ] = None,
    coins: Annotated[
        list[str] | None,
        typer.Option(
            "--coin", help="Make exactly this purse coin; repeatable.", show_default=False
        ),
    ] = None,
    unlock_in: Annotated[
        int,
        typer.Option("--unlock-in", help="Blocks before the purse coins may be spent online."),
    ] = DEFAULT_UNLOCK_IN,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move coins into the offline purse (online): offline-locked coins with their proof."""
    if (amount is None) == (not coins):
        raise CliError("give --amount, or one --coin per purse coin")
    denominations = [parse_amount(text) for text in coins] if coins else None
    with open_wallet(wallet_dir, password_file, node) as wallet, OfflineWallet.open(wallet) as dev:
        result = dev.fund(
            asset.upper(),
            _optional_amount(amount),
            denominations=denominations,
            unlock_in=unlock_in,
        )
        view = {**result, "purse": _balance(dev)}
    if as_json:
        emit_json(view)
        return
    console.print(
        f"funded {len(result['coin_ids'])} purse coins in {result['txid']} (block "
        f"{result['height']}); they unlock at height {result['unlock_height']}"
    )
    _print_balance(view["purse"])


def _balance(dev: OfflineWallet) -> dict[str, Any]:
    return {asset: money(total) for asset, total in sorted(dev.balance().items())}


def _print_balance(purse: dict[str, Any]) -> None:
    if not purse:
        console.print("the purse is empty")
        return
    for asset, value in purse.items():
        console.print(f"purse: {value['amount_formatted']} {asset}")


@app.command("hello")
@reports_errors
def hello(
    out: OutOption,
    assets: Annotated[
        list[str] | None,
        typer.Option(
            "--asset", help="Accept this asset; repeatable (default: all).", show_default=False
        ),
    ] = None,
    max_amount: Annotated[
        str | None,
        typer.Option("--max-amount", help="The most to accept in one payment.", show_default=False),
    ] = None,
    split: SplitOption = True,
    multi_hop: MultiHopOption = True,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a payee's hello (fresh key and nonce) for the payer's device (no node)."""
    with open_wallet(wallet_dir, password_file, None) as wallet, OfflineWallet.open(wallet) as dev:
        message = dev.hello(
            assets=[a.upper() for a in assets] if assets else None,
            split=split,
            multi_hop=multi_hop,
            max_amount=_optional_amount(max_amount),
        )
    _write(out, encode_message(message))
    features = message.features
    view = {
        "file": str(out),
        "nonce": message.nonce.hex(),
        "receive_key": bytes(message.receive_key or b"").hex(),
        "assets": list(features.assets),
        **money(features.max_amount, "max_amount"),
        "split": features.split,
        "multi_hop": features.multi_hop,
    }
    if as_json:
        emit_json(view)
        return
    console.print(f"hello written to {out}: hand it to the payer's device")


@app.command("pay")
@reports_errors
def pay(
    hello_file: Annotated[Path, typer.Option("--hello", metavar="FILE", help="The payee's hello.")],
    asset: AssetOption,
    amount: AmountOption,
    out: OutOption,
    split: SplitOption = True,
    multi_hop: MultiHopOption = True,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pay the device whose hello this is, from the purse, into a payment file (no node)."""
    payee_hello = decode_hello(_read(hello_file))
    minor = parse_amount(amount)
    with open_wallet(wallet_dir, password_file, None) as wallet, OfflineWallet.open(wallet) as dev:
        payment = dev.pay(payee_hello, asset.upper(), minor, split=split, multi_hop=multi_hop)
        purse = _balance(dev)
    _write(out, encode_message(payment))
    hop = payment.chain.hops[-1]
    view = {
        "file": str(out),
        "payment_id": tx_id(hop.body).hex(),
        "asset": payment.asset,
        **money(int(payment.amount)),
        "payee": bytes(payment.payee).hex(),
        "hops": len(payment.chain.hops),
        "purse": purse,
    }
    if as_json:
        emit_json(view)
        return
    console.print(
        f"paid {format_amount(payment.amount)} {payment.asset} offline; hand {out} to the payee"
    )
    _print_balance(purse)


@app.command("receive")
@reports_errors
def receive(
    payment_file: Annotated[Path, typer.Argument(metavar="FILE", help="The payment file.")],
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a payment offline (chain, certificates, signatures, limits) and keep it."""
    payment = decode_payment(_read(payment_file))
    with open_wallet(wallet_dir, password_file, None) as wallet, OfflineWallet.open(wallet) as dev:
        received = dev.receive(payment)
    view = {
        "payment_id": received.payment_id.hex(),
        "asset": received.asset,
        **money(received.amount),
        "payer": bytes(received.payer).hex(),
        "coin_id": received.coin_id.hex(),
        "hops": len(received.chain.hops),
        "settle_by": received.deadline,
    }
    if as_json:
        emit_json(view)
        return
    console.print(
        f"received {format_amount(received.amount)} {received.asset} offline "
        f"({view['hops']} hops); settle before height {received.deadline}"
    )


@app.command("settle")
@reports_errors
def settle(
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit every chain this device holds, then sync (online); double spends get a proof."""
    with open_wallet(wallet_dir, password_file, node) as wallet, OfflineWallet.open(wallet) as dev:
        report = dev.settle()
        view = {**report.to_json(), "purse": _balance(dev)}
    if as_json:
        emit_json(view)
        return
    console.print(
        f"settled {len(report.settled)}, double spends {len(report.double_spends)}, "
        f"failed {len(report.failed)}, still unsettled {len(report.unsettled)}"
    )
    for entry in view["double_spends"]:
        console.print(f"double spend by {entry['owner']}: proof {entry['proof']}")
    _print_balance(view["purse"])


@app.command("unlock")
@reports_errors
def unlock(
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move purse coins past their unlock height back into ordinary coins (online)."""
    with open_wallet(wallet_dir, password_file, node) as wallet, OfflineWallet.open(wallet) as dev:
        results = dev.unlock_expired()
    if as_json:
        emit_json({"unlocked": results})
        return
    console.print(f"{len(results)} unlock transactions")


@app.command("status")
@reports_errors
def status(
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the purse, the payments made and received, and their settlement (no node)."""
    with open_wallet(wallet_dir, password_file, None) as wallet, OfflineWallet.open(wallet) as dev:
        view = dev.status()
    if as_json:
        emit_json(view)
        return
    console.print(f"synced to height {view['height']}; network {view['chain_id'] or 'not set up'}")
    for asset, total in view["balance"].items():
        console.print(f"purse: {format_amount(total)} {asset}")
    table = Table("payment", "direction", "amount", "hops", "settle by", "status")
    for payment in view["payments"]:
        table.add_row(
            payment["payment_id"][:16],
            payment["direction"],
            f"{format_amount(payment['amount'])} {payment['asset']}",
            str(payment["hops"]),
            str(payment["deadline"]),
            payment["status"] + (f" ({payment['code']})" if payment["code"] else ""),
        )
    console.print(table)


@app.command("migrate")
@reports_errors
def migrate(
    to_dir: Annotated[
        Path,
        typer.Option("--to", metavar="DIR", help="The new wallet (made with `wallet create`)."),
    ],
    to_password_file: Annotated[
        Path | None,
        typer.Option(
            "--to-password-file",
            metavar="FILE",
            help="The new wallet's password file (default: the old wallet's password).",
            show_default=False,
        ),
    ] = None,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Settle everything offline, then sweep every coin to the new wallet's keys (online)."""
    with (
        open_wallet(wallet_dir, password_file, node) as old,
        OfflineWallet.open(old) as source,
        open_wallet(to_dir, to_password_file or password_file, node) as new,
        OfflineWallet.open(new) as target,
    ):
        report = migrate_wallet(source, target)
        view = {**report.to_json(), "purse": _balance(target)}
    if as_json:
        emit_json(view)
        return
    console.print(
        f"settled {len(report.settlement.settled)} offline payments, then moved "
        + (
            ", ".join(f"{format_amount(t)} {a}" for a, t in sorted(report.moved.items()))
            or "nothing"
        )
        + f" in {len(report.swept)} transactions"
    )
