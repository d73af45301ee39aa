"""Receipts in real Chromium: the verifier page's "Check a receipt" panel on receipts of a
live gateway (asked with the real openai SDK), tampered ones, one from another gateway,
one still pending, and the chat page's "receipt" link."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
from playwright.sync_api import Page, expect

from saferouter.catalog import DEFAULT_CATALOG_PATH

from .conftest import (
    WEB,
    Site,
    Watched,
    flip,
    gateway,
    rewriting_proxy,
    send_chat,
    served_lines,
    shot,
)

RECEIPT_STEPS = [
    "signature",
    "attested identity",
    "identity",
    "inclusion",
    "consistency",
    "response",
]


def ask(url: str, key: str, prompt: str = "hello receipts") -> tuple[bytes, str]:
    """A chat completion through the openai SDK: the exact bytes sent, and the receipt id."""
    client = openai.OpenAI(base_url=url + "/v1", api_key=key)
    raw = client.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": prompt}]
    )
    return raw.http_response.content, raw.headers["x-saferouter-receipt"]


def receipt(url: str, key: str, receipt_id: str) -> dict[str, Any]:
    """GET /v1/receipts/{id}, once the answer it covers has ended."""
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(
            f"{url}/v1/receipts/{receipt_id}", headers={"Authorization": f"Bearer {key}"}
        )
        if response.status_code != 409 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return dict(response.json())
        time.sleep(0.1)


def check_receipt(
    page: Page, base: str, body: dict[str, Any] | None, response: Path | None = None
) -> list[tuple[str, str]]:
    """The panel's rows for this receipt JSON (None: fetch by the id already filled in)."""
    page.fill("#url", base)
    page.set_checked("#allow-demo", True)
    page.fill("#receipt-json", json.dumps(body) if body else "")
    page.set_input_files("#receipt-response", [response] if response else [])
    page.click("#receipt-form button")
    expect(page.locator("#receipt-verdict")).to_have_attribute(
        "data-result", re.compile("^(verified|demo|failed)$"), timeout=60_000
    )
    return [
        (li.get_attribute("data-ok") or "", li.inner_text())
        for li in page.locator("#receipt-steps li").all()
    ]


