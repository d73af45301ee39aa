"""Text a user or an operator chose is shown as text on every page, never read as HTML
(attack16 on issue 16's new parts: the charts' tooltips, the Keys page's limits and
masked keys, the available filter, the Try it dialog): in real Chromium against a real
`saferouter serve` whose catalog, key names, app titles and error messages carry markup
that would run script if any page put it into ``innerHTML``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from .conftest import Site, Watched, site_with_upstream

# runs (and counts) if parsed as HTML anywhere: an image that fails, an SVG that loads
HOSTILE = "<img src=x onerror=window.__xss=(window.__xss||0)+1><svg onload=window.__xss=9>"
# a model id is printable ASCII without spaces: "/" separates the attributes instead
MODEL = "m<svg/onload=window.__xss=9><b>bold</b>"
ENTRY = f"""
[[models]]
id = "{MODEL}"
name = "{HOSTILE}"
description = "{HOSTILE}"
provider = "fake"
upstream = "delay:0"
context_length = 1000
max_output = 100
price = {{ input = "1.25", output = "10" }}
"""
PAGES = ["/", "/models", "/chat", "/compare", "/activity", "/keys", "/credits"]


@pytest.fixture(scope="module")  # conftest's page signs in to this site as its admin
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with site_with_upstream(tmp_path_factory.mktemp("hostile"), ENTRY) as site:
        headers = {"Authorization": f"Bearer {site.admin_key}"}
        created = httpx.post(
            site.url + "/v1/keys",
            json={"name": HOSTILE, "credits_usd": "5", "rpm_limit": 60, "tpm_limit": 9000},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        for model, status in ((MODEL, 200), ("demo", 200), ("x<img/src=x>" + MODEL, 404)):
            for key in (site.admin_key, created.json()["key"]):
                sent = httpx.post(
                    site.url + "/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": HOSTILE}]},
                    headers={"Authorization": f"Bearer {key}", "X-Title": HOSTILE},
                    timeout=30,
                )
                assert sent.status_code == status, sent.text
        yield site


def assert_inert(page: Page) -> None:
    """No markup of the hostile text became an element, and none of it ran."""
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("img[src^='x'], svg[onload], main b:text('bold')").count() == 0


@pytest.mark.parametrize("path", PAGES)
def test_hostile_text_is_shown_as_text(page: Watched, path: str) -> None:
    admin_page = page.page
    admin_page.goto(path)
    admin_page.wait_for_load_state("networkidle")
    expect(admin_page.locator("h1")).to_be_visible()
    if path in ("/models", "/activity"):  # the text is on the page, as text
        expect(admin_page.locator("main")).to_contain_text(MODEL)
    if path == "/keys":  # the name, as the value of the field that renames the key
        names = admin_page.locator("main input").evaluate_all("es => es.map(e => e.value)")
        assert HOSTILE in names
    assert_inert(admin_page)
    assert page.errors == []


def test_the_new_widgets_show_hostile_text_as_text(page: Watched) -> None:
    p = page.page
    p.goto("/models")
    p.locator("#available-only").check()  # the available filter redraws the cards
    card = p.locator("article", has_text=MODEL)
    expect(card).to_be_visible()
    card.get_by_role("button", name="Try it").click()
    expect(p.locator("#snippet")).to_contain_text(MODEL)
    p.locator("#reveal").click()
    assert_inert(p)

    p.goto("/activity")
    p.wait_for_load_state("networkidle")
    for svg in p.locator(".charts svg").all():  # every chart's tooltip, drawn on hover
        svg.hover()
    p.mouse.move(0, 0)
    assert_inert(p)

    p.goto("/keys")
    row = p.locator("tr", has=p.get_by_role("textbox", name="Name of sk-sr-", exact=False))
    expect(row.last).to_contain_text("60 rpm · 9000 tpm")  # the limits column
    assert_inert(p)
    assert page.errors == []
