"""``saferouter`` commands: ``serve``, ``keys create|list|rename|revoke|topup``,
``tee verify-report|report``, ``tls csr``, ``verify``, ``verify-receipt`` and
``byok add|list|remove``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Sequence

import trio

from .accounting import usd_text
from .attestation.measurement import measure
from .byok import commands as byok_commands
from .client_input import MAX_RATE_LIMIT, parse_count, parse_usd_micro
from .config import Settings, load_settings
from .errors import ConfigError, InvalidRequest, StorageError
from .keys import generate_key
from .storage import KeyRole
from .storage.opening import open_store
from .tee import commands as tee_commands
from .tls import commands as tls_commands
from .verify import commands as verify_commands


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saferouter", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="catalog TOML replacing the shipped one")
    common.add_argument(
        "--data-dir", help="where the keys and the default database live (~/.saferouter)"
    )
    common.add_argument(
        "--database",
        metavar="URL",
        help="the store: postgresql://… (replicas share it) or sqlite:///path; "
        "default: saferouter.db in the data dir (or SAFEROUTER_DATABASE_URL)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    # the listen address is also the default audience, which the measurement covers
    listen = argparse.ArgumentParser(add_help=False)
    listen.add_argument("--host", help="address to listen on (127.0.0.1)")
    listen.add_argument("--port", type=int, help="port to listen on (8080)")
    serve = commands.add_parser("serve", parents=[common, listen], help="run the gateway")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    serve.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="client connections per worker; at the cap the longest-idle one is closed (1000)",
    )
    serve.add_argument(
        "--http2",
        action="store_true",
        default=None,
        help="also speak HTTP/2 (cleartext: prior knowledge and Upgrade: h2c; TLS: ALPN h2)",
    )
    serve.add_argument(
        "--metrics-public",
        action="store_true",
        default=None,
        help="serve /metrics without an admin key, for a scraper that cannot send one "
        "(or SAFEROUTER_METRICS_PUBLIC=on)",
    )
    serve.add_argument(
        "--tls",
        action="store_true",
        default=None,
        help="serve HTTPS with the gateway's own TLS key (made inside, never leaves; "
        "its SPKI hash is in every quote); self-signed unless --tls-cert",
    )
    serve.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="serve this certificate chain (PEM, leaf first) for the gateway's TLS key "
        "(from `saferouter tls csr`); implies --tls",
    )

    keys = commands.add_parser("keys", help="manage API keys (works offline)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", parents=[common], help="create a key")
    create.add_argument("--name", required=True)
    create.add_argument("--admin", action="store_true", help="an admin key")
    create.add_argument(
        "--credits",
        type=_usd_amount,
        metavar="USD",
        help="prepaid credits: the key can spend only these (default: unmetered, spend recorded)",
    )
    create.add_argument("--rpm", type=_rate_limit, help="requests per minute limit")
    create.add_argument("--tpm", type=_rate_limit, help="tokens per minute limit")
    key_commands.add_parser("list", parents=[common], help="list keys")
    rename = key_commands.add_parser("rename", parents=[common], help="rename a key")
    rename.add_argument("key_id")
    rename.add_argument("name")
    revoke = key_commands.add_parser("revoke", parents=[common], help="revoke a key")
    revoke.add_argument("key_id")
    tee_commands.add_parsers(commands, common)
    tls_commands.add_parsers(commands, common)
    verify_commands.add_parsers(commands, common)
    byok_commands.add_parsers(commands)
    measure_cmd = commands.add_parser(
        "measure", parents=[common, listen], help="print this build's service measurement"
    )
    measure_cmd.add_argument("--parts", action="store_true", help="also print what it covers")
    topup = key_commands.add_parser("topup", parents=[common], help="add credits to a key")
    topup.add_argument("key_id")
    topup.add_argument("usd", type=_usd_amount)
    topup.add_argument(
        "--make-metered",
        action="store_true",
        help="an unmetered key becomes metered: from now on it can spend only its balance",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("verify", "verify-receipt"):
        return verify_commands.run(args)
    if args.command == "byok":  # a client of a gateway: no settings, no data dir
        return byok_commands.run(args, os.environ)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = load_settings(
            os.environ,
            config=args.config,
            data_dir=args.data_dir,
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            workers=getattr(args, "workers", None),
            max_connections=getattr(args, "max_connections", None),
            http2=getattr(args, "http2", None),
            metrics_public=getattr(args, "metrics_public", None),
            tls=getattr(args, "tls", None),
            tls_cert=getattr(args, "tls_cert", None),
            database=getattr(args, "database", None),
        )
        if args.command == "measure":
            measurement = measure(settings)
            if args.parts:
                print(
                    json.dumps({"code": measurement.code, "config": measurement.config}, indent=2)
                )
            print(measurement.hex)
            return 0
        if args.command == "tee":
            return tee_commands.run(args, settings.data_dir)
        if args.command == "tls":
            return tls_commands.run(args, settings)
        if args.command == "serve":
            from .server import run

            return run(settings)
        return trio.run(_keys, args, settings)
    except (ConfigError, StorageError) as exc:
        print(f"saferouter: {exc}", file=sys.stderr)
        return 2


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
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
            print(f"created {created.role} key {created.id} ({created.name})")
            print(new.secret)  # the last line of stdout, for scripts
            return 0
        if args.keys_command == "list":
            print(
                f"{'id':22} {'role':5} {'prefix':12} {'created':20} {'last used':20} "
                f"{'status':8} {'balance USD':>14} name"
            )
            for k in await store.list_keys():
                status = "revoked" if k.revoked_at else "active"
                balance = usd_text(k.balance_micro_usd) if k.metered else "unmetered"
                print(
                    f"{k.id:22} {k.role:5} {k.prefix + '…':12} {_when(k.created_at):20} "
                    f"{_when(k.last_used_at):20} {status:8} {balance:>14} {k.name}"
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
                    file=sys.stderr,
                )
                return 1
        else:
            record = await store.revoke_key(args.key_id)
        if record is None:
            print(f"saferouter: no key with id {args.key_id}", file=sys.stderr)
            return 1
        done = {"rename": "renamed", "revoke": "revoked", "topup": "topped up"}
        print(
            f"{done[args.keys_command]} {record.id} ({record.name}); balance "
            f"{usd_text(record.balance_micro_usd)} USD"
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


if __name__ == "__main__":
    sys.exit(main())
