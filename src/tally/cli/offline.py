"""`tally wallet offline`: pay and get paid with no network, then settle online.

Two devices exchange messages as files (any transport that carries bytes will do):

    merchant$ tally wallet offline hello --out hello.bin            # fresh key and nonce
    alice$    tally wallet offline pay --hello hello.bin --asset CNY --amount 35.20 -o pay.bin
    merchant$ tally wallet offline receive pay.bin                  # checked offline

or over a socket, one payment per connection (the payee answers with its verdict):

    merchant$ tally wallet offline receive --listen 127.0.0.1:7400
    alice$    tally wallet offline pay --connect 127.0.0.1:7400 --asset CNY --amount 35.20

or as QR codes: `hello --qr` prints the hello as a QR code, `--qr-png FILE` (of `hello` and
`pay`) writes one; a code carries the message's text form (`tally-offline:` and base64url),
which `pay --hello FILE` and `receive FILE` read as well as the raw bytes. A payment with
a long chain can be too large for a QR code: then use its file or the socket.

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
import segno
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
from tally.wallet.offline.chain import ReceivedPayment
from tally.wallet.offline.device import DEFAULT_UNLOCK_IN, OfflineWallet
from tally.wallet.offline.limits import DEFAULT_LIMITS, OfflineLimits
from tally.wallet.offline.messages import (
    Hello,
    OfflinePayment,
    decode_hello,
    decode_payment,
    encode_message,
)
from tally.wallet.offline.migration import migrate_wallet
from tally.wallet.offline.transport import (
    DEFAULT_TIMEOUT,
    message_bytes,
    parse_address,
    pay_over_socket,
    serve_once,
    to_text,
)
from tally.wallet.qr import qr_png, qr_terminal
from tally.wallet.wallet import Wallet

__all__ = ["app"]

app = typer.Typer(
    name="offline",
    help="Offline payments: fund a purse, pay and receive (files, QR codes, a socket), "
    "settle online.",
    no_args_is_help=True,
)

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
AcceptAssetsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--asset", help="Accept this asset; repeatable (default: all).", show_default=False
    ),
]
MaxAmountOption = Annotated[
    str | None,
    typer.Option("--max-amount", help="The most to accept in one payment.", show_default=False),
]
QrPngOption = Annotated[
    Path | None,
    typer.Option(
        "--qr-png",
        metavar="FILE",
        help="Also write the message as a QR code PNG.",
        show_default=False,
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", help="Seconds to wait for the other device, at each step."),
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


def _read_message(path: Path) -> bytes:
    """A message file's bytes: raw, or the text form a QR code carries."""
    return message_bytes(_read(path))


def _write_qr_png(path: Path, data: bytes, what: str, fallback: str) -> None:
    try:
        qr_png(to_text(data), path)
    except segno.DataOverflowError:
        raise CliError(
            f"the {what} is {len(data)} bytes, too large for a QR code; {fallback}"
        ) from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


