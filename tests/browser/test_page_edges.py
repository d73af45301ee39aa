"""The rough edges a new user hit on the pages (issue 16 §5), in real Chromium against a
real `saferouter serve` with two fake providers available beside the demo: the chat
bubble keeps what was typed, "Try it" masks the key, /models puts what works first and
filters to it, the Keys page makes admin keys with credits and limits."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from .conftest import Site, Watched, send_chat, shot, site_with_upstream

TYPED = (
    "first line\nsecond line\n\n```python\ndef f():\n    return '<b>x</b>'\n```\nafter <i>it</i>"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with site_with_upstream(tmp_path_factory.mktemp("edges")) as site:
        yield site


def test_the_chat_bubble_keeps_line_breaks_and_code_as_text(page: Watched) -> None:
    p = page.page
    answer = send_chat(p, TYPED)
    expect(answer.locator(".content")).to_contain_text("You said:", timeout=15_000)
    for _ in ("as sent", "as stored and shown again"):
        bubble = p.locator(".message.user").last
        # innerText is the text as rendered: collapsed white space would join the lines
        typed = [t.rstrip("\n") for t in bubble.locator(".typed").all_inner_texts()]
        assert typed == ["first line\nsecond line", "after <i>it</i>"]
        code = bubble.locator("pre code")
        assert code.inner_text().rstrip("\n") == "def f():\n    return '<b>x</b>'"
        assert code.get_attribute("data-lang") == "python"
        assert bubble.locator("b, i").count() == 0  # what was typed never becomes HTML
        shot(p, "chat-typed")
        p.reload()
    assert page.errors == []


def _masked(key: str) -> str:
    return f"{key[:6]}…{key[-4:]}"


def test_try_it_shows_the_key_masked_and_copies_it_whole(page: Watched, site: Site) -> None:
    p = page.page
    p.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    key = site.admin_key
    p.goto("/models")
    p.locator("article", has_text="demo-mini").get_by_role("button", name="Try it").click()
    snippet, reveal = p.locator("#snippet"), p.locator("#reveal")
    expect(snippet).to_contain_text(f'Bearer {_masked(key)}"')
    assert key not in snippet.inner_text()
    reveal.click()
    expect(reveal).to_have_attribute("aria-pressed", "true")
    expect(snippet).to_contain_text(f"Bearer {key}")
    p.get_by_role("tab", name="python").click()  # a tab keeps what was chosen
    expect(snippet).to_contain_text(f'api_key="{key}"')
    reveal.click()
    expect(snippet).to_contain_text(f'api_key="{_masked(key)}"')
    shot(p, "models-try-it-masked")
    p.get_by_role("button", name="Copy").click()
    expect(p.locator("#copied")).to_have_text("Copied.")
    copied = p.evaluate("navigator.clipboard.readText()")
    assert f'api_key="{key}"' in copied and 'model="demo-mini"' in copied
    assert key not in snippet.inner_text()  # copying did not reveal it
    reveal.click()
    expect(snippet).to_contain_text(f'api_key="{key}"')
    p.locator("#close").click()  # closed while revealed
    p.locator("article", has_text="chain-a").get_by_role("button", name="Try it").click()
    expect(snippet).to_contain_text(_masked(key))  # every opening starts masked

    p.goto("/")  # the quick start too
    quickstart = p.locator("#quickstart-code")
    expect(quickstart).to_contain_text(f'api_key="{_masked(key)}"')
    p.locator("#quickstart-reveal").click()
    expect(quickstart).to_contain_text(f'api_key="{key}"')
    assert page.errors == []


def _cards(p: Page) -> list[tuple[str, str]]:
    """Each model card's id and availability badge, in page order."""
    return [
        (
            card.locator("strong").first.inner_text(),
            card.locator(".badge.ok, .badge.bad").inner_text(),
        )
        for card in p.locator("article").all()
    ]