def test_a_real_receipt_checks_out_and_a_changed_one_does_not(
    page: Watched, site: Site, tmp_path: Path
) -> None:
    sent, receipt_id = ask(site.url, site.admin_key)
    body = receipt(site.url, site.admin_key, receipt_id)
    saved = tmp_path / "response.json"
    saved.write_bytes(sent)
    p = page.page
    p.goto("/verifier")
    rows = check_receipt(p, site.url, body, saved)
    assert [ok for ok, _ in rows] == ["true"] * 6, rows
    assert [text.split(": ")[0][2:] for _, text in rows] == [
        f"({n}) {name}" for n, name in enumerate(RECEIPT_STEPS, 1)
    ]
    expect(p.locator("#receipt-verdict")).to_have_text("Receipt: DEMO — no hardware guarantee")
    expect(p.locator("#receipt-summary")).to_contain_text(receipt_id)
    expect(p.locator("#receipt-summary table")).to_contain_text("demo")
    expect(p.locator("#receipt-summary")).to_contain_text("Cost")
    shot(p, "verifier-receipt")

    signature = bytearray(base64.b64decode(body["signature"]))
    signature[0] ^= 1
    forged = body | {"signature": base64.b64encode(signature).decode()}
    rows = check_receipt(p, site.url, forged, saved)
    assert rows[-1][0] == "false" and "(1) signature" in rows[-1][1], rows

    cheaper = body | {"receipt": body["receipt"] | {"cost_micro_usd": 0}}
    rows = check_receipt(p, site.url, cheaper, saved)
    assert rows[-1][0] == "false" and "(1) signature" in rows[-1][1], rows

    changed = bytearray(sent)
    changed[len(changed) // 2] ^= 1
    saved.write_bytes(bytes(changed))
    rows = check_receipt(p, site.url, body, saved)
    assert rows[-1][0] == "false" and "(6) response" in rows[-1][1], rows
    expect(p.locator("#receipt-verdict")).to_have_attribute("data-result", "failed")

    rows = check_receipt(p, site.url, body)
    assert [ok for ok, _ in rows] == ["true"] * 5 + ["unchecked"], rows
    assert page.errors == []


def test_a_pasted_receipt_checks_out_on_the_page_opened_from_disk(
    page: Watched, site: Site
) -> None:
    _, receipt_id = ask(site.url, site.admin_key)
    body = receipt(site.url, site.admin_key, receipt_id)
    page.page.goto((WEB / "verifier.html").as_uri())
    rows = check_receipt(page.page, site.url, body)
    assert [ok for ok, _ in rows] == ["true"] * 5 + ["unchecked"], rows


def test_the_receipts_proofs_are_checked(page: Watched, site: Site) -> None:
    """An older receipt: its inclusion in its own checkpoint, and that checkpoint's
    consistency with the newer head (a proof the gateway serves), bent one at a time."""
    ask(site.url, site.admin_key)  # not the log's only leaf: its inclusion proof has hashes
    _, receipt_id = ask(site.url, site.admin_key)
    body = receipt(site.url, site.admin_key, receipt_id)
    for _ in range(2):  # the head moves on: a real consistency proof is needed
        ask(site.url, site.admin_key)
    bent = False

    def bend(path: str, data: Any) -> None:
        if bent and path == "/attestation/receipts/proof":
            data["hashes"][0] = flip(data["hashes"][0])

    authority = site.url.removeprefix("http://")
    with rewriting_proxy(site.url, bend) as proxy:
        p = page.page
        p.goto(proxy + "/verifier")
        p.fill("#audience", authority)  # the proxy serves under its own authority
        rows = check_receipt(p, proxy, body)
        assert [ok for ok, _ in rows] == ["true"] * 5 + ["unchecked"], rows
        assert f"(size {body['tree_size']}) is a prefix" in rows[4][1]
        assert body["inclusion_proof"]  # bending it below means something

        moved = body | {"log_index": body["log_index"] ^ 1}
        rows = check_receipt(p, proxy, moved)
        assert rows[-1][0] == "false" and "(4) inclusion" in rows[-1][1], rows
        proof = [flip(body["inclusion_proof"][0]), *body["inclusion_proof"][1:]]
        rows = check_receipt(p, proxy, body | {"inclusion_proof": proof})
        assert rows[-1][0] == "false" and "(4) inclusion" in rows[-1][1], rows

        bent = True
        rows = check_receipt(p, proxy, body)
    assert rows[-1][0] == "false" and "(5) consistency" in rows[-1][1], rows
    assert "rewritten or forked" in rows[-1][1]


def test_a_receipt_from_another_gateway_fails_the_identity_step(
    page: Watched, site: Site, tmp_path: Path
) -> None:
    with gateway(tmp_path / "other") as other:
        admin = next(line for line in served_lines(other) if line.startswith("sk-sr-"))
        _, receipt_id = ask(other.url, admin)
        body = receipt(other.url, admin, receipt_id)
    page.page.goto("/verifier")
    rows = check_receipt(page.page, site.url, body)
    assert rows[-1][0] == "false" and "(3) identity" in rows[-1][1], rows
    assert "not by this gateway's attested identity" in rows[-1][1]


def test_fetched_by_id_it_waits_for_a_stream_to_end(page: Watched, tmp_path: Path) -> None:
    """A slow stream's receipt is asked for at its first byte: the page polls through
    409 receipt_pending and checks it once the stream has ended."""
    catalog = DEFAULT_CATALOG_PATH.read_text()
    assert "demo_chunk_delay_ms = 25\n" in catalog
    slow = tmp_path / "slow-demo.toml"  # ~80 chunks: a stream of some 12 s
    slow.write_text(catalog.replace("demo_chunk_delay_ms = 25\n", "demo_chunk_delay_ms = 150\n"))
    chat = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "w " * 40}]}
    started = threading.Event()
    found: dict[str, str] = {}
    with gateway(tmp_path / "data", "--config", str(slow)) as served:
        key = next(line for line in served_lines(served) if line.startswith("sk-sr-"))

        def stream() -> None:
            with httpx.stream(
                "POST",
                served.url + "/v1/chat/completions",
                json=chat,
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            ) as response:
                found["id"] = response.headers["x-saferouter-receipt"]
                started.set()
                for _ in response.iter_bytes():
                    pass

        thread = threading.Thread(target=stream)
        thread.start()
        try:
            p = page.page
            p.goto(served.url + "/")
            p.evaluate("key => localStorage.setItem('saferouter.key', key)", key)
            assert started.wait(30)
            p.goto(f"{served.url}/verifier?receipt={found['id']}")  # the key: this origin's
            verdict = p.locator("#receipt-verdict")
            expect(verdict).to_contain_text("has not ended yet", timeout=10_000)
            # the box is not ticked: the receipt's gateway, a demo one, is refused
            expect(verdict).to_have_attribute("data-result", "failed", timeout=60_000)
            rows = check_receipt(p, served.url, None)
        finally:
            thread.join()
    assert [ok for ok, _ in rows] == ["true"] * 5 + ["unchecked"], rows
    expect(p.locator("#receipt-summary")).to_contain_text("streamed")
    assert [e for e in page.errors if "409" not in e] == []


def test_the_chat_page_links_each_answer_to_its_verified_receipt(page: Watched) -> None:
    p = page.page
    answer = send_chat(p, "who sees this?")
    expect(answer.locator(".content")).to_contain_text("who sees this?", timeout=15_000)
    link = answer.locator("a.receipt")
    expect(link).to_have_attribute("href", re.compile(r"^/verifier\?receipt=rcpt_[0-9a-f]{24}$"))
    with p.context.expect_page() as opened:
        link.click()
    verifier = opened.value
    summary = verifier.locator("#receipt-summary")
    expect(summary.locator("table")).to_contain_text("demo", timeout=30_000)
    expect(summary).to_contain_text("Cost")
    expect(verifier.locator("#receipt-verdict")).to_have_attribute(
        "data-result", "failed", timeout=30_000
    )
    assert "no hardware guarantee" in verifier.locator("#steps li").last.inner_text()
    verifier.set_checked("#allow-demo", True)
    verifier.click("#receipt-form button")
    expect(verifier.locator("#receipt-verdict")).to_have_attribute(
        "data-result", "demo", timeout=30_000
    )
    expect(verifier.locator("#receipt-steps li[data-ok=true]")).to_have_count(5)
    expect(summary).to_contain_text(re.compile(r"Cost: \$0\.\d{6} \(\d+ micro-USD\)"))
    shot(verifier, "chat-receipt")
    assert page.errors == []
