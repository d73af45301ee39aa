"""``saferouter tls csr``: a certificate signing request for the gateway's TLS key.

The key is made (or unsealed) in this process, as ``serve --tls`` would, and only the
request leaves it: an operator takes it to a CA (ACME: RFC 8555 §7.4, "finalize") and
serves what comes back with ``--tls-cert``, without the key ever leaving the machine.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..attestation.attester import open_attester, open_sealer
from ..attestation.identity import TLS_KEY, load_or_create_key
from ..attestation.measurement import measure
from ..attestation.service import demo_launch_measurement
from ..config import Settings
from ..errors import ParseError
from .certificates import parse_server_name, signing_request, spki_sha256


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """The ``tls`` command and its subcommands."""
    tls = commands.add_parser("tls", help="the gateway's TLS key: certificate requests")
    sub = tls.add_subparsers(dest="tls_command", required=True)
    csr = sub.add_parser(
        "csr",
        parents=[common],
        help="print a PEM certificate signing request for the TLS key (made if absent)",
    )
    csr.add_argument(
        "--name", required=True, type=_name, help="the DNS name (or IP address) to certify"
    )


def _name(text: str) -> str:
    try:
        return parse_server_name(text)
    except ParseError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    """Print the request (PEM) on ``out``; the key's SPKI hash goes to stderr."""
    key = trio.run(_tls_key, settings)
    request = signing_request(key, name=args.name)
    out.write(request.public_bytes(serialization.Encoding.PEM).decode())
    print(f"tls_spki_sha256 {spki_sha256(key.public_key())}", file=sys.stderr)
    return 0


async def _tls_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    """The TLS key as ``serve --tls`` loads it: sealed the same way as the identity."""
    attester = open_attester(
        settings.data_dir, measurement=demo_launch_measurement(measure(settings))
    )
    return load_or_create_key(TLS_KEY, settings.data_dir, await open_sealer(attester))
