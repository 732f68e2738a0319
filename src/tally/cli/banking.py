"""A customer and its operator: `tally wallet enroll|me|load|unload|hosted-pay`.

These commands join the `tally wallet` group (`register_commands(wallet.app)`). A
self-custody customer's wallet (`--wallet`, `--password-file`, as for every wallet command)
signs each request to the operator with its identity key; a hosted customer, who has no
wallet of its own, gives the bearer token the operator printed once (`--token` or
`--token-file`) instead. The operator is `--operator URL` (default `$TALLY_OPERATOR_URL`,
else http://127.0.0.1:7547).

- `enroll` prints the wallet's identity key, which the operator's staff register with
  `tally operator add-customer --wallet-key`, and whether they have done so.
- `me` shows the customer's tier, limits, deposit and the balance the operator knows of.
- `load` moves money from the deposit account to a fresh receive key of the wallet
  (registered with the operator first); the wallet syncs after.
- `unload` pays coins of the wallet to the operator's float key (read from its
  `GET /v1/info`); the operator submits the payment and credits the deposit.
- `hosted-pay` pays from a hosted wallet to a public key.

Each movement carries an idempotency key (`--idempotency-key`, else a fresh one that is
printed). Repeating a command with the same key never moves money twice: `load` sends the
same receive key again and `unload` the same signed transaction, both found through the
customer's history at the operator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from tally.cli.amounts import format_amount, parse_amount
from tally.cli.context import JsonOption
from tally.cli.operator import OPERATOR, movement_view, print_movement
from tally.cli.output import (
    CliError,
    console,
    details_grid,
    emit_json,
    fail,
    money,
    money_fields,
    reports_errors,
)
from tally.cli.services import (
    AmountOption,
    idempotency_option,
    new_idempotency_key,
    read_token_file,
)
from tally.cli.wallet import (
    NodeOption,
    PasswordFileOption,
    WalletOption,
    open_wallet,
    parse_public_key,
)
from tally.model.encoding import tx_id
from tally.services.common.client import ServiceCallError
from tally.services.operator.client import OperatorClient
from tally.wallet.wallet import Wallet

__all__ = ["register_commands", "enroll", "me", "load", "unload", "hosted_pay"]

_ME_AMOUNTS: Final = ("deposit", "balance", "pending_loads")

# -- options -----------------------------------------------------------------------------------

OperatorOption = Annotated[str | None, OPERATOR.url_option("--operator", from_dir=False)]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        help="A hosted customer's token, instead of a wallet (--token-file keeps it out of "
        "the process list).",
        show_default=False,
    ),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        metavar="FILE",
        help="Read a hosted customer's token from FILE, instead of a wallet.",
        show_default=False,
    ),
]
IdempotencyOption = Annotated[str | None, idempotency_option("a movement")]


# -- helpers -----------------------------------------------------------------------------------


def _token(token: str | None, token_file: Path | None) -> str | None:
    if token is not None and token_file is not None:
        raise CliError("give --token or --token-file, not both")
    if token_file is not None:
        return read_token_file(token_file, "customer token")
    if token is not None and not token.strip():
        raise CliError("--token is empty")
    return token.strip() if token is not None else None


@contextmanager
def _signed_in(
    url: str, wallet_dir: Path | None, password_file: Path | None, node: str | None
) -> Iterator[tuple[Wallet, OperatorClient]]:
    """The customer's wallet, and a client of the operator that signs with its identity key."""
    with (
        open_wallet(wallet_dir, password_file, node) as wallet,
        OperatorClient(url, key=wallet.identity_key) as client,
    ):
        yield wallet, client


def _info(operator: OperatorClient, wallet: Wallet) -> dict[str, Any]:  # Any: JSON
    """The operator's public description, after checking it serves the wallet's chain."""
    info = operator.info()
    if info.get("chain_id") != wallet.chain_id:
        raise CliError(
            f"the operator at {operator.base_url} serves chain {info.get('chain_id')!r}, but "
            f"the wallet is for {wallet.chain_id!r}"
        )
    return info


def _earlier(
    operator: OperatorClient, key: str, kind: str, amount: int
) -> dict[str, Any] | None:  # Any: JSON
    """The customer's earlier movement under idempotency key `key`, if there is one.

    Raises:
        CliError: the key was used for another kind of movement or another amount.
    """
    for entry in operator.history():
        if entry.get("idempotency_key") != key:
            continue
        used = int(entry.get("amount") or 0)  # an integer or a decimal string
        if entry.get("kind") != kind or used != amount:
            raise CliError(
                f"idempotency key {key!r} was used for a {entry.get('kind')} of "
                f"{format_amount(used)}, not a {kind} of {format_amount(amount)}; repeat that "
                "one or choose another key"
            )
        return entry
    return None


