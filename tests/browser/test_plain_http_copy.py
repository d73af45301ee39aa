"""Copying a new key on the Keys page where the browser gives no clipboard: a gateway
reached over plain http under a name other than localhost (``--host 0.0.0.0`` without
TLS, opened from another machine) is not a secure context, so `navigator.clipboard` is
undefined. In real Chromium whose resolver maps a name to the gateway on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Playwright, expect

from .conftest import ARGS, CHROMIUM, Site, Watched

NAME = "gateway.test"


@pytest.fixture(scope="module")
def far_browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*ARGS, f"--host-resolver-rules=MAP {NAME} 127.0.0.1"]
    )
    yield browser
    browser.close()


def test_copy_without_a_clipboard_selects_the_new_key(far_browser: Browser, site: Site) -> None:
    url = f"http://{NAME}:{urlsplit(site.url).port}"
    context = far_browser.new_context(base_url=url)
    p = context.new_page()
    p.goto("/")
    p.evaluate("key => localStorage.setItem('saferouter.key', key)", site.admin_key)
    page = Watched(p)
    p.goto("/keys")
    assert p.evaluate("() => [isSecureContext, typeof navigator.clipboard]") == [
        False,
        "undefined",
    ]
    p.fill("#name", "copied by hand")
    p.click("#create button[type=submit]")
    secret = p.locator("#created code.secret")
    expect(p.locator("#created")).to_contain_text("created.")
    p.locator("#created").get_by_role("button", name="Copy").click()
    expect(p.locator("#created")).to_contain_text("Selected: press Ctrl+C.")
    assert p.evaluate("() => getSelection().toString()") == secret.inner_text()
    # the Try it dialog the same way: its snippet revealed whole, then selected
    p.goto("/models")
    p.locator("article", has_text="demo-mini").get_by_role("button", name="Try it").click()
    p.locator("#copy").click()
    expect(p.locator("#copied")).to_have_text("Selected: press Ctrl+C.")
    assert f"Bearer {site.admin_key}" in p.evaluate("() => getSelection().toString()")
    assert page.errors == []
    context.close()
