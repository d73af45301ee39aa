"""The ``saferouter`` command line: one parser tree, each command's arguments defined
beside the code that runs it (``key_commands``, ``tee/``, ``tls/``, ``verify/``, ``byok/``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata

import trio

from . import key_commands
from .attestation.measurement import measure
from .byok import commands as byok_commands
from .config import load_settings
from .errors import ConfigError, StorageError
from .tee import commands as tee_commands
from .tls import commands as tls_commands
from .verify import commands as verify_commands

DESCRIPTION = (
    "SafeRouter, an OpenAI-compatible LLM gateway that anyone can verify: serve it, "
    "manage its API keys, measure and verify it."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saferouter", description=DESCRIPTION)
    parser.add_argument(
        "--version", action="version", version=f"saferouter {_version()}", help="print the version"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="catalog TOML replacing the shipped one")
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
    # where traces go is measured too (what request metadata leaves, and to where)
    listen.add_argument(
        "--otel-endpoint",
        metavar="URL",
        help="send OpenTelemetry traces (OTLP/HTTP) to this collector, e.g. "
        "http://127.0.0.1:4318 (or OTEL_EXPORTER_OTLP_ENDPOINT); off by default",
    )
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
        "(from 'saferouter tls csr'); implies --tls",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="let web apps of this origin (scheme://host[:port]) call /v1/* from a browser; "
        "repeatable (default: none, or SAFEROUTER_CORS_ORIGINS)",
    )

    key_commands.add_parsers(commands, common)
    tee_commands.add_parsers(commands, common)
    tls_commands.add_parsers(commands, common)
    verify_commands.add_parsers(commands, common)
    byok_commands.add_parsers(commands)
    measure_cmd = commands.add_parser(
        "measure", parents=[common, listen], help="print this build's service measurement"
    )
    measure_cmd.add_argument("--parts", action="store_true", help="also print what it covers")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names (default: the process's arguments); the exit status.

    A reader that leaves early (``saferouter measure --parts | head -1``) is no error:
    the rest of the output has nowhere to go, so it goes nowhere, quietly, and the exit
    status is 0 (Python's recipe, "Note on SIGPIPE" in the signal module's docs)."""
    try:
        code = _run(argv)
        # flushed here, not at exit: a closed pipe found at exit is an unhandled
        # "Exception ignored" message and exit status 120
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # stdout's buffer still holds what could not be written: point the descriptor at
        # /dev/null so that the interpreter's last flush finds somewhere to put it
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _run(argv: Sequence[str] | None) -> int:
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
            otel_endpoint=getattr(args, "otel_endpoint", None),
            cors_origins=getattr(args, "cors_origin", None),
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
        return trio.run(key_commands.run, args, settings)
    except (ConfigError, StorageError) as exc:
        print(f"saferouter: {exc}", file=sys.stderr)
        return 2


def _version() -> str:
    """The installed package's version (a checkout run from PYTHONPATH has none)."""
    try:
        return metadata.version("saferouter")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())
