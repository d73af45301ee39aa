"""The verifier page in real Chromium: the real SEV-SNP vectors through its DER and
WebCrypto code, and every check against live gateways — honest, tampered, posing."""

from __future__ import annotations

import base64
import http.server
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from ..processes import serving
from ..unit.tee.vectors import SETS, VectorSet
from .conftest import Site, Watched, shot

WEB = Path(__file__).resolve().parents[2] / "web"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def verify_vector(page: Page, vector: VectorSet, report: bytes) -> str:
    """Run the page's verifyReport on a vector; the root name, or the error's text."""
    chain = vector.path(vector.chain).read_text()
    pems = chain.split("-----END CERTIFICATE-----")
    vek = vector.path(vector.vek).read_bytes()
    return page.evaluate(
        """async ([report, vek, askPem, arkPem, product, now]) => {
          const V = window.SafeRouterVerifier;
          const vekDer = vek.startsWith("LS0t") ? V.pemCertificate(atob(vek)) : V.b64(vek);
          try {
            const cert = (pem) => V.parseCertificate(V.pemCertificate(pem));
            const result = await V.verifyReport(V.b64(report), V.parseCertificate(vekDer),
              cert(askPem), cert(arkPem), { product, now: new Date(now) });
            return result.root + " " + result.product;
          } catch (error) { return "error: " + error.message; }
        }""",
        [
            b64(report),
            b64(vek),
            pems[0] + "-----END CERTIFICATE-----",
            pems[1] + "-----END CERTIFICATE-----",
            vector.product.value,
            vector.now.isoformat(),
        ],
    )


@pytest.mark.parametrize("vector", SETS, ids=[s.name for s in SETS])
def test_real_vectors_verify_in_the_browser(
    testdata: object, page: Watched, vector: VectorSet
) -> None:
    page.page.goto("/verifier")
    report = vector.report_bytes()
    assert verify_vector(page.page, vector, report) == f"AMD {vector.product.value}"
    tampered = bytearray(report)
    tampered[0x50] ^= 1
    assert verify_vector(page.page, vector, bytes(tampered)).startswith(
        "error: the report's signature"
    )
    assert page.errors == []


def run_verifier(page: Page, base: str) -> list[tuple[str, str]]:
    page.fill("#url", base)
    page.click("#form button")
    expect(page.locator("#verdict")).not_to_have_text("Verifying…", timeout=30_000)
    return [
        (li.get_attribute("data-ok") or "", li.inner_text())
        for li in page.locator("#steps li").all()
    ]


def test_verifier_passes_every_step_against_a_live_gateway(page: Watched, site: Site) -> None:
    p = page.page
    p.goto("/verifier")
    steps = run_verifier(p, site.url)
    assert [ok for ok, _ in steps] == ["true"] * 10, steps
    assert "DEMO" in steps[2][1] and p.locator(".badge.warn").count() == 1
    expect(p.locator("#verdict")).to_have_text("VERIFIED")
    shot(p, "verifier-pass")
    again = run_verifier(p, site.url)  # the second visit checks consistency
    assert "consistent with size" in again[8][1]
    assert page.errors == []


def test_verifier_opened_from_disk(page: Watched, site: Site) -> None:
    p = page.page
    p.goto((WEB / "verifier.html").as_uri())
    steps = run_verifier(p, site.url)
    assert [ok for ok, _ in steps] == ["true"] * 10, steps


def test_verifier_fails_the_right_step_on_a_tampered_log(page: Watched, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for _ in range(2):
        with serving(data):
            pass
    db = sqlite3.connect(data / "saferouter.db")
    (body,) = db.execute("SELECT body FROM log_entries WHERE log='startup' AND idx=0").fetchone()
    db.execute(
        "UPDATE log_entries SET body = ? WHERE log='startup' AND idx=0",
        (bytes(body).replace(b"saferouter/0.1.0", b"saferouter/9.9.9"),),
    )
    db.commit()
    db.close()
    with serving(data) as served:
        page.page.goto(served.url + "/verifier")
        steps = run_verifier(page.page, served.url)
    assert steps[-1][0] == "false" and "(7) startup log" in steps[-1][1], steps
    shot(page.page, "verifier-tampered")


@contextmanager
def posing_proxy(target: str) -> Iterator[str]:
    """A real HTTP server in front of the gateway that says its demo reports are AMD's."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            upstream = httpx.request(
                self.command,
                target + self.path,
                content=body,
                headers={"Content-Type": "application/json"},
            )
            content = upstream.content
            if self.path.split("?")[0] in ("/attestation", "/attestation/quote"):
                data = json.loads(content)
                data["mode"] = "sev-snp"
                content = json.dumps(data).encode()
            self.send_response(upstream.status_code)
            for name in ("content-type", "content-security-policy"):
                if name in upstream.headers:
                    self.send_header(name, upstream.headers[name])
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_verifier_refuses_a_demo_report_posing_as_amd(page: Watched, site: Site) -> None:
    with posing_proxy(site.url) as proxy:
        page.page.goto(proxy + "/verifier")
        steps = run_verifier(page.page, proxy)
    assert steps[-1][0] == "false" and "(3) report and chain" in steps[-1][1]
    assert "not a genuine AMD" in steps[-1][1]