def _address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise CliError(str(exc)) from None


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
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="FILE", help="Write the hello to FILE."),
    ] = None,
    qr: Annotated[
        bool, typer.Option("--qr", help="Print the hello as a QR code for the payer to scan.")
    ] = False,
    qr_png_file: QrPngOption = None,
    assets: AcceptAssetsOption = None,
    max_amount: MaxAmountOption = None,
    split: SplitOption = True,
    multi_hop: MultiHopOption = True,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a payee's hello (fresh key and nonce) for the payer's device (no node)."""
    if out is None and not qr and qr_png_file is None:
        raise CliError("give --out FILE, --qr or --qr-png FILE")
    with open_wallet(wallet_dir, password_file, None) as wallet, OfflineWallet.open(wallet) as dev:
        message = _make_hello(dev, assets, max_amount, split=split, multi_hop=multi_hop)
    data = encode_message(message)
    if out is not None:
        _write(out, data)
    if qr_png_file is not None:
        _write_qr_png(qr_png_file, data, "hello", "write it with --out FILE")
    terminal = qr_terminal(to_text(data)) if qr else None
    view = {
        "file": str(out) if out is not None else None,
        "qr_png": str(qr_png_file) if qr_png_file is not None else None,
        "text": to_text(data),
        **_hello_view(message),
    }
    if as_json:
        emit_json({**view, "qr": terminal} if qr else view)
        return
    if terminal is not None:
        typer.echo(terminal, nl=False)
    where = [str(p) for p in (out, qr_png_file) if p is not None] + (["the QR code"] if qr else [])
    console.print(f"hello in {' and '.join(where)}: hand it to the payer's device")


def _make_hello(
    dev: OfflineWallet,
    assets: list[str] | None,
    max_amount: str | None,
    *,
    split: bool,
    multi_hop: bool,
) -> Hello:
    return dev.hello(
        assets=[a.upper() for a in assets] if assets else None,
        split=split,
        multi_hop=multi_hop,
        max_amount=_optional_amount(max_amount),
    )


def _hello_view(message: Hello) -> dict[str, Any]:
    features = message.features
    return {
        "nonce": message.nonce.hex(),
        "receive_key": bytes(message.receive_key or b"").hex(),
        "assets": list(features.assets),
        **money(features.max_amount, "max_amount"),
        "split": features.split,
        "multi_hop": features.multi_hop,
    }


@app.command("pay")
@reports_errors
def pay(
    asset: AssetOption,
    amount: AmountOption,
    hello_file: Annotated[
        Path | None,
        typer.Option(
            "--hello",
            metavar="FILE",
            help="The payee's hello (raw, or the text of its QR code).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="FILE", help="Write the payment to FILE."),
    ] = None,
    qr_png_file: QrPngOption = None,
    connect: Annotated[
        str | None,
        typer.Option(
            "--connect",
            metavar="HOST:PORT",
            help="Pay the device listening there (`receive --listen`); no files.",
            show_default=False,
        ),
    ] = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    split: SplitOption = True,
    multi_hop: MultiHopOption = True,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pay the device whose hello this is, from the purse (no node).

    Through files: `--hello FILE --out FILE` (and `--qr-png FILE` for a QR code of the
    payment). Over a socket: `--connect HOST:PORT`, which prints the payee's answer.
    """
    if connect is not None:
        if hello_file is not None or out is not None or qr_png_file is not None:
            raise CliError(
                "--connect exchanges the hello and the payment itself: no --hello, "
                "--out or --qr-png"
            )
        _pay_over_socket(connect, asset, amount, timeout, split, multi_hop,
                         wallet_dir, password_file, as_json)  # fmt: skip
        return
    if hello_file is None or out is None:
        raise CliError("give --hello FILE and --out FILE, or --connect HOST:PORT")
    payee_hello = decode_hello(_read_message(hello_file))
    minor = parse_amount(amount)
    with open_wallet(wallet_dir, password_file, None) as wallet, OfflineWallet.open(wallet) as dev:
        payment = dev.pay(payee_hello, asset.upper(), minor, split=split, multi_hop=multi_hop)
        purse = _balance(dev)
    data = encode_message(payment)
    _write(out, data)
    if qr_png_file is not None:
        _write_qr_png(
            qr_png_file,
            data,
            "payment",
            f"hand over {out} or pay over a socket (--connect); the payment is made",
        )
    view = {"file": str(out), **_payment_view(payment), "purse": purse}
    if qr_png_file is not None:
        view["qr_png"] = str(qr_png_file)
    if as_json:
        emit_json(view)
        return
    console.print(
        f"paid {format_amount(payment.amount)} {payment.asset} offline; hand "
        f"{out if qr_png_file is None else qr_png_file} to the payee"
    )
    _print_balance(purse)


def _payment_view(payment: OfflinePayment) -> dict[str, Any]:
    return {
        "payment_id": tx_id(payment.chain.hops[-1].body).hex(),
        "asset": payment.asset,
        **money(int(payment.amount)),
        "payee": bytes(payment.payee).hex(),
        "hops": len(payment.chain.hops),
    }


