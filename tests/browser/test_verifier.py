"""The verifier page in real Chromium: the real SEV-SNP vectors through its DER and
WebCrypto code, and every check against live gateways — honest, tampered, posing, demo,
and signing under another audience than the URL the user typed."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from ..processes import spki_sha256
from ..unit.tee.vectors import SETS, VectorSet
from .conftest import WEB, Site, Watched, flip, gateway, rewriting_proxy, shot

STEPS = 11  # as `saferouter verify` numbers them


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


def run_verifier(
    page: Page, base: str, *, allow_demo: bool = True, audience: str = ""
) -> list[tuple[str, str]]:
    """Verify ``base`` on the page; each step's state ("true", "false", "unchecked") and text."""
    page.fill("#url", base)
    page.fill("#audience", audience)
    page.set_checked("#allow-demo", allow_demo)
    page.click("#form button")
    expect(page.locator("#verdict")).not_to_have_text("Verifying…", timeout=30_000)
    return [
        (li.get_attribute("data-ok") or "", li.inner_text())
        for li in page.locator("#steps li").all()
    ]


def test_a_demo_gateway_is_never_green(page: Watched, site: Site) -> None:
    p = page.page
    p.goto("/verifier")
    steps = run_verifier(p, site.url, allow_demo=False)
    assert steps[-1][0] == "false" and "(3) report and chain" in steps[-1][1], steps
    assert "demo gateway: no hardware guarantee" in steps[-1][1]
    expect(p.locator("#verdict")).to_have_attribute("data-result", "failed")
    expect(p.locator("#verdict")).to_have_class("verdict bad")
    shot(p, "verifier-demo-refused")

    steps = run_verifier(p, site.url, allow_demo=True)
    assert [ok for ok, _ in steps] == ["true"] * STEPS, steps
    assert "DEMO" in steps[2][1] and p.locator("#steps .badge.warn").count() == 1
    expect(p.locator("#verdict")).to_have_text("DEMO — no hardware guarantee")
    expect(p.locator("#verdict")).to_have_class("verdict warn")
    assert "plain HTTP, no channel binding" in steps[4][1]
    authority = site.url.removeprefix("http://")
    assert f"under {authority}/startup" in steps[7][1] and "inclusion proof holds" in steps[7][1]
    assert f"signed under {authority}/receipts" in steps[10][1]
    shot(p, "verifier-demo-accepted")
    again = run_verifier(p, site.url)  # the second visit checks consistency
    assert "consistent with size" in again[9][1] and "consistent with size" in again[10][1]
    assert page.errors == []


def test_verifier_opened_from_disk(page: Watched, site: Site) -> None:
    p = page.page
    p.goto((WEB / "verifier.html").as_uri())
    steps = run_verifier(p, site.url)
    assert [ok for ok, _ in steps] == ["true"] * STEPS, steps


def test_the_log_origin_is_pinned_from_the_url(page: Watched, tmp_path: Path) -> None:
    """A gateway signing its logs for another audience fails the log step, whatever origin
    its JSON names; given that audience explicitly (as `--audience`), it passes."""
    with gateway(tmp_path / "data", audience="elsewhere.example") as served:
        page.page.goto(served.url + "/verifier")
        steps = run_verifier(page.page, served.url)
        authority = served.url.removeprefix("http://")
        assert steps[-1][0] == "false" and "(8) startup log" in steps[-1][1], steps
        assert f"pinned to {authority}/startup" in steps[-1][1]
        assert '"elsewhere.example/startup"' in steps[-1][1]
        steps = run_verifier(page.page, served.url, audience="elsewhere.example")
        assert [ok for ok, _ in steps] == ["true"] * STEPS, steps


