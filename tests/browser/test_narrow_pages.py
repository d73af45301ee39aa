"""Every page on a phone (390 × 844 CSS px, an iPhone 14's viewport), in real Chromium
against a real `saferouter serve` holding the data that widens pages: a long model id,
a long key name, a fallback's "a → b", tables with rows, a long chat. The page itself
must never scroll sideways; a wide table may scroll inside its own box."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import SHOTS, Site, shot, site_with_upstream

PHONE = {"width": 390, "height": 844}
PAGES = ["/", "/models", "/chat", "/compare", "/activity", "/keys", "/credits", "/verifier"]
LONG_MODEL = "fake-extraordinarily-long-model-identifier-for-narrow-screens-2026-11-preview"
LONG_NAME = "the-key-of-a-team-whose-name-nobody-shortened-before-typing-it-in-full"
LONG_MODEL_ENTRY = f"""
[[models]]
id = "{LONG_MODEL}"
provider = "fake"
upstream = "delay:0"
context_length = 1000
max_output = 100
price = {{ input = "1.25", output = "10" }}
"""


@pytest.fixture(scope="module")
def busy_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A gateway with a fake upstream and traffic already on its pages."""
    with site_with_upstream(tmp_path_factory.mktemp("narrow"), LONG_MODEL_ENTRY) as site:
        _traffic(site.url, site.admin_key)
        yield site


def _traffic(url: str, admin: str) -> None:
    headers = {"Authorization": f"Bearer {admin}"}
    created = httpx.post(
        url + "/v1/keys", json={"name": LONG_NAME, "credits_usd": "5"}, headers=headers
    )
    assert created.status_code == 201, created.text
    for model in (LONG_MODEL, "chain-a", "demo"):  # chain-a falls back to chain-b
        for key in (admin, created.json()["key"]):
            sent = httpx.post(
                url + "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {key}", "X-Title": LONG_NAME},
                timeout=30,
            )
            assert sent.status_code == 200, sent.text


@pytest.fixture
def phone(browser: Browser, busy_site: Site) -> Iterator[Page]:
    """A phone-sized page, signed in as the admin, with a long conversation and four
    compare columns kept from an earlier visit."""
    context = browser.new_context(base_url=busy_site.url, viewport=PHONE, color_scheme="light")
    page = context.new_page()
    page.goto("/")
    conversation = {
        "id": "c1",
        "title": LONG_NAME,
        "model": LONG_MODEL,
        "messages": [
            {"role": "user", "content": "x" * 300 + "\n```\n" + "y" * 300 + "\n```"},
            {"role": "assistant", "model": LONG_MODEL, "content": "z" * 300, "done": True},
        ],
    }
    page.evaluate(
        """([key, conversations, compare]) => {
            localStorage.setItem('saferouter.key', key);
            localStorage.setItem('saferouter.conversations', conversations);
            localStorage.setItem('saferouter.compare', compare);
        }""",
        [
            busy_site.admin_key,
            json.dumps([conversation]),
            json.dumps([LONG_MODEL, "demo", "chain-a", "demo-mini"]),
        ],
    )
    yield page
    context.close()


@pytest.mark.parametrize("path", PAGES)
def test_no_page_is_wider_than_a_phone(phone: Page, path: str) -> None:
    phone.goto(path)
    phone.wait_for_load_state("networkidle")
    expect(phone.locator("h1")).to_be_visible()
    widths = phone.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth]"
    )
    name = "phone" + (path.replace("/", "-") if path != "/" else "-home")
    shot(phone, name)
    phone.screenshot(path=str(SHOTS / f"{name}-first-screen.png"))  # what a phone shows
    assert max(widths) <= PHONE["width"], f"{path} is {widths} px wide: {_sticking_out(phone)}"


def _sticking_out(page: Page) -> list[str]:
    """The elements whose right edge is beyond the viewport (what to fix)."""
    return page.evaluate(  # type: ignore[no-any-return]
        """() => [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > innerWidth)
            .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`
                        + ` ${Math.round(e.getBoundingClientRect().right)}`)
            .slice(0, 8)"""
    )


def test_the_try_it_dialog_fits_a_phone(phone: Page) -> None:
    phone.goto("/models")
    phone.locator("article", has_text=LONG_MODEL).get_by_role("button", name="Try it").click()
    phone.locator("#reveal").click()  # the whole key: the longest line the snippet has
    expect(phone.locator("#snippet")).to_contain_text(LONG_MODEL)
    box = phone.locator("#try").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    widths = phone.evaluate("() => document.documentElement.scrollWidth")
    shot(phone, "phone-models-try-it")
    assert widths <= PHONE["width"], _sticking_out(phone)
