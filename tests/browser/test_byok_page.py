"""The Keys page's "Your provider keys" in real Chromium, against a real `saferouter serve`
whose `fake` provider is a real HTTP server: verify, seal in the browser, upload, use."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from saferouter.byok import sealing

from ..servers import FakeUpstream, write_catalog
from .conftest import Watched, gateway, served_lines, shot, step_rows, upstream_on_a_thread

STEPS = 11  # the verifier's checks, as `saferouter verify` numbers them
OPERATOR_KEY = "sk-operator-0f1e2d3c4b5a"
CANARY = "sk-canary-byok-7d1c5e9a2b4f6083"


class ByokSite:
    def __init__(self, url: str, user_key: str, upstream: FakeUpstream, config: Path) -> None:
        self.url = url
        self.user_key = user_key
        self.upstream = upstream
        self.config = config


def add_user_key(url: str, admin_key: str) -> str:
    created = httpx.post(
        url + "/v1/keys",
        json={"name": "byok user", "credits_usd": "1"},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


@pytest.fixture(scope="module")
def byok_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ByokSite]:
    folder = tmp_path_factory.mktemp("byok")
    with upstream_on_a_thread() as upstream:
        config = write_catalog(folder / "catalog.toml", upstream.url)
        env = {"FAKE_API_KEY": OPERATOR_KEY}
        with gateway(folder / "data", "--config", str(config), env=env) as served:
            admin = next(line for line in served_lines(served) if line.startswith("sk-sr-"))
            yield ByokSite(served.url, add_user_key(served.url, admin), upstream, config)


def open_keys_page(browser: Browser, url: str, key: str) -> tuple[Watched, list[str]]:
    """The Keys page with ``key`` as the pages keep it; also every console message."""
    page = browser.new_context(base_url=url, color_scheme="light").new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto("/")
    page.evaluate("key => localStorage.setItem('saferouter.key', key)", key)
    page.goto("/keys")
    return Watched(page), console


def verify_gateway(p: Page, *, allow_demo: bool) -> list[tuple[str, str]]:
    """Verify this gateway on the Keys page; each step's state and text."""
    p.set_checked("#byok-allow-demo", allow_demo)
    p.click("#byok-verify button[type=submit]")
    expect(p.locator("#byok-verdict")).to_have_attribute(
        "data-result", re.compile("^(failed|demo|verified)$"), timeout=30_000
    )
    return step_rows(p, "#byok-steps li")


def settle_fingerprints(p: Page) -> None:
    """Return once a fingerprint the page started computing would be on screen: one
    computed after it (Chromium finishes digests in the order asked), then a rendered frame."""
    p.evaluate(
        """async () => {
          const { fingerprint } = await import("/assets/sealedbox.js");
          await fingerprint("settle");
          await new Promise((done) => requestAnimationFrame(() => done()));
        }"""
    )


def add_provider_key(p: Page, provider: str, provider_key: str, *, fallback: bool = False) -> None:
    """Verify this (demo) gateway, then seal and upload ``provider_key`` on the page."""
    verify_gateway(p, allow_demo=True)
    # where keys go, read from the measured document and shown before anything is sealed
    expect(p.locator("#byok-status")).to_contain_text("As measured, requests with them go to")
    p.select_option("#byok-provider", provider)
    # while a key is typed (input events, no change) no fingerprint shows: one per prefix
    # would spell the key out to a screen recording
    p.fill("#byok-key", provider_key[:4])
    settle_fingerprints(p)
    assert p.locator("#byok-fingerprint").text_content() == ""
    p.fill("#byok-key", provider_key)
    p.press("#byok-key", "Tab")  # leaving the field: its `change`, the whole key
    expect(p.locator("#byok-fingerprint")).to_have_text(
        f"fingerprint {sealing.fingerprint(provider_key)}"
    )  # computed in the browser, shown before anything is sent
    p.set_checked("#byok-fallback", fallback)
    p.click("#byok-add button[type=submit]")
    expect(p.locator("#byok-status")).to_contain_text(
        f"fingerprint {sealing.fingerprint(provider_key)} (as computed in this browser)"
    )
    expect(p.locator("#byok-key")).to_have_value("")


def test_a_demo_gateway_is_refused_unless_ticked(browser: Browser, byok_site: ByokSite) -> None:
    page, _ = open_keys_page(browser, byok_site.url, byok_site.user_key)
    p = page.page
    expect(p.locator("#admin")).to_be_hidden()  # a user key: no admin section, no 403
    expect(p.locator("#byok-url")).to_have_value(byok_site.url)
    expect(p.locator("#byok-allow-demo")).not_to_be_checked()
    steps = verify_gateway(p, allow_demo=False)
    assert steps[-1][0] == "false" and "(3) report and chain" in steps[-1][1], steps
    assert "demo gateway: no hardware guarantee" in steps[-1][1]
    expect(p.locator("#byok-verdict")).to_have_attribute("data-result", "failed")
    expect(p.locator("#byok-add")).to_be_hidden()
    shot(p, "keys-byok-demo-refused")

    steps = verify_gateway(p, allow_demo=True)
    assert [ok for ok, _ in steps] == ["true"] * STEPS, steps
    expect(p.locator("#byok-verdict")).to_have_text("DEMO — no hardware guarantee")
    expect(p.locator("#byok-add")).to_be_visible()
    p.set_checked("#byok-allow-demo", False)  # a changed choice undoes the verification
    expect(p.locator("#byok-add")).to_be_hidden()

    for come_back in (p.reload, lambda: (p.goto("/verifier"), p.go_back())):
        verify_gateway(p, allow_demo=True)
        expect(p.locator("#byok-add")).to_be_visible()
        come_back()  # off again on every load, whatever the browser restores or caches
        expect(p.locator("#byok-allow-demo")).not_to_be_checked()
        expect(p.locator("#byok-add")).to_be_hidden()
    assert page.errors == []
    p.context.close()