def test_verifier_fails_the_right_step_on_a_tampered_log(page: Watched, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for _ in range(2):
        with gateway(data):
            pass
    db = sqlite3.connect(data / "saferouter.db")
    (body,) = db.execute(
        "SELECT body FROM log_entries WHERE log LIKE 'startup/%' AND idx=0"
    ).fetchone()
    db.execute(
        "UPDATE log_entries SET body = ? WHERE log LIKE 'startup/%' AND idx=0",
        (bytes(body).replace(b"saferouter/0.1.0", b"saferouter/9.9.9"),),
    )
    db.commit()
    db.close()
    with gateway(data) as served:
        page.page.goto(served.url + "/verifier")
        steps = run_verifier(page.page, served.url)
    assert steps[-1][0] == "false" and "(8) startup log" in steps[-1][1], steps
    shot(page.page, "verifier-tampered")


def test_verifier_refuses_a_demo_report_posing_as_amd(page: Watched, site: Site) -> None:
    def pose(path: str, data: Any) -> None:
        if path in ("/attestation", "/attestation/quote"):
            data["mode"] = "sev-snp"

    with rewriting_proxy(site.url, pose) as proxy:
        page.page.goto(proxy + "/verifier")
        steps = run_verifier(page.page, proxy, allow_demo=False)
    assert steps[-1][0] == "false" and "(3) report and chain" in steps[-1][1]
    assert "not a genuine AMD" in steps[-1][1] and "demo gateway" not in steps[-1][1]


def test_the_newest_startup_entry_needs_its_inclusion_proof(page: Watched, tmp_path: Path) -> None:
    """Entries, chain and root all hold; only the newest entry's own proof is bent."""
    data = tmp_path / "data"
    with gateway(data):
        pass
    bent = False

    def bend(path: str, data: Any) -> None:
        if bent and path == "/attestation/transparency/1":
            hashes = data["verification"]["inclusionProof"]["hashes"]
            hashes[0] = flip(hashes[0])

    with gateway(data) as served, rewriting_proxy(served.url, bend) as proxy:
        # two starts: the newest entry's proof has a hash; the proxy serves under its own
        # authority, so the gateway's is given as the audience
        audience = served.url.removeprefix("http://")
        page.page.goto(proxy + "/verifier")
        assert run_verifier(page.page, proxy, audience=audience)[7][0] == "true"
        bent = True
        steps = run_verifier(page.page, proxy, audience=audience)
    assert steps[-1][0] == "false" and "(8) startup log" in steps[-1][1], steps
    assert "the inclusion proof does not lead to the root" in steps[-1][1]


def test_a_log_that_pages_on_and_on_fails_instead_of_hanging(page: Watched, tmp_path: Path) -> None:
    """A gateway that answers every page of its startup log with a full page of entries
    must not keep the page reading forever: the head's entries are all it checks."""
    served_pages = [0]

    def endless(path: str, data: Any) -> None:
        if path == "/attestation/transparency":
            start = served_pages[0] * 1000
            served_pages[0] += 1
            data["data"][:] = [{"index": start + i, "body": "e30="} for i in range(1000)]

    with gateway(tmp_path / "data") as served, rewriting_proxy(served.url, endless) as proxy:
        page.page.goto(proxy + "/verifier")
        steps = run_verifier(page.page, proxy, audience=served.url.removeprefix("http://"))
    assert steps[-1][0] == "false" and "(8) startup log" in steps[-1][1], steps
    assert served_pages[0] == 1


def test_over_https_the_tls_key_is_shown_and_not_claimed_checked(
    browser: Browser, tmp_path: Path
) -> None:
    """JavaScript cannot read its connection's certificate: the page shows the attested
    key, says it did not check it, and where to; it checks what it can (the newest start
    logged the same key)."""
    with gateway(tmp_path / "data", "--tls") as served:
        context = browser.new_context(ignore_https_errors=True)  # self-signed: pinned, not CA
        try:
            p = context.new_page()
            p.goto(served.url + "/verifier")
            steps = run_verifier(p, served.url)
            verdict = p.locator("#verdict").inner_text()
            shot(p, "verifier-https")
        finally:
            context.close()
    assert [ok for ok, _ in steps] == ["true"] * 4 + ["unchecked"] + ["true"] * 6, steps
    assert spki_sha256(served.certificate) in steps[4][1]
    assert "cannot read the certificate" in steps[4][1]
    assert f"saferouter verify {served.url}" in steps[4][1]
    assert verdict == "DEMO — no hardware guarantee (TLS key not checked in the browser)"
