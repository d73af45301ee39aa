"""The Activity page by app (issue 15), in real Chromium against a real `saferouter
serve`: the apps that sent requests (OpenRouter's ``X-Title`` / ``HTTP-Referer``) get a
breakdown of their own, a column in the request log and a filter; an app's name is
shown as the text it is, never as HTML."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from .conftest import Site, Watched, shot

EVIL = "<img src=x onerror=alert(1)>Evil"


def test_the_activity_page_shows_and_filters_by_app(page: Watched, site: Site) -> None:
    p = page.page
    created = httpx.post(
        site.url + "/v1/keys",
        json={"name": "apps"},
        headers={"Authorization": f"Bearer {site.admin_key}"},
    ).json()
    key = created["key"]
    p.evaluate("key => localStorage.setItem('saferouter.key', key)", key)
    chat = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    for headers in (
        {"X-Title": "Cline", "HTTP-Referer": "https://cline.bot"},
        {"X-Title": "Cline"},
        {"X-Title": EVIL},
        {},
    ):
        sent = httpx.post(
            site.url + "/api/v1/chat/completions",
            json=chat,
            headers={"Authorization": f"Bearer {key}", **headers},
            timeout=30,
        )
        assert sent.status_code == 200, sent.text
    p.goto("/activity")
    by_app = p.locator("#by-app tbody tr")
    expect(by_app).to_have_count(2)
    expect(by_app.filter(has_text="Cline")).to_contain_text("2")  # two requests
    expect(by_app.filter(has_text=EVIL)).to_have_count(1)  # the name, as text
    apps = p.locator("#log tbody td.app")
    expect(apps).to_have_count(4)
    assert sorted(apps.all_inner_texts()) == sorted(["Cline", "Cline", EVIL, "–"])
    assert p.locator("#log img, #by-app img").count() == 0  # no markup from a name
    p.select_option("#app", "Cline")
    expect(apps).to_have_count(2)
    expect(apps.first).to_have_text("Cline")
    shot(p, "activity-by-app")
    p.select_option("#app", "")
    expect(apps).to_have_count(4)
    assert page.errors == []