def _hosted(
    url: str, bearer: str, key: str, move: Callable[[OperatorClient], dict[str, Any]]
) -> dict[str, Any]:  # Any: JSON
    """A hosted customer's movement: `move` called with the token; its view."""
    with OperatorClient(url, token=bearer) as client:
        view = movement_view(move(client), key)
    view["operator"] = url
    return view


def _settle(view: dict[str, Any], wallet: Wallet, asset: str, url: str) -> None:  # Any: JSON
    """After a self-custody movement: sync the wallet if it is done, and add its balance."""
    if view.get("status") == "done":
        wallet.sync()
    view.update(
        operator=url,
        **money(wallet.balance(asset)[asset], "wallet_balance"),
    )


def _finish(view: dict[str, Any], as_json: bool, done: str | None = None) -> None:  # Any: JSON
    """Show the movement; exit with status 1 if it failed, else say `done` to people."""
    if as_json:
        emit_json(view)
    else:
        print_movement(view)
    if view.get("status") == "failed":
        fail(f"the {view.get('kind', 'movement')} failed (journal entry {view.get('journal_id')})")
    if done is not None and not as_json and view.get("status") == "done":
        console.print(done)


# -- commands ----------------------------------------------------------------------------------


@reports_errors
def enroll(
    operator: OperatorOption = None,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the wallet's identity key for the operator, and whether it is a customer yet.

    The operator's staff add the customer with `tally operator add-customer --name NAME
    --tier N --wallet-key KEY`; after that the wallet can `load`, `unload` and see `me`.
    """
    url = OPERATOR.url(operator)
    with _signed_in(url, wallet_dir, password_file, None) as (wallet, client):
        identity = wallet.identity_key.public_key.hex()
        _info(client, wallet)
        try:
            document: dict[str, Any] | None = client.me()
        except ServiceCallError as exc:
            if exc.code != "auth.invalid":
                raise
            document = None
    view: dict[str, Any] = {
        "operator": url,
        "identity_key": identity,
        "enrolled": document is not None,
        "customer_id": None if document is None else document["customer_id"],
        "tier": None if document is None else document["tier"],
    }
    if as_json:
        emit_json(view)
        return
    console.print(f"identity key {identity}")
    if document is None:
        console.print(
            f"not a customer of {url} yet: the operator's staff run [bold]tally operator "
            f"add-customer --name NAME --tier N --wallet-key {identity}[/bold]"
        )
    else:
        console.print(
            f"customer {document['customer_id']} ({document['name']}) of {url}, "
            f"tier {document['tier']}"
        )


@reports_errors
def me(
    operator: OperatorOption = None,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what the operator holds for you: tier, limits, deposit and wallet balance."""
    url = OPERATOR.url(operator)
    bearer = _token(token, token_file)
    if bearer is not None:
        with OperatorClient(url, token=bearer) as hosted_client:
            document = hosted_client.me()
    else:
        with _signed_in(url, wallet_dir, password_file, None) as (_, client):
            document = client.me()
    view = money_fields(document, _ME_AMOUNTS)
    if isinstance(document.get("limits"), dict):
        view["limits"] = money_fields(
            document["limits"],
            ("balance_limit", "payment_limit", "offline_payment_limit", "offline_unsettled_limit"),
        )
    if as_json:
        emit_json(view)
        return
    grid = details_grid()
    grid.add_row("customer", f"{view['customer_id']} ({view['name']})")
    grid.add_row("wallet", "hosted by the operator" if view["hosted"] else "self-custody")
    grid.add_row("tier", str(view["tier"]))
    limits = view.get("limits")
    if isinstance(limits, dict):
        grid.add_row("balance limit", limits["balance_limit_formatted"])
        grid.add_row("payment limit", limits["payment_limit_formatted"])
        if "offline_payment_limit_formatted" in limits:
            grid.add_row(
                "offline",
                f"{limits['offline_payment_limit_formatted']} a payment, "
                f"{limits['offline_unsettled_limit_formatted']} unsettled, "
                f"{limits['offline_hops']} hops",
            )
    grid.add_row("deposit", f"{view['deposit_formatted']} {view['asset']}")
    grid.add_row("wallet balance", f"{view['balance_formatted']} {view['asset']}")
    if view.get("pending_loads"):
        grid.add_row("loads pending", view["pending_loads_formatted"])
    if view.get("hosted_key"):
        grid.add_row("hosted key", str(view["hosted_key"]))
    console.print(grid)


@reports_errors
def load(
    amount: AmountOption,
    idempotency_key: IdempotencyOption = None,
    operator: OperatorOption = None,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move money from your deposit account at the operator into your wallet.

    The coins go to a fresh receive key of the wallet (a hosted wallet: to its hosted key);
    the wallet syncs after. Refused over the tier's balance limit (`limit.exceeded`) or
    beyond the deposit (`funds.insufficient`).
    """
    minor = parse_amount(amount)
    url = OPERATOR.url(operator)
    bearer = _token(token, token_file)
    key = idempotency_key or new_idempotency_key("load")
    if bearer is not None:
        _finish(_hosted(url, bearer, key, lambda client: client.load(minor, key)), as_json)
        return
    with _signed_in(url, wallet_dir, password_file, node) as (wallet, client):
        asset = str(_info(client, wallet)["asset"])
        earlier = _earlier(client, key, "load", minor) if idempotency_key else None
        if earlier is not None and earlier.get("to"):
            receive = str(earlier["to"])
            known = wallet.store.keys()  # the wallet's receive keys, not a dict's keys
            if bytes.fromhex(receive) not in known:
                raise CliError(
                    f"idempotency key {key!r} loaded to {receive}, which is not this wallet's"
                )
        else:
            receive = wallet.new_receive_key().public_key.hex()
            client.register_keys([receive])
        view = movement_view(client.load(minor, key, to=receive), key)
        view["address"] = wallet.address(bytes.fromhex(receive))
        _settle(view, wallet, asset, url)
    _finish(view, as_json, f"wallet balance {view['wallet_balance_formatted']} {asset}")


@reports_errors
def unload(
    amount: AmountOption,
    idempotency_key: IdempotencyOption = None,
    operator: OperatorOption = None,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    wallet_dir: WalletOption = None,
    password_file: PasswordFileOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move money from your wallet back to your deposit account at the operator.

    The wallet pays the amount to the operator's float key; the operator submits the
    payment and credits the deposit once the ledger has committed it.
    """
    minor = parse_amount(amount)
    url = OPERATOR.url(operator)
    bearer = _token(token, token_file)
    key = idempotency_key or new_idempotency_key("unload")
    if bearer is not None:
        _finish(_hosted(url, bearer, key, lambda client: client.unload(key, amount=minor)), as_json)
        return
    with _signed_in(url, wallet_dir, password_file, node) as (wallet, client):
        info = _info(client, wallet)
        asset = str(info["asset"])
        earlier = _earlier(client, key, "unload", minor) if idempotency_key else None
        if earlier is not None:
            txid = earlier.get("txid")
            sent = wallet.store.pending(bytes.fromhex(txid)) if txid else None
            # Settled (or refused) already: the operator's record tells how it ended.
            answer = earlier if sent is None else client.unload(key, tx=sent.raw, amount=minor)
        else:
            tx = wallet.build_payment(
                bytes.fromhex(str(info["float_key"])),
                asset,
                minor,
                memo=f"unload to {info.get('name', 'the operator')}",
            )
            try:
                answer = client.unload(key, tx=tx, amount=minor)
            except ServiceCallError as exc:
                if 400 <= exc.status < 500:  # refused before the ledger saw it: coins free
                    wallet.store.release_pending(tx_id(tx.body))
                raise
        view = movement_view(answer, key)
        _settle(view, wallet, asset, url)
    _finish(view, as_json, f"wallet balance {view['wallet_balance_formatted']} {asset}")


@reports_errors
def hosted_pay(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="KEY",
            help="The payee's public key (64 hex digits).",
            show_default=False,
        ),
    ],
    amount: AmountOption,
    idempotency_key: IdempotencyOption = None,
    operator: OperatorOption = None,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pay from a hosted wallet, through the operator, to a public key.

    Refused over the tier's payment limit (`limit.exceeded`). A self-custody wallet pays
    with `tally wallet pay` instead.
    """
    minor = parse_amount(amount)
    payee = parse_public_key(to, "--to").hex()
    bearer = _token(token, token_file)
    if bearer is None:
        raise CliError("hosted-pay is for hosted wallets: give --token or --token-file")
    url = OPERATOR.url(operator)
    key = idempotency_key or new_idempotency_key("pay")
    view = _hosted(url, bearer, key, lambda client: client.pay(payee, minor, key))
    _finish(view, as_json, f"paid {format_amount(minor)} to {payee}")


def register_commands(wallet_app: typer.Typer) -> None:
    """Add `enroll`, `me`, `load`, `unload` and `hosted-pay` to the `tally wallet` group."""
    wallet_app.command("enroll")(enroll)
    wallet_app.command("me")(me)
    wallet_app.command("load")(load)
    wallet_app.command("unload")(unload)
    wallet_app.command("hosted-pay")(hosted_pay)