def _pay_over_socket(
    connect: str,
    asset: str,
    amount: str,
    timeout: float,
    split: bool,
    multi_hop: bool,
    wallet_dir: Path | None,
    password_file: Path | None,
    as_json: bool,
) -> None:
    """`pay --connect`: read the hello, send the payment, print the payee's answer."""
    host, port = _address(connect)
    minor = parse_amount(amount)
    made: list[OfflinePayment] = []
    with open_wallet(wallet_dir, password_file, None) as wallet, OfflineWallet.open(wallet) as dev:

        def make_payment(hello_bytes: bytes) -> bytes:
            payee_hello = decode_hello(hello_bytes)
            made.append(
                dev.pay(payee_hello, asset.upper(), minor, split=split, multi_hop=multi_hop)
            )
            return encode_message(made[0])

        answer = _read_answer(pay_over_socket(host, port, make_payment, timeout))
        purse = _balance(dev)
    view = {**_payment_view(made[0]), "answer": answer, "purse": purse}
    if not answer.get("accepted"):
        raise CliError(
            f"the payee refused the payment: {answer.get('code')}: {answer.get('message')} "
            "(it is recorded here as sent; settle to learn its fate)"
        )
    if as_json:
        emit_json(view)
        return
    console.print(
        f"paid {format_amount(made[0].amount)} {made[0].asset} offline to {host}:{port}; "
        f"the payee kept it (settle before height {answer.get('settle_by')})"
    )
    _print_balance(purse)


def _read_answer(data: bytes) -> dict[str, Any]:
    try:
        answer = msgspec.json.decode(data)
    except msgspec.DecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise CliError("the payee's answer is not a JSON object")
    return answer


@app.command("receive")
@reports_errors
def receive(
    payment_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="[FILE]",
            help="The payment file (raw, or the text of its QR code).",
            show_default=False,
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            metavar="HOST:PORT",
            help="Instead of a file: send a fresh hello to one payer that connects, and "
            "answer it with the outcome.",
            show_default=False,
        ),
    ] = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    assets: AcceptAssetsOption = None,
    max_amount: MaxAmountOption = None,
    split: SplitOption = True,
    multi_hop: MultiHopOption = True,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a payment offline (chain, certificates, signatures, limits) and keep it.

    `--listen HOST:PORT` takes the `hello` options and serves one payer (`pay --connect`).
    """
    if (payment_file is None) == (listen is None):
        raise CliError("give a payment FILE, or --listen HOST:PORT")
    with open_wallet(wallet_dir, password_file, None) as wallet, OfflineWallet.open(wallet) as dev:
        if listen is not None:
            message = _make_hello(dev, assets, max_amount, split=split, multi_hop=multi_hop)
            received = _receive_over_socket(dev, listen, message, timeout, quiet=as_json)
        elif payment_file is not None:
            received = dev.receive(decode_payment(_read_message(payment_file)))
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


def _receive_over_socket(
    dev: OfflineWallet, listen: str, message: Hello, timeout: float, *, quiet: bool
) -> ReceivedPayment:
    """`receive --listen`: serve one payer; its payment is kept exactly as from a file."""
    host, port = _address(listen)
    outcome: list[ReceivedPayment] = []
    refusal: list[Rejection] = []

    def on_payment(data: bytes) -> bytes:
        try:
            received = dev.receive(decode_payment(data))
        except Rejection as exc:
            refusal.append(exc)
            return msgspec.json.encode({"accepted": False, **exc.to_dict()})
        outcome.append(received)
        return msgspec.json.encode(
            {
                "accepted": True,
                "payment_id": received.payment_id.hex(),
                "asset": received.asset,
                "amount": received.amount,
                "settle_by": received.deadline,
            }
        )

    def on_listening(address: tuple[str, int]) -> None:
        if not quiet:
            console.print(f"waiting for a payer on {address[0]}:{address[1]} (pay --connect)")

    serve_once(host, port, encode_message(message), on_payment, timeout, on_listening=on_listening)
    if refusal:
        raise refusal[0]
    return outcome[0]


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
