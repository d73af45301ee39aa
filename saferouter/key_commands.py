"""``saferouter keys create|list|rename|revoke|topup``: the API keys of a data dir's
store, managed offline (no server needs to run).

Each command first says on stderr which data dir and which store it opened: a key made
in another data dir than the server's is the first thing a new operator gets wrong, and
stdout stays what scripts read (the secret is the last line of ``keys create``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import TextIO

from .accounting import usd_text
from .client_input import MAX_RATE_LIMIT, parse_count, parse_usd_micro
from .config import Settings
from .errors import InvalidRequest
from .keys import generate_key
from .storage import KeyRole
from .storage.opening import describe, open_store


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """The ``keys`` command and its subcommands."""
    keys = commands.add_parser("keys", help="manage API keys (works offline)")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", parents=[common], help="create a key")
    create.add_argument("--name", required=True, help="a name to tell the key by")
    create.add_argument("--admin", action="store_true", help="an admin key")
    create.add_argument(
        "--credits",
        type=_usd_amount,
        metavar="USD",
        help="prepaid credits: the key can spend only these (default: unmetered, spend recorded)",
    )
    create.add_argument("--rpm", type=_rate_limit, help="requests per minute limit")
    create.add_argument("--tpm", type=_rate_limit, help="tokens per minute limit")
    sub.add_parser("list", parents=[common], help="list keys")
    rename = sub.add_parser("rename", parents=[common], help="rename a key")
    rename.add_argument("key_id", help="the key's id (key_…, from keys list)")
    rename.add_argument("name", help="its new name")
    revoke = sub.add_parser("revoke", parents=[common], help="revoke a key")
    revoke.add_argument("key_id", help="the key's id (key_…, from keys list)")
    topup = sub.add_parser("topup", parents=[common], help="add credits to a key")
    topup.add_argument("key_id", help="the key's id (key_…, from keys list)")
    topup.add_argument("usd", type=_usd_amount, help="the amount to add, in USD")
    topup.add_argument(
        "--make-metered",
        action="store_true",
        help="an unmetered key becomes metered: from now on it can spend only its balance",
    )


async def run(
    args: argparse.Namespace,
    settings: Settings,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run one ``keys`` subcommand against the configured store; the exit status."""
    print(
        f"saferouter: data dir {settings.data_dir}, keys in {describe(settings)}",
        file=err,
        flush=True,
    )
    store = open_store(settings)
    try:
        if args.keys_command == "create":
            role = KeyRole.ADMIN if args.admin else KeyRole.USER
            new = generate_key()
            created = await store.create_key(
                name=args.name,
                role=role,
                key_hash=new.hash,
                prefix=new.display_prefix,
                credits_micro_usd=args.credits,
                rpm_limit=args.rpm,
                tpm_limit=args.tpm,
            )
            print(f"created {created.role} key {created.id} ({created.name})", file=out)
            print(new.secret, file=out)  # the last line of stdout, for scripts
            return 0
        if args.keys_command == "list":
            print(
                f"{'id':22} {'role':5} {'prefix':12} {'created':20} {'last used':20} "
                f"{'status':8} {'balance USD':>14} name",
                file=out,
            )
            for k in await store.list_keys():
                status = "revoked" if k.revoked_at else "active"
                balance = usd_text(k.balance_micro_usd) if k.metered else "unmetered"
                print(
                    f"{k.id:22} {k.role:5} {k.prefix + '…':12} {_when(k.created_at):20} "
                    f"{_when(k.last_used_at):20} {status:8} {balance:>14} {k.name}",
                    file=out,
                )
            return 0
        if args.keys_command == "rename":
            record = await store.update_key(args.key_id, name=args.name)
        elif args.keys_command == "topup":
            record = await store.top_up(args.key_id, args.usd, make_metered=args.make_metered)
            if record is not None and not record.metered:
                print(
                    f"saferouter: {record.id} is unmetered (its spend is recorded, not "
                    "limited); nothing was added. Add --make-metered to give it this "
                    "balance and limit it to that.",
                    file=err,
                )
                return 1
        else:
            record = await store.revoke_key(args.key_id)
        if record is None:
            print(f"saferouter: no key with id {args.key_id}", file=err)
            return 1
        done = {"rename": "renamed", "revoke": "revoked", "topup": "topped up"}
        print(
            f"{done[args.keys_command]} {record.id} ({record.name}); balance "
            f"{usd_text(record.balance_micro_usd)} USD",
            file=out,
        )
        return 0
    finally:
        await store.close()


def _rate_limit(text: str) -> int:
    """A per-minute limit on the command line (the HTTP API's own rules)."""
    try:
        return parse_count({"limit": text}, "limit", default=0, low=1, high=MAX_RATE_LIMIT)
    except InvalidRequest as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _usd_amount(text: str) -> int:
    """A USD amount on the command line, as micro-USD (the HTTP API's own rules)."""
    try:
        return parse_usd_micro(text, param="amount")
    except InvalidRequest as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
