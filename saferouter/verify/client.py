"""``saferouter verify``: check a running gateway from the outside, step by step.

No server code runs here: only HTTP calls to the gateway's public endpoints and the
pure verifiers (``tee.verify``, ``translog.merkle``, ``translog.note``). The trust
decisions are the verifier's — which root, which origins, which TLS key — never read
from what the server says about itself. The steps:

  (1) status              GET /attestation
  (2) quote               POST /attestation/quote with a fresh nonce
  (3) report and chain    the SNP report against AMD's pinned root; a report that chains
                          only to a demo root fails unless demo gateways are allowed
                          (then it passes, labelled DEMO: no hardware guarantee)
  (4) REPORT_DATA binding REPORT_DATA = SHA-512(canonical claims), and the nonce is ours
  (5) TLS key             https: the SPKI hash of the certificate on the connection the
                          quote came over is the claims' ``tls_spki_sha256``
  (6) identity            the claims' key is the served verifying key
  (7) measurement         the claims' measurement is the one expected (when given)
  (8) startup log         (:mod:`.logs`) checkpoint under the pinned origin; entries
                          signed, chained, hashing to its root; newest entry's inclusion
  (9) latest start        the newest entry is this identity and measurement, and (when
                          it names them) the quote's TLS key and BYOK public key
  (10) history            consistent with the heads remembered in --state
  (11) receipt log        its checkpoint under the pinned origin, consistent with --state
  (12) replicas           names the other replicas sharing the gateway's database (not
                          proved: each is verified by connecting to it); their listed
                          startup entries and heads are signed by their own identities
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from pathlib import Path

import attrs
import httpx

from ..canonical import canonical_json
from ..errors import ParseError
from ..tee import verify as tee_verify
from ..tee.abi import Product
from ..tee.demo import DEMO_SUFFIX
from ..tee.kds import load_certificate
from . import logs, peers
from .channel import TLSKeyMismatch, peer_spki_sha256, tls_context
from .evidence import CheckFailed, Evidence, Step, get_json, run_steps
from .origin import url_authority
from .state import TreeHead, save_state


@attrs.frozen
class Attested:
    """What a passed verification established about the gateway."""

    authority: str
    root: str  # "AMD" | "DEMO"
    identity: bytes
    measurement: str
    tls_spki_sha256: str | None
    heads: dict[str, TreeHead]
    # the X25519 key to seal provider keys to (``saferouter byok add``); None for a
    # gateway whose quotes claim none (a build before BYOK)
    byok_public_key: str | None = None
    # the hex identities of the other replicas it listed as sharing its database (step
    # 12): whose receipts it may serve, against their own published heads
    peers: tuple[str, ...] = ()


@attrs.frozen
class Checked:
    """The steps run, in order, and what they established if every one passed."""

    steps: tuple[Step, ...]
    attested: Attested | None
    root: str | None = None  # "AMD" | "DEMO" once the report step found out, pass or fail

    @property
    def passed(self) -> bool:
        return self.attested is not None

    def require(self) -> Attested:
        """What was attested, or :class:`CheckFailed` naming the step that failed."""
        if self.attested is None:
            failed = self.steps[-1]
            raise CheckFailed(f"({failed.number}) {failed.name}: {failed.detail}", step=failed)
        return self.attested


def run_checks(
    base_url: str,
    *,
    expect_measurement: str | None = None,
    state_path: Path | None = None,
    allow_demo: bool = False,
    audience: str | None = None,
    cafile: str | None = None,
    http: httpx.Client | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Checked:
    """Every check, in order; stops at the first failure (later ones would mean nothing).
    With ``state_path``, the heads are compared with the remembered ones and, when every
    step passed, remembered for next time."""
    if http is None:
        url = base_url.rstrip("/")
        with httpx.Client(base_url=url, timeout=30, verify=tls_context(cafile)) as client:
            return run_checks(
                url,
                expect_measurement=expect_measurement,
                state_path=state_path,
                allow_demo=allow_demo,
                audience=audience,
                http=client,
                on_step=on_step,
            )
    client = http
    ev = Evidence(
        authority=audience or url_authority(base_url),
        secure=base_url.startswith("https://"),
        allow_demo=allow_demo,
        expect_measurement=expect_measurement,
        state_path=state_path,
    )
    checks: list[tuple[str, Callable[[], str]]] = [
        ("status", lambda: _status(client, ev)),
        ("quote", lambda: _quote(client, ev)),
        ("report and chain", lambda: _report(ev)),
        ("REPORT_DATA binding", lambda: _binding(ev)),
        ("TLS key", lambda: _tls_key(ev)),
        ("identity", lambda: _identity(client, ev)),
        ("measurement", lambda: _measurement(ev)),
        ("startup log", lambda: logs.startup_log(client, ev)),
        ("latest start", lambda: logs.latest_start(ev)),
        ("history", lambda: logs.history(client, ev)),
        ("receipt log", lambda: logs.receipt_log(client, ev)),
        ("replicas", lambda: peers.peers(ev)),
    ]
    steps = run_steps(checks, on_step)
    if not all(step.ok for step in steps):
        return Checked(tuple(steps), None, ev.root)
    if state_path is not None:
        save_state(state_path, ev.new_state())
    assert ev.identity is not None and ev.measurement is not None and ev.root is not None
    attested = Attested(
        authority=ev.authority,
        root=ev.root,
        identity=ev.identity,
        measurement=ev.measurement,
        tls_spki_sha256=ev.tls_spki_sha256,
        heads=dict(ev.heads),
        byok_public_key=ev.byok_public_key,
        peers=tuple(peer["identity"] for peer in ev.status.get("replicas") or []),
    )
    return Checked(tuple(steps), attested, ev.root)


def _status(client: httpx.Client, ev: Evidence) -> str:
    ev.status = status = get_json(client, "/attestation")
    return f"{status['mode']} mode, build {status['build']}"


def _quote(client: httpx.Client, ev: Evidence) -> str:
    nonce = secrets.token_bytes(32)
    with client.stream("POST", "/attestation/quote", json={"nonce": nonce.hex()}) as response:
        # the peer certificate of *this* connection: the one the quote comes over
        ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
        if ssl_object is not None:
            ev.peer_spki_sha256 = peer_spki_sha256(ssl_object)
        response.read()
    if response.status_code != 200:
        raise CheckFailed(f"POST /attestation/quote answered {response.status_code}")
    ev.nonce, ev.quote = nonce, response.json()
    return f"nonce {nonce.hex()[:16]}…"


def _report(ev: Evidence) -> str:
    certs = ev.quote["certificates"]
    vek, ask, ark = (load_certificate(certs[k].encode()) for k in ("vcek", "ask", "ark"))
    report = bytes.fromhex(ev.quote["report"])
    now = dt.datetime.now(dt.UTC)
    try:
        verified = tee_verify.verify_report(
            report, vek=vek, ask=ask, ark=ark, now=now, root=tee_verify.AMD_ROOT
        )
        ev.root = "AMD"
    except tee_verify.ReportVerificationError as amd_failure:
        # Not AMD's. Whether it is at least a well-formed demo report (the same layout,
        # signed under the synthetic root the gateway presents) decides the message.
        pins = {product: tee_verify.fingerprint(ark) for product in Product}
        ask_pins = {product: tee_verify.fingerprint(ask) for product in Product}
        demo_root = tee_verify.TrustRoot(
            name="DEMO", ark=pins, ask=ask_pins, asvk=ask_pins, cn_suffix=DEMO_SUFFIX
        )
        try:
            verified = tee_verify.verify_report(
                report, vek=vek, ask=ask, ark=ark, now=now, root=demo_root
            )
        except tee_verify.ReportVerificationError:
            raise CheckFailed(
                f"not a genuine AMD SEV-SNP report: {amd_failure.step}: {amd_failure}"
            ) from amd_failure
        if "demo" not in (ev.status.get("mode"), ev.quote.get("mode")):
            raise CheckFailed(
                "not a genuine AMD SEV-SNP report: the gateway says sev-snp, "
                "but its report chains to a DEMO root"
            ) from amd_failure
        ev.root = "DEMO"
        if not ev.allow_demo:
            raise CheckFailed(
                "the report chains to a DEMO root, not AMD's: no hardware guarantee "
                "(allow demo gateways, --allow-demo, to accept it)"
            ) from amd_failure
    ev.report_data = verified.report.report_data
    label = "DEMO root (NOT AMD hardware)" if ev.root == "DEMO" else "AMD root"
    return f"{label}, {verified.product.value}, report v{verified.report.version}"


def _binding(ev: Evidence) -> str:
    claims = ev.quote["claims"]
    expected = hashlib.sha512(canonical_json(claims)).digest()
    if ev.report_data != expected:
        raise CheckFailed("REPORT_DATA is not the SHA-512 of the claims")
    if claims["nonce"] != ev.nonce.hex():
        raise CheckFailed("the quote answers another nonce (a replayed quote)")
    return "REPORT_DATA = SHA-512(claims), with our nonce"


def _tls_key(ev: Evidence) -> str:
    attested = ev.quote["claims"].get("tls_spki_sha256")
    if not ev.secure:
        return "plain HTTP, no channel binding"
    if ev.peer_spki_sha256 is None:
        raise TLSKeyMismatch("the quote did not come over TLS")
    if attested is None:
        raise TLSKeyMismatch(
            "the gateway attests no TLS key: this TLS connection ends outside the "
            "attested process (a TLS-terminating proxy?)"
        )
    if attested != ev.peer_spki_sha256:
        raise TLSKeyMismatch(
            f"the connection's key {ev.peer_spki_sha256[:16]}… is not the attested "
            f"{attested[:16]}…: the TLS connection ends outside the attested process "
            "(a TLS-terminating proxy?)"
        )
    ev.tls_spki_sha256 = attested
    return f"the quote came over TLS to the attested key {attested[:16]}…"


def _identity(client: httpx.Client, ev: Evidence) -> str:
    served = get_json(client, "/attestation/verifying-key")["public_key"]
    claimed = ev.quote["claims"]["identity"]
    if served != claimed or ev.status["identity"] != claimed:
        raise CheckFailed("the quote's identity is not the served verifying key")
    ev.identity = bytes.fromhex(claimed)
    return f"ed25519 {claimed[:16]}…"


def _measurement(ev: Evidence) -> str:
    claimed = str(ev.quote["claims"]["measurement"])
    if claimed != ev.status["measurement"]:
        raise CheckFailed("the quote's measurement is not the one the gateway reports")
    expected = ev.expect_measurement
    if expected is not None and claimed != expected.lower():
        raise CheckFailed(f"measurement {claimed} is not the expected {expected}")
    ev.measurement = claimed
    return claimed + (" (as expected)" if expected else " (no expectation given)")


__all__ = ["Attested", "CheckFailed", "Checked", "ParseError", "Step", "run_checks"]
