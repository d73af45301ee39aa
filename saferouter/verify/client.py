"""``saferouter verify``: check a running gateway from the outside, step by step.

No server code runs here: only HTTP calls to the gateway's public endpoints and the
pure verifiers (``tee.verify``, ``translog.merkle``, ``translog.note``). The steps:

  (1) status            GET /attestation
  (2) quote             POST /attestation/quote with a fresh nonce
  (3) report and chain  the SNP report against AMD's pinned root (or, in demo mode, the
                        presented demo root — flagged DEMO, never passed off as AMD)
  (4) binding           REPORT_DATA = SHA-512(canonical claims), and the nonce is ours
  (5) identity          the claims' key is the served verifying key
  (6) measurement       the claims' measurement is the one expected (when given)
  (7) startup log       every entry signed by the identity, hash-chained, and the
                        Merkle root equal to the signed checkpoint
  (8) latest start      the newest entry is this identity and measurement
  (9) history           consistent with the checkpoint remembered in --state
  (10) receipt log      its checkpoint is signed, and consistent with --state
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import httpx

from ..canonical import canonical_json
from ..errors import ParseError, SafeRouterError
from ..tee import verify as tee_verify
from ..tee.abi import Product
from ..tee.demo import DEMO_SUFFIX
from ..tee.kds import load_certificate
from ..translog import merkle, note
from ..translog.entry import entry_hash, verify_entry


class CheckFailed(SafeRouterError):
    pass


@attrs.frozen
class Step:
    number: int
    name: str
    ok: bool
    detail: str


def run_checks(
    base_url: str,
    *,
    expect_measurement: str | None = None,
    state_path: Path | None = None,
    http: httpx.Client | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> list[Step]:
    """Every check, in order; stops at the first failure (later ones would mean nothing)."""
    if http is None:
        with httpx.Client(base_url=base_url.rstrip("/"), timeout=30) as client:
            return run_checks(
                base_url,
                expect_measurement=expect_measurement,
                state_path=state_path,
                http=client,
                on_step=on_step,
            )
    client = http
    steps: list[Step] = []
    context: dict[str, Any] = {}
    checks: list[tuple[str, Callable[[], str]]] = [
        ("status", lambda: _status(client, context)),
        ("quote", lambda: _quote(client, context)),
        ("report and chain", lambda: _report(context)),
        ("REPORT_DATA binding", lambda: _binding(context)),
        ("identity", lambda: _identity(client, context)),
        ("measurement", lambda: _measurement(context, expect_measurement)),
        ("startup log", lambda: _startup_log(client, context)),
        ("latest start", lambda: _latest(context)),
        ("history", lambda: _history(client, context, state_path)),
        ("audit log", lambda: _audit(client, context, state_path)),
    ]
    for number, (name, check) in enumerate(checks, start=1):
        try:
            detail = check()
            step = Step(number, name, True, detail)
        except (CheckFailed, SafeRouterError, httpx.HTTPError, KeyError, ValueError) as exc:
            step = Step(number, name, False, f"{type(exc).__name__}: {exc}")
        steps.append(step)
        if on_step is not None:
            on_step(step)
        if not step.ok:
            return steps
    if state_path is not None:
        state_path.write_text(json.dumps(context["new_state"], indent=2))
    return steps


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    if response.status_code != 200:
        raise CheckFailed(f"GET {path} answered {response.status_code}")
    return response.json()


def _status(client: httpx.Client, ctx: dict[str, Any]) -> str:
    ctx["status"] = status = _get(client, "/attestation")
    return f"{status['mode']} mode, build {status['build']}"


def _quote(client: httpx.Client, ctx: dict[str, Any]) -> str:
    nonce = secrets.token_bytes(32)
    response = client.post("/attestation/quote", json={"nonce": nonce.hex()})
    if response.status_code != 200:
        raise CheckFailed(f"POST /attestation/quote answered {response.status_code}")
    ctx["nonce"], ctx["quote"] = nonce, response.json()
    return f"nonce {nonce.hex()[:16]}…"


def _report(ctx: dict[str, Any]) -> str:
    quote = ctx["quote"]
    certs = quote["certificates"]
    vek, ask, ark = (load_certificate(certs[k].encode()) for k in ("vcek", "ask", "ark"))
    report = bytes.fromhex(quote["report"])
    demo = ctx["status"]["mode"] == "demo" or quote["mode"] == "demo"
    root = tee_verify.AMD_ROOT
    if demo:
        # the demo root is whatever the gateway presents: it proves the layout and the
        # binding, not the hardware, and is labelled so
        pins = {product: tee_verify.fingerprint(ark) for product in Product}
        ask_pins = {product: tee_verify.fingerprint(ask) for product in Product}
        root = tee_verify.TrustRoot(
            name="DEMO", ark=pins, ask=ask_pins, asvk=ask_pins, cn_suffix=DEMO_SUFFIX
        )
    try:
        verified = tee_verify.verify_report(
            report, vek=vek, ask=ask, ark=ark, now=dt.datetime.now(dt.UTC), root=root
        )
    except tee_verify.ReportVerificationError as exc:
        if not demo:
            raise CheckFailed(f"not a genuine AMD SEV-SNP report: {exc.step}: {exc}") from exc
        raise
    ctx["report"] = verified.report
    label = "DEMO root (NOT AMD hardware)" if demo else "AMD root"
    return f"{label}, {verified.product.value}, report v{verified.report.version}"


def _binding(ctx: dict[str, Any]) -> str:
    claims = ctx["quote"]["claims"]
    expected = hashlib.sha512(canonical_json(claims)).digest()
    if ctx["report"].report_data != expected:
        raise CheckFailed("REPORT_DATA is not the SHA-512 of the claims")
    if claims["nonce"] != ctx["nonce"].hex():
        raise CheckFailed("the quote answers another nonce (a replayed quote)")
    return "REPORT_DATA = SHA-512(claims), with our nonce"


def _identity(client: httpx.Client, ctx: dict[str, Any]) -> str:
    served = _get(client, "/attestation/verifying-key")["public_key"]
    claimed = ctx["quote"]["claims"]["identity"]
    if served != claimed or ctx["status"]["identity"] != claimed:
        raise CheckFailed("the quote's identity is not the served verifying key")
    ctx["identity"] = bytes.fromhex(claimed)
    return f"ed25519 {claimed[:16]}…"


def _measurement(ctx: dict[str, Any], expected: str | None) -> str:
    claimed = str(ctx["quote"]["claims"]["measurement"])
    if claimed != ctx["status"]["measurement"]:
        raise CheckFailed("the quote's measurement is not the one the gateway reports")
    if expected is not None and claimed != expected.lower():
        raise CheckFailed(f"measurement {claimed} is not the expected {expected}")
    ctx["measurement"] = claimed
    return claimed + (" (as expected)" if expected else " (no expectation given)")


def _signed_head(
    client: httpx.Client, ctx: dict[str, Any], path: str
) -> tuple[note.Checkpoint, dict[str, Any]]:
    head = _get(client, path)
    verifier = note.ed25519_verifier(head["origin"], ctx["identity"])
    return note.verify_checkpoint(head["checkpoint"], [verifier]), head


def _startup_log(client: httpx.Client, ctx: dict[str, Any]) -> str:
    checkpoint, _ = _signed_head(client, ctx, "/attestation/transparency/head")
    bodies: list[bytes] = []
    while True:  # every entry served, not only those the head covers
        page = _get(client, "/attestation/transparency", start=len(bodies), limit=1000)["data"]
        for served in page:
            if served["index"] != len(bodies):
                raise CheckFailed(f"entry {len(bodies)} is missing from the log")
            bodies.append(base64.b64decode(served["body"]))
        if len(page) < 1000:
            break
    if len(bodies) != checkpoint.size:
        raise CheckFailed(f"the log serves {len(bodies)} entries, its head says {checkpoint.size}")
    previous: bytes | None = None
    for index, body in enumerate(bodies):
        try:
            entry = verify_entry(body, ctx["identity"])
        except note.NoteError as exc:
            raise CheckFailed(f"entry {index}: {exc}") from exc
        link = entry["spec"].get("prev_entry_hash")
        if link != (entry_hash(previous) if previous is not None else None):
            raise CheckFailed(f"entry {index} does not link to entry {index - 1}")
        previous = body
    root = merkle.root_hash([merkle.leaf_hash(b) for b in bodies])
    if root != checkpoint.root_hash:
        raise CheckFailed("the entries do not hash to the signed checkpoint's root")
    ctx["startup"] = {"size": checkpoint.size, "root": checkpoint.root_hash.hex(), "bodies": bodies}
    return f"{checkpoint.size} entries, signatures, chain and root verified"


def _latest(ctx: dict[str, Any]) -> str:
    bodies = ctx["startup"]["bodies"]
    if not bodies:
        raise CheckFailed("the startup log is empty")
    spec = json.loads(bodies[-1])["spec"]
    if spec["identity"] != ctx["identity"].hex() or spec["measurement"] != ctx["measurement"]:
        raise CheckFailed("the newest start is not this identity and measurement")
    return f"entry {len(bodies) - 1}, {spec['tee_mode']}, {spec['build']}"


def _history(client: httpx.Client, ctx: dict[str, Any], state_path: Path | None) -> str:
    ctx["new_state"] = {
        "identity": ctx["identity"].hex(),
        "startup": {k: ctx["startup"][k] for k in ("size", "root")},
    }
    if state_path is None or not state_path.exists():
        return "no remembered checkpoint" + (
            " (first visit; remembering this one)" if state_path else ""
        )
    old = json.loads(state_path.read_text())
    if old["identity"] != ctx["identity"].hex():
        raise CheckFailed("the log is signed by a different key than last time")
    _consistent(client, "/attestation/transparency/proof", old["startup"], ctx["startup"])
    return f"consistent with size {old['startup']['size']} seen before"


def _audit(client: httpx.Client, ctx: dict[str, Any], state_path: Path | None) -> str:
    checkpoint, _ = _signed_head(client, ctx, "/attestation/receipts/head")
    current = {"size": checkpoint.size, "root": checkpoint.root_hash.hex()}
    ctx["new_state"]["audit"] = current
    if state_path is not None and state_path.exists():
        old = json.loads(state_path.read_text()).get("audit")
        if old:
            _consistent(client, "/attestation/receipts/proof", old, current)
    return f"{checkpoint.size} receipts, checkpoint signed by the identity"


def _consistent(client: httpx.Client, path: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    if old["size"] > new["size"]:
        raise CheckFailed(f"the log shrank from {old['size']} to {new['size']} entries")
    proof = _get(client, path, first=old["size"], second=new["size"])
    try:
        merkle.verify_consistency(
            old["size"],
            new["size"],
            [bytes.fromhex(h) for h in proof["hashes"]],
            bytes.fromhex(old["root"]),
            bytes.fromhex(new["root"]),
        )
    except merkle.ProofError as exc:
        raise CheckFailed(f"not consistent with the remembered checkpoint: {exc}") from exc


__all__ = ["CheckFailed", "ParseError", "Step", "run_checks"]
