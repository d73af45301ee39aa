"""The ``saferouter verify`` and ``saferouter verify-receipt`` commands: arguments in,
numbered steps out, exit 0 when every step passed and 1 naming the step that failed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..errors import ParseError
from .client import Checked, run_checks
from .evidence import Step
from .receipt import Source, attempts_text, verify_receipt


def trust_options() -> argparse.ArgumentParser:
    """The options that say what a verifier trusts, for every command that verifies a
    gateway (``verify``, ``verify-receipt``, ``byok``)."""
    trust = argparse.ArgumentParser(add_help=False)
    trust.add_argument(
        "--allow-demo",
        action="store_true",
        help="accept a gateway whose report chains to a DEMO root (no hardware guarantee)",
    )
    trust.add_argument(
        "--audience",
        metavar="NAME",
        help="pin the logs' origins to NAME/<log> instead of the URL's host[:port]",
    )
    trust.add_argument(
        "--cafile",
        help="also require the TLS certificate to chain to these CAs (the key is pinned anyway)",
    )
    return trust


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """``verify`` and ``verify-receipt`` under the top-level subcommands."""
    trust = trust_options()
    trust.add_argument("--json", action="store_true", help="print the steps as JSON")
    check = commands.add_parser(
        "verify", parents=[common, trust], help="verify a running gateway, step by step"
    )
    check.add_argument("url", help="the gateway's base URL, e.g. https://127.0.0.1:8080")
    check.add_argument(
        "--expect-measurement", metavar="HEX", help="fail unless the gateway's measurement is HEX"
    )
    check.add_argument("--state", help="remember the log heads here; check consistency next time")
    receipt = commands.add_parser(
        "verify-receipt",
        parents=[common, trust],
        help="verify a request's receipt (the body of GET /v1/receipts/{id})",
    )
    receipt.add_argument("receipt", metavar="RECEIPT.json", help="the receipt, as a JSON file")
    receipt.add_argument("--response", metavar="FILE", help="the response bytes as received")
    whose = receipt.add_mutually_exclusive_group()
    whose.add_argument("--gateway", metavar="URL", help="verify the gateway now and trust that")
    whose.add_argument("--state", metavar="FILE", help="trust what verify --state saved")


def run(args: argparse.Namespace) -> int:
    """Run ``verify`` or ``verify-receipt``; the exit status."""
    try:
        return _verify(args) if args.command == "verify" else _verify_receipt(args)
    except ParseError as exc:  # a URL, state file or receipt file that cannot be read
        print(f"saferouter: {exc}", file=sys.stderr)
        return 1


def _verify(args: argparse.Namespace) -> int:
    checked = check_gateway(args.url, args, on_step=None if args.json else show_step)
    if args.json:
        _print_json(checked.passed, checked.steps, root=checked.root)
    else:
        print(verdict(checked.passed, checked.root))
    return 0 if checked.passed else 1


def check_gateway(
    url: str, args: argparse.Namespace, *, on_step: Callable[[Step], None] | None
) -> Checked:
    """Every check of ``verify`` on ``url``, as the command line's trust options,
    ``--expect-measurement`` and ``--state`` ask."""
    return run_checks(
        url,
        expect_measurement=args.expect_measurement,
        state_path=Path(args.state) if args.state else None,
        allow_demo=args.allow_demo,
        audience=args.audience,
        cafile=args.cafile,
        on_step=on_step,
    )


def verdict(passed: bool, root: str | None) -> str:
    """The last line of a gateway's verification: a demo root is never plain VERIFIED."""
    if not passed:
        return "FAILED"
    return "VERIFIED (DEMO root — no hardware guarantee)" if root == "DEMO" else "VERIFIED"


def _verify_receipt(args: argparse.Namespace) -> int:
    try:
        document = json.loads(Path(args.receipt).read_bytes())
        response = Path(args.response).read_bytes() if args.response else None
    except (OSError, ValueError) as exc:
        print(f"saferouter: {exc}", file=sys.stderr)
        return 1
    if not isinstance(document, dict):
        document = {}
    source = Source(
        gateway=args.gateway,
        state_path=Path(args.state) if args.state else None,
        allow_demo=args.allow_demo,
        audience=args.audience,
        cafile=args.cafile,
    )
    checked = verify_receipt(
        document, source, response=response, on_step=None if args.json else show_step
    )
    steps, other = checked.steps, checked.other_replica
    passed = len(steps) == 6 and all(s.ok for s in steps)
    receipt = document.get("receipt") if passed else None
    if args.json:
        _print_json(passed, steps, receipt=receipt, other_replica=other)
        return 0 if passed else 1
    if isinstance(receipt, dict):
        print(
            f"request {receipt['request_id']}: {receipt['requested_model']} → "
            f"{receipt['provider']} / {receipt['served_model']}, status {receipt['status']}, "
            f"cost {receipt['cost_micro_usd']} micro-USD"
            + (" (estimated)" if receipt["estimated"] else "")
        )
        for line in attempts_text(receipt):
            print("  " + line)
    if passed and other is not None:
        print(
            f"VERIFIED (signed by another replica, {other[:16]}…: its signature and "
            "inclusion hold, its attestation is not what this verification proved)"
        )
    else:
        print("VERIFIED" if passed else "FAILED")
    return 0 if passed else 1


def show_step(step: Step) -> None:
    """Print a step as ``saferouter verify`` does: ✓ or ✗, its number, name and detail."""
    mark = "✓" if step.ok else "✗"
    print(f"{mark} ({step.number}) {step.name}: {step.detail}", flush=True)


def _print_json(passed: bool, steps: Sequence[Step], **extra: Any) -> None:
    body = {"passed": passed, **extra, "steps": [attrs.asdict(s) for s in steps]}
    print(json.dumps(body, indent=2))
