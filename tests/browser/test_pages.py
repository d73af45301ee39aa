"""Every page, in real Chromium, against a live gateway with the demo provider."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from .conftest import Site, Watched, send_chat, shot

PAGES = ["/", "/models", "/chat", "/compare", "/activity", "/keys", "/credits"]


@pytest.mark.parametrize("path", PAGES)
def test_each_page_loads_cleanly(page: Watched, path: str) -> None:
    page.page.goto(path)
    page.page.wait_for_load_state("networkidle")
    expect(page.page.locator("header.nav")).to_be_visible()
    expect(page.page.locator("h1")).to_be_visible()
    shot(page.page, "page" + (path.replace("/", "-") if path != "/" else "-home"))
    assert page.errors == []


def test_models_grid_search_and_try_it(page: Watched) -> None:
    p = page.page
    p.goto("/models")
    expect(p.locator("article")).to_have_count(15)
    p.fill("#search", "glm-5")
    expect(p.locator("article")).to_have_count(2)
    p.fill("#search", "")
    p.select_option("#provider", "demo")
    expect(p.locator("article")).to_have_count(2)
    p.locator("article").first.get_by_role("button", name="Try it").click()
    expect(p.locator("#snippet")).to_contain_text("curl")
    p.get_by_role("tab", name="python").click()
    expect(p.locator("#snippet")).to_contain_text("from openai import OpenAI")
    key = p.evaluate("localStorage.getItem('saferouter.key')")
    expect(p.locator("#snippet")).to_contain_text(f"{key[:6]}…{key[-4:]}")  # masked
    shot(p, "models-try-it")
    assert page.errors == []


def test_chat_streams_folds_thinking_and_keeps_conversations(page: Watched) -> None:
    p = page.page
    p.goto("/chat")
    p.fill("#prompt", "Tell me about trio")
    p.click("#send")
    answer = p.locator(".message.assistant").last
    expect(answer.locator(".content")).to_contain_text(
        'You said: "Tell me about trio"', timeout=15_000
    )
    expect(answer.locator("details.thinking summary")).to_have_text("Thinking")
    expect(answer.locator("details.thinking")).not_to_have_attribute("open", "")
    answer.locator("details.thinking summary").click()
    expect(answer.locator("details.thinking")).to_contain_text("The user wrote 4 words")
    shot(p, "chat-answer")
    p.reload()
    expect(p.locator("#list button").first).to_contain_text("Tell me about trio")
    assert page.errors == []


def test_stop_cancels_the_stream(page: Watched) -> None:
    p = page.page
    p.goto("/chat")
    p.click("#new")
    p.fill("#prompt", " ".join(["word"] * 30))
    p.click("#send")
    expect(p.locator("#stop")).to_be_enabled()
    p.wait_for_timeout(150)
    p.click("#stop")
    meta = p.locator(".message.assistant").last.locator(".meta")
    expect(meta).to_contain_text("stopped")
    content = p.locator(".message.assistant").last.locator(".content").inner_text()
    assert "real models" not in content  # the demo's last words never arrived
    assert [e for e in page.errors if "aborted" not in e.lower()] == []


def test_model_output_is_never_html(page: Watched) -> None:
    p = page.page
    prompt = '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script>'
    answer = send_chat(p, prompt).locator(".content")
    expect(answer).to_contain_text("<img src=x onerror=", timeout=15_000)
    assert p.locator(".messages img").count() == 0
    assert p.locator(".messages script").count() == 0
    assert p.evaluate("window.__pwned") is None


def test_compare_runs_four_columns(page: Watched) -> None:
    p = page.page
    p.goto("/compare")
    p.wait_for_load_state("networkidle")
    while p.locator("#columns section").count() < 4:
        p.click("#add")
    p.fill("#prompt", "compare me")
    p.click("#run")
    for i in range(4):
        expect(p.locator("#columns .status").nth(i)).to_have_text("done", timeout=20_000)
        expect(p.locator("#columns .timing").nth(i)).to_contain_text("TTFT")
    shot(p, "compare")
    assert page.errors == []


def test_key_flow(page: Watched, site: Site) -> None:
    p = page.page
    p.goto("/keys")
    p.fill("#name", "browser user")
    p.fill("#credits", "0.5")
    p.click("#create button[type=submit]")
    secret = p.locator("#created code.secret").inner_text()
    assert secret.startswith("sk-sr-")
    shot(p, "keys-created")
    p.reload()
    assert secret not in p.content()  # shown once
    row = p.locator("#keys tbody tr", has_text=secret[:10])
    name = row.locator("input")
    name.fill("renamed user")
    # the rename, and the list read after it, answered before reloading ("networkidle"
    # was reached at load already: waiting for it waited for nothing)
    with p.expect_response(lambda r: r.request.method == "GET" and r.url.endswith("/v1/keys")):
        name.press("Tab")
    p.reload()
    expect(p.locator("#keys tbody tr", has_text=secret[:10]).locator("input")).to_have_value(
        "renamed user"
    )
    chat = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {secret}"}
    assert (
        httpx.post(site.url + "/v1/chat/completions", json=chat, headers=headers).status_code == 200
    )
    p.once("dialog", lambda dialog: dialog.accept())
    p.locator("#keys tbody tr", has_text=secret[:10]).get_by_role("button", name="Revoke").click()
    expect(
        p.locator("#keys tbody tr", has_text=secret[:10]).get_by_role("button", name="Revoked")
    ).to_be_disabled()
    assert (
        httpx.post(site.url + "/v1/chat/completions", json=chat, headers=headers).status_code == 401
    )
    assert page.errors == []


def test_credits_change_after_a_chat_and_activity_shows_it(page: Watched, site: Site) -> None:
    p = page.page
    created = httpx.post(
        site.url + "/v1/keys",
        json={"name": "spender", "credits_usd": "1"},
        headers={"Authorization": f"Bearer {site.admin_key}"},
    ).json()
    p.evaluate("key => localStorage.setItem('saferouter.key', key)", created["key"])
    p.goto("/credits")
    expect(p.locator("#summary .stat").first).to_contain_text("$1")
    httpx.post(
        site.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {created['key']}"},
        json={"model": "demo", "messages": [{"role": "user", "content": "spend a little"}]},
    )
    p.reload()
    expect(p.locator("#models tbody tr")).to_have_count(1)
    expect(p.locator("#summary .stat").nth(2)).to_have_text(re.compile(r"Spent\$0\.0+[1-9]"))
    shot(p, "credits")
    p.goto("/activity")
    expect(p.locator("#log tbody tr")).to_have_count(1, timeout=6_000)
    expect(p.locator("#log tbody tr").first).to_contain_text("demo")
    httpx.post(
        site.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {created['key']}"},
        json={"model": "demo-mini", "messages": [{"role": "user", "content": "again"}]},
    )
    expect(p.locator("#log tbody tr")).to_have_count(2, timeout=7_000)  # within one poll
    shot(p, "activity")
    assert page.errors == []
