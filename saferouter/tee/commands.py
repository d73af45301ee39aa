"""``saferouter tee verify-report`` and ``saferouter tee report``."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
from pathlib import Path
from typing import TextIO

import trio
from cryptography import x509

from ..errors import DeviceError, FetchError, ParseError
from .abi import Product, parse_report
from .demo import DemoAttester
from .device import ConfigfsTsm, SevGuestDevice, detect
from .fetch import HttpxCertFetcher, fetch_chain, fetch_vcek
from .kds import load_cert_chain, load_certificate
from .verify import AMD_ROOT, ReportVerificationError, verify_report


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    tee = commands.add_parser("tee", help="SEV-SNP reports: verify one, or get one")
    sub = tee.add_subparsers(dest="tee_command", required=True)
    check = sub.add_parser(
        "verify-report", parents=[common], help="verify a raw SNP report, printing each step"
    )
    check.add_argument("report", help="the 1184-byte report (binary, or hex text)")
    check.add_argument("--vcek", help="VCEK/VLEK (DER or PEM); default: from KDS (cached)")
    check.add_argument("--chain", help="ASK+ARK PEM (KDS cert_chain); default: from KDS")
    check.add_argument(
        "--product", choices=[p.value for p in Product], help="needed for a v2 report (no CPUID)"
    )
    check.add_argument("--now", help="verify as of this ISO time (default: now)")
    check.add_argument(
        "--demo", action="store_true", help="trust the data dir's DEMO root instead of AMD's"
    )
    get = sub.add_parser(
        "report", parents=[common], help="get a report (inside an SEV-SNP guest; demo otherwise)"
    )
    get.add_argument("--data", default="", help="REPORT_DATA as hex (≤ 64 bytes)")
    get.add_argument("--out", help="write the binary report here (default: hex on stdout)")


def run(args: argparse.Namespace, data_dir: Path, out: TextIO = sys.stdout) -> int:
    if args.tee_command == "verify-report":
        return trio.run(_verify, args, data_dir, out)
    return _report(args, data_dir, out)


async def _verify(args: argparse.Namespace, data_dir: Path, out: TextIO) -> int:
    raw = Path(args.report).read_bytes()  # noqa: ASYNC240 (a one-shot command)
    if len(raw) != 1184:
        # hex text; anything else is left as is for step (1) to name
        with contextlib.suppress(UnicodeDecodeError, ValueError):
            raw = bytes.fromhex(raw.decode().strip())
    now = dt.datetime.fromisoformat(args.now) if args.now else dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    product = Product(args.product) if args.product else None
    root = AMD_ROOT
    demo = DemoAttester(data_dir / "tee-demo") if args.demo else None
    try:
        if demo is not None:
            root = demo.trust_root()
        vek, (ask, ark) = await _certificates(args, raw, product, data_dir, demo)
    except (ParseError, FetchError, OSError) as exc:
        print(f"✗ certificates: {exc}", file=out)
        return 1
    try:
        verified = verify_report(
            raw,
            vek=vek,
            ask=ask,
            ark=ark,
            now=now,
            product=product,
            root=root,
            on_step=lambda step: print(f"✓ {step}", file=out),
        )
    except ReportVerificationError as exc:
        print(f"✗ {exc.step}: {exc}", file=out)
        return 1
    report = verified.report
    label = "AMD" if verified.root == "AMD" else f"{verified.root} (not AMD hardware)"
    print(
        f"VERIFIED: root {label}, {verified.product.value}, "
        f"{verified.signing_key.name}-signed, report v{report.version}, "
        f"debug {'ALLOWED' if report.debug else 'off'}, "
        f"measurement {report.measurement.hex()}",
        file=out,
    )
    return 0


async def _certificates(
    args: argparse.Namespace,
    raw: bytes,
    product: Product | None,
    data_dir: Path,
    demo: DemoAttester | None,
) -> tuple[x509.Certificate, tuple[x509.Certificate, x509.Certificate]]:
    """The VEK and (ASK, ARK): from the files given, the demo folder, or KDS (cached).
    Reading a few local files in the event loop is fine for a one-shot command."""
    if demo is not None and not args.vcek and not args.chain:
        return demo.chain.vcek, (demo.chain.ask, demo.chain.ark)
    if args.vcek and args.chain:
        vek = load_certificate(Path(args.vcek).read_bytes())  # noqa: ASYNC240
        return vek, load_cert_chain(Path(args.chain).read_bytes())  # noqa: ASYNC240
    fetcher = HttpxCertFetcher(data_dir / "kds-cache")
    report = parse_report(raw)
    chosen = report.product() or product
    if (not args.vcek or not args.chain) and chosen is None:
        raise ParseError("a v2 report needs --product to fetch its certificates")
    vlek = report.signing_key == 1
    if args.vcek:
        vek = load_certificate(Path(args.vcek).read_bytes())  # noqa: ASYNC240
    else:
        assert chosen is not None
        vek = await fetch_vcek(fetcher, report, chosen)
    if args.chain:
        chain = load_cert_chain(Path(args.chain).read_bytes())  # noqa: ASYNC240
    else:
        assert chosen is not None
        chain = await fetch_chain(fetcher, chosen, vlek=vlek)
    return vek, chain


def _report(args: argparse.Namespace, data_dir: Path, out: TextIO) -> int:
    try:
        user_data = bytes.fromhex(args.data)
    except ValueError:
        print("saferouter: --data must be hex", file=sys.stderr)
        return 2
    if len(user_data) > 64:
        print("saferouter: --data is at most 64 bytes", file=sys.stderr)
        return 2
    user_data = user_data.ljust(64, b"\0")
    mode = detect()
    try:
        if mode == "sev-snp":
            configfs = ConfigfsTsm()
            report = (
                configfs.get_report(user_data)[0]
                if configfs.available()
                else SevGuestDevice().get_report(user_data)
            )
        else:
            report = DemoAttester(data_dir / "tee-demo").report(user_data)
    except DeviceError as exc:
        print(f"saferouter: {exc}", file=sys.stderr)
        return 1
    if args.out:
        Path(args.out).write_bytes(report)
        print(f"{mode} report written to {args.out}", file=out)
    else:
        print(report.hex(), file=out)
    return 0