def test_a_key_sealed_in_chromium_serves_a_request(browser: Browser, byok_site: ByokSite) -> None:
    page, console = open_keys_page(browser, byok_site.url, byok_site.user_key)
    p = page.page
    add_provider_key(p, "fake", CANARY)
    row = p.locator("#byok-keys tr[data-provider=fake]")
    expect(row).to_contain_text(sealing.fingerprint(CANARY))
    expect(row).to_contain_text("usable")
    expect(row.locator("input[type=checkbox]")).not_to_be_checked()
    shot(p, "keys-byok-added")

    client = openai.OpenAI(base_url=byok_site.url + "/v1", api_key=byok_site.user_key)
    answer = client.chat.completions.create(
        model="fake/anything", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content
    assert byok_site.upstream.requests[-1]["headers"]["Authorization"] == f"Bearer {CANARY}"

    # nothing of the provider key stayed in the browser where the page could leave it
    stored = p.evaluate("Object.entries(localStorage).flat().join('\\n')")
    assert CANARY not in stored and CANARY not in p.url
    assert not [m for m in console if CANARY in m]
    assert CANARY not in p.content()
    assert page.errors == []
    p.context.close()


def test_fallback_toggles_and_a_key_is_removed(browser: Browser, byok_site: ByokSite) -> None:
    page, _ = open_keys_page(browser, byok_site.url, byok_site.user_key)
    p = page.page
    add_provider_key(p, "fake2", "sk-second-key-41", fallback=True)
    row = p.locator("#byok-keys tr[data-provider=fake2]")
    expect(row.locator("input[type=checkbox]")).to_be_checked()
    # the PATCH, and the list read after it, answered before reloading ("networkidle" was
    # reached at load already: waiting for it waited for nothing)
    with p.expect_response(lambda r: r.request.method == "GET" and r.url.endswith("/v1/byok")):
        row.locator("input[type=checkbox]").set_checked(False)
    p.reload()
    expect(row.locator("input[type=checkbox]")).not_to_be_checked()
    p.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Remove").click()
    expect(row).to_have_count(0)
    listing = httpx.get(
        byok_site.url + "/v1/byok", headers={"Authorization": f"Bearer {byok_site.user_key}"}
    ).json()
    assert "fake2" not in [key["provider"] for key in listing["data"]]
    assert page.errors == []
    p.context.close()


def test_a_key_sealed_to_another_build_says_re_add(browser: Browser, tmp_path: Path) -> None:
    """Each start here has its own port, so its own audience and measurement: the key
    sealed under the first start cannot open under the second."""
    with upstream_on_a_thread() as upstream:
        config = write_catalog(tmp_path / "catalog.toml", upstream.url)
        data = tmp_path / "data"
        with gateway(data, "--config", str(config)) as served:
            admin = next(line for line in served_lines(served) if line.startswith("sk-sr-"))
            page, _ = open_keys_page(browser, served.url, admin)
            add_provider_key(page.page, "fake", "sk-old-build-key")
            expect(page.page.locator("#byok-keys tr[data-provider=fake]")).to_contain_text("usable")
            page.page.context.close()
        with gateway(data, "--config", str(config)) as served:
            page, _ = open_keys_page(browser, served.url, admin)
            row = page.page.locator("#byok-keys tr[data-provider=fake]")
            expect(row).to_contain_text("sealed to another build — re-add")
            expect(row).to_contain_text(sealing.fingerprint("sk-old-build-key"))
            shot(page.page, "keys-byok-stale")
            page.page.context.close()


def test_a_build_that_would_send_a_key_in_the_clear_gets_nothing(
    browser: Browser, tmp_path: Path
) -> None:
    """DeepSeek pointed at a plain-http host: the page reads it from the measured document,
    shows it, and refuses to seal a key for it."""
    env = {"DEEPSEEK_BASE_URL": "http://collector.example/v1"}
    with gateway(tmp_path / "data", env=env) as served:
        admin = next(line for line in served_lines(served) if line.startswith("sk-sr-"))
        page, _ = open_keys_page(browser, served.url, admin)
        p = page.page
        verify_gateway(p, allow_demo=True)
        expect(p.locator("#byok-status")).to_contain_text("→ http://collector.example/v1")
        p.select_option("#byok-provider", "deepseek")
        p.fill("#byok-key", CANARY)
        p.click("#byok-add button[type=submit]")
        expect(p.locator("#byok-status")).to_contain_text("would cross the network in the clear")
        expect(p.locator("#byok-key")).to_have_value("")
        listing = httpx.get(served.url + "/v1/byok", headers={"Authorization": f"Bearer {admin}"})
        assert listing.json()["data"] == []
        assert page.errors == []
        p.context.close()
