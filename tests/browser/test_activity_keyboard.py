"""The Activity charts without a mouse (atk-pages on issue 16), in real Chromium against
a real `saferouter serve`: Tab reaches a chart, the arrow keys, Home and End walk its
buckets, Escape closes the tooltip; before, only a mouse or a finger could read a value."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from .conftest import Site, Watched, shot


def tip_reads_bucket(p: Page, index: int, *, screen_px: int | None = None) -> None:
    """Wait until the requests chart's tooltip reads its drawn bucket ``index`` (from
    the end when negative), both read in one step in the page: a poll may move the grid
    on by a bucket at a minute's turn. ``screen_px``: the tooltip also lies inside it."""
    p.wait_for_function(
        """([index, screen]) => {
            const bars = [...document.querySelectorAll(
                "#chart-requests g[data-name='requests'] rect")];
            const bar = bars.at(index);
            const clock = new Date(bar.dataset.start * 1000)
                .toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
            const tip = document.querySelector("#chart-requests .chart-tip");
            const box = tip.getBoundingClientRect();
            return !tip.hidden && tip.textContent.startsWith(clock + " – ")
                && tip.textContent.includes("requests: ")
                && (screen === null || (box.left >= 0 && box.right <= screen));
        }""",
        arg=[index, screen_px],
    )


def test_a_keyboard_reads_every_bucket(browser: Browser, site: Site) -> None:
    """Tab reaches each chart; its tooltip opens on the latest bucket, Home and End
    and the arrows walk the buckets (first and last inside a 390 px screen), Escape
    closes it; without a mouse the values could not be read at all."""
    context = browser.new_context(base_url=site.url, viewport={"width": 390, "height": 844})
    p = context.new_page()
    p.goto("/")
    p.evaluate("key => localStorage.setItem('saferouter.key', key)", site.admin_key)
    watched = Watched(p)
    p.goto("/activity")
    with p.expect_response(lambda r: "window=15m" in r.url):
        p.select_option("#window", "15m")
    expect(p.locator("#chart-requests g[data-name='requests'] rect")).to_have_count(15)
    tip = p.locator("#chart-requests .chart-tip")

    def reads(index: int) -> None:
        tip_reads_bucket(p, index, screen_px=390)

    p.focus("#app")
    p.keyboard.press("Tab")
    assert p.evaluate("() => document.activeElement.closest('figure')?.id") == "chart-requests"
    reads(-1)
    p.keyboard.press("Home")
    reads(0)
    p.keyboard.press("ArrowRight")
    reads(1)
    p.keyboard.press("ArrowLeft")
    p.keyboard.press("ArrowLeft")  # stays on the first
    reads(0)
    p.keyboard.press("End")
    reads(-1)
    p.keyboard.press("Escape")
    expect(tip).to_be_hidden()
    p.keyboard.press("Tab")
    expect(p.locator("#chart-latency .chart-tip")).to_contain_text("p95: ")
    expect(tip).to_be_hidden()
    shot(p, "activity-keyboard-390")
    assert watched.errors == []
    context.close()


def test_the_arrows_go_on_from_the_bucket_clicked(page: Watched) -> None:
    p = page.page
    p.set_viewport_size({"width": 1200, "height": 900})
    p.goto("/activity")
    p.add_style_tag(content="header.nav { position: static }")  # not over the charts
    bars = p.locator("#chart-requests g[data-name='requests'] rect")
    expect(bars).to_have_count(60)
    where = p.evaluate(
        """() => {
            const bar = document.querySelectorAll(
                "#chart-requests g[data-name='requests'] rect")[30];
            bar.scrollIntoView({ block: "center" });
            const r = bar.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height - 1];
        }"""
    )
    p.mouse.click(where[0], where[1])
    tip_reads_bucket(p, 30)
    p.keyboard.press("ArrowRight")
    tip_reads_bucket(p, 31)
    assert page.errors == []
