"""What is available, as a user sees it on the Models page and in the chat's picker
(atk-pages on issue 16), in real Chromium against a real `saferouter serve` with no
provider key of the operator's: a user who brought their own key for one provider
(sealed and uploaded by `saferouter byok add`, as a user does) sees that provider's
models available to them; a filter that leaves nothing says why."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ..processes import CLI, clean_env
from .conftest import Site, Watched

OWN_KEY = "sk-own-deepseek-3f9a1c7e5b2d4086"


@pytest.fixture(scope="module")
def own_key_user(site: Site) -> str:
    """A user key holding its own DeepSeek key; the operator set none."""
    made = httpx.post(
        site.url + "/v1/keys",
        json={"name": "brings a key"},
        headers={"Authorization": f"Bearer {site.admin_key}"},
    )
    assert made.status_code == 201, made.text
    user: str = made.json()["key"]
    added = subprocess.run(
        [*CLI, "byok", "add", "--gateway", site.url, "--provider", "deepseek", "--allow-demo",
         "--audience", site.url.removeprefix("http://")],
        input=OWN_KEY + "\n", capture_output=True, text=True, timeout=120, check=False,
        env=clean_env() | {"SAFEROUTER_API_KEY": user},
    )  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    return user


@pytest.fixture
def as_user(browser: Browser, site: Site, own_key_user: str) -> Iterator[Watched]:
    context = browser.new_context(base_url=site.url)
    page = context.new_page()
    page.goto("/")
    page.evaluate("key => localStorage.setItem('saferouter.key', key)", own_key_user)
    yield Watched(page)
    context.close()


def badges(p: Page) -> dict[str, tuple[str, str]]:
    """Each model card's id → its availability badge's text and reason."""
    return {
        card.locator("strong").first.inner_text(): (
            card.locator(".badge.ok, .badge.bad").inner_text(),
            card.locator(".badge.ok, .badge.bad").get_attribute("title") or "",
        )
        for card in p.locator("article").all()
    }


def test_a_provider_of_ones_own_key_is_available(as_user: Watched, site: Site) -> None:
    p = as_user.page
    deepseek = [
        m["id"]
        for m in httpx.get(site.url + "/v1/models").json()["data"]
        if m["provider"] == "deepseek"
    ]
    assert deepseek
    p.goto("/models")
    p.get_by_label("available only").check()
    p.select_option("#provider", "deepseek")
    expect(p.locator("article")).to_have_count(len(deepseek))
    assert badges(p) == {m: ("available", "available with your own key") for m in deepseek}
    # the operator's view, for anyone else: none of them
    public = httpx.get(site.url + "/v1/models").json()["data"]
    assert {m["available"] for m in public if m["provider"] == "deepseek"} == {False}
    assert as_user.errors == []


def test_nothing_available_says_why(page: Watched) -> None:
    """The operator's view (the admin brought no key): "available only" on a provider
    with no key set, or a search matching nothing, says so instead of a blank page."""
    p = page.page
    p.goto("/models")
    p.select_option("#provider", "zai")
    expect(p.locator("article").first).to_be_visible()
    p.get_by_label("available only").check()
    expect(p.locator("article")).to_have_count(0)
    expect(p.locator("#none")).to_have_text(re.compile("^No model here is available: .* Keys page"))
    p.get_by_label("available only").uncheck()
    p.fill("#search", "no such model anywhere")
    expect(p.locator("#none")).to_have_text("No model matches.")
    p.fill("#search", "")
    expect(p.locator("#none")).to_have_count(0)
    assert page.errors == []


def test_another_key_shows_its_own_availability(
    page: Watched, site: Site, own_key_user: str
) -> None:
    """The page asks again when the key in the header changes: the admin's view first,
    then the user's, whose own DeepSeek key makes its models available."""
    p = page.page
    p.goto("/models")
    p.select_option("#provider", "deepseek")
    p.get_by_label("available only").check()
    expect(p.locator("#none")).to_be_visible()
    p.fill("header input[type=password]", own_key_user)
    p.get_by_role("button", name="Use key").click()
    expect(p.locator("article").first).to_be_visible()
    assert set(badges(p).values()) == {("available", "available with your own key")}
    options = p.locator("#provider option").all_text_contents()
    assert len(options) == len(set(options))  # asked again, listed once
    expect(p.locator("#provider")).to_have_value("deepseek")  # the choice kept
    assert page.errors == []


def test_the_chat_picker_follows_the_key(page: Watched, own_key_user: str) -> None:
    p = page.page
    p.goto("/chat")
    choice = p.locator("#choices button", has_text="deepseek-chat")
    p.click("#picker")
    expect(choice).to_have_text("deepseek-chat (unavailable)")  # the admin's: no key
    p.click("#drawer-close")
    p.fill("header input[type=password]", own_key_user)
    p.get_by_role("button", name="Use key").click()
    p.click("#picker")
    expect(choice).to_have_text("deepseek-chat")  # the user's own key serves it
    assert page.errors == []