def test_models_shows_the_available_ones_first_and_filters_to_them(page: Watched) -> None:
    p = page.page
    p.goto("/models")
    expect(p.locator("article")).to_have_count(18)
    cards = _cards(p)
    states = [state for _, state in cards]
    assert states == sorted(states)  # "available" < "unavailable": the usable ones first
    # then by provider name: Fake upstream, Fake upstream two, the demo; DeepSeek, Z.AI
    assert [model for model, _ in cards[:5]] == [
        "chain-a",
        "hedged",
        "chain-b",
        "demo",
        "demo-mini",
    ]
    assert cards[5][0] == "deepseek-flash" and cards[-1][0] == "glm-5.3"
    p.get_by_label("available only").check()
    expect(p.locator("article")).to_have_count(5)
    expect(p.locator("#count")).to_have_text("5 of 18")
    assert {state for _, state in _cards(p)} == {"available"}
    p.select_option("#provider", "deepseek")  # filters combine: nothing available there
    expect(p.locator("article")).to_have_count(0)
    p.select_option("#provider", "fake")
    expect(p.locator("article")).to_have_count(2)
    p.get_by_label("available only").uncheck()
    p.select_option("#provider", "")
    expect(p.locator("article")).to_have_count(18)
    assert page.errors == []


def _listed(site: Site, name: str) -> dict[str, object]:
    keys = httpx.get(
        site.url + "/v1/keys", headers={"Authorization": f"Bearer {site.admin_key}"}
    ).json()["data"]
    (key,) = [k for k in keys if k["name"] == name]
    return key  # type: ignore[no-any-return]


def _create(p: Page, name: str, *, credits: str = "", rpm: str = "", tpm: str = "") -> None:
    p.fill("#name", name)
    p.fill("#credits", credits)
    p.fill("#rpm", rpm)
    p.fill("#tpm", tpm)


def test_the_keys_page_creates_admin_keys_with_credits_and_limits(
    page: Watched, site: Site
) -> None:
    p = page.page
    p.goto("/keys")
    _create(p, "ops lead", credits="2.5", rpm="7", tpm="7000")
    p.get_by_label("admin key").check()
    p.click("#create button[type=submit]")
    expect(p.locator("#created")).to_contain_text("Admin key “ops lead” created.")
    secret = p.locator("#created code.secret").inner_text()
    made = _listed(site, "ops lead")
    assert (made["role"], made["rpm_limit"], made["tpm_limit"]) == ("admin", 7, 7000)
    assert made["balance_micro_usd"] == 2_500_000
    row = p.locator("#keys tbody tr", has_text=secret[:10])
    expect(row.locator("td.limits")).to_have_text("7 rpm · 7000 tpm")
    expect(p.get_by_label("admin key")).not_to_be_checked()  # the form starts over
    # the new key is an admin's: it lists keys
    listed = httpx.get(site.url + "/v1/keys", headers={"Authorization": f"Bearer {secret}"})
    assert listed.status_code == 200

    _create(p, "one a minute", rpm="1")
    p.click("#create button[type=submit]")
    expect(p.locator("#created")).to_contain_text("Key “one a minute” created.")
    user = p.locator("#created code.secret").inner_text()
    made = _listed(site, "one a minute")
    assert (made["role"], made["rpm_limit"], made["tpm_limit"]) == ("user", 1, None)
    assert made["metered"] is False
    chat = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    sent = [
        httpx.post(
            site.url + "/v1/chat/completions",
            json=chat,
            headers={"Authorization": f"Bearer {user}"},
            timeout=30,
        ).status_code
        for _ in range(2)
    ]
    assert sent == [200, 429]  # the limit set on the page holds

    _create(p, "too fast", tpm="9999999999")  # the gateway's own check, shown
    p.click("#create button[type=submit]")
    expect(p.locator("#created [role=alert]")).to_contain_text("'tpm_limit' must be an integer")
    shot(p, "keys-admin-created")
    assert [e for e in page.errors if "400" not in e] == []  # only the refusal asked for
