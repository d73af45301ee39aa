"""The Activity page under what the first tests did not walk (atk-pages on issue 16), in
real Chromium against a real `saferouter serve`: a window chosen while the last poll is
still on its way, a tap on a phone, time zones whose offset is not whole hours, extreme
values recorded straight into the gateway's store, and a resize under a tooltip (the
keyboard's way to the values: test_activity_keyboard.py)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from ..app.stores import entry
from .conftest import Site, Watched, record, shot


@pytest.fixture
def phone(browser: Browser, site: Site) -> Iterator[Watched]:
    """The Activity page on a 390 px touch phone in India (UTC+05:30), signed in."""
    context = browser.new_context(
        base_url=site.url,
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
        timezone_id="Asia/Kolkata",
    )
    page = context.new_page()
    page.goto("/")
    page.evaluate("key => localStorage.setItem('saferouter.key', key)", site.admin_key)
    watched = Watched(page)
    page.goto("/activity")
    expect(page.locator("#chart-requests g[data-name='requests'] rect")).to_have_count(60)
    yield watched
    context.close()


def centre(page: Page, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def time_labels(page: Page, chart: str) -> list[str]:
    return page.locator(f"#{chart} svg text[text-anchor=middle]").all_text_contents()


def test_a_tap_shows_the_tooltip_until_a_tap_elsewhere(phone: Watched) -> None:
    p = phone.page
    tip = p.locator("#chart-requests .chart-tip")
    p.locator("#chart-requests svg").scroll_into_view_if_needed()
    p.touchscreen.tap(*centre(p, "#chart-requests svg"))
    expect(tip).to_be_visible()  # a touch's pointerleave comes with its lifting: not a leaving
    expect(tip).to_contain_text("requests: ")
    p.touchscreen.tap(*centre(p, "h1"))
    expect(tip).to_be_hidden()
    assert phone.errors == []


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/St_Johns", "Australia/Adelaide"])
def test_time_labels_where_the_offset_is_not_whole_hours(
    browser: Browser, site: Site, zone: str
) -> None:
    """7 d has 3 h buckets aligned to UTC: at +05:30 no bucket edge is a round local
    hour, and the axis had no time at all."""
    context = browser.new_context(base_url=site.url, timezone_id=zone)
    p = context.new_page()
    p.goto("/")
    p.evaluate("key => localStorage.setItem('saferouter.key', key)", site.admin_key)
    p.goto("/activity")
    with p.expect_response(lambda r: "window=7d" in r.url):
        p.select_option("#window", "7d")
    expect(p.locator("#chart-requests g[data-name='requests'] rect")).to_have_count(56)
    labels = time_labels(p, "chart-requests")
    assert len(labels) >= 3, labels
    assert len(set(labels)) == len(labels), labels
    # each at its time: the label's tick between its bucket's edges, in proportion
    ticks = p.evaluate("""() => {
        const svg = document.querySelector('#chart-requests svg');
        const bars = [...svg.querySelectorAll("g[data-name='requests'] rect")];
        const gap = +bars[1].getAttribute('x') - +bars[0].getAttribute('x')
            - +bars[0].getAttribute('width');  // a bar starts half a gap into its bucket
        const x0 = +bars[0].getAttribute('x') - gap / 2, x1 = x0 + gap
            + +bars[0].getAttribute('width');
        const start = +bars[0].dataset.start, bucket = +bars[1].dataset.start - start;
        const ticks = [...svg.querySelectorAll('line')].filter(l => l.getAttribute('x1') ===
            l.getAttribute('x2') && +l.getAttribute('y2') > +l.getAttribute('y1'));
        return ticks.map(l => start + (+l.getAttribute('x1') - x0) / (x1 - x0) * bucket);
    }""")
    # each at a local midnight (the 7 d axis reads dates), to within a minute of drawing
    local = p.evaluate("ts => ts.map(t => t - new Date(t * 1000).getTimezoneOffset() * 60)", ticks)
    assert len(local) == len(labels) and all(
        abs(t - round(t / 86400) * 86400) < 60 for t in local
    ), local
    context.close()


@pytest.fixture
def extremes(site: Site) -> dict[str, Any]:
    """Entries recorded straight into the gateway's store, in the last 15 minutes: a
    spend of 10^15 µUSD taking 600 s, and answers of 0 ms and 0.4 ms; the window's stats."""
    admin = {"Authorization": f"Bearer {site.admin_key}"}
    made = httpx.post(site.url + "/v1/keys", json={"name": "extremes"}, headers=admin).json()
    now = time.time()
    attempts = [
        entry("huge", made["id"], now - 150, 10**15, latency_ms=600_000.0, ttfb_ms=0.0),
        entry("instant", made["id"], now - 90, 0, latency_ms=0.0, ttfb_ms=0.0),
        entry("quick", made["id"], now - 30, 1, latency_ms=0.4, ttfb_ms=0.4),
    ]

    record(site, made["id"], attempts)
    stats: dict[str, Any] = httpx.get(
        site.url + "/v1/activity/stats?window=15m", headers=admin
    ).json()
    return stats


def axis_values(page: Page, chart: str) -> list[str]:
    return page.locator(f"#{chart} svg text[text-anchor=end]").all_text_contents()


def test_extreme_values_read_right(page: Watched, extremes: dict[str, Any]) -> None:
    """Every axis reads three different values (a top of 1 ms read "0 ms, 1 ms, 1 ms"),
    inside its chart, and nothing on the page reads NaN, Infinity or undefined."""
    p = page.page
    p.set_viewport_size({"width": 1200, "height": 900})
    p.goto("/activity")
    with p.expect_response(lambda r: "window=15m" in r.url):
        p.select_option("#window", "15m")
    expect(p.locator("#chart-requests g[data-name='requests'] rect")).to_have_count(15)
    expect(p.locator("#chart-spend svg text[text-anchor=end]").last).to_have_text("$1000000000.00")
    for chart in ("chart-requests", "chart-latency", "chart-ttfb", "chart-spend"):
        values = axis_values(p, chart)
        assert len(set(values)) == 3, (chart, values)
    assert axis_values(p, "chart-latency")[-1] == "600 s"
    # the totals and the log read times as the axes do (not "600000 ms")
    expect(p.locator("#totals")).to_contain_text("0 ms / 600 s")
    expect(p.locator("#log tbody")).to_contain_text("600 s")
    assert p.evaluate("""() => [...document.querySelectorAll('.chart svg')].every(s =>
        [...s.querySelectorAll('text')].every(t => { const b = t.getBBox();
            return b.x >= 0 && b.x + b.width <= s.viewBox.baseVal.width; }))""")
    text = p.evaluate(
        "() => document.body.innerText + [...document.querySelectorAll('svg')]"
        ".map(s => s.outerHTML).join('')"
    )
    for word in ("NaN", "Infinity", "undefined"):
        assert word not in text
    shot(p, "activity-extremes")
    assert page.errors == []


def test_a_resize_under_a_tooltip_leaves_the_page_narrow(page: Watched) -> None:
    p = page.page
    p.set_viewport_size({"width": 1200, "height": 900})
    p.goto("/activity")
    p.add_style_tag(content="header.nav { position: static }")  # not over the charts
    expect(p.locator("#chart-requests g[data-name='requests'] rect")).to_have_count(60)
    box = p.locator("#chart-requests svg").bounding_box()
    assert box is not None
    p.mouse.move(box["x"] + box["width"] - 20, box["y"] + box["height"] / 2)
    tip = p.locator("#chart-requests .chart-tip")
    expect(tip).to_be_visible()
    p.set_viewport_size({"width": 390, "height": 844})
    p.wait_for_function(
        "() => document.querySelector('#chart-requests svg').viewBox.baseVal.width < 400"
    )
    width = p.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390
    if tip.is_visible():
        figure = p.locator("#chart-requests").bounding_box()
        shown = tip.bounding_box()
        assert figure is not None and shown is not None
        assert (
            figure["x"] <= shown["x"]
            and shown["x"] + shown["width"] <= figure["x"] + figure["width"]
        )
    assert page.errors == []


def test_a_window__chosen_during_a_poll_is_the_one_shown(page: Watched) -> None:
    """The page's first poll (1 h) is held on its way; 24 h is chosen and drawn; then
    the 1 h answer arrives, late. The page shows 24 h, never the window it left."""
    p = page.page
    held: list[Route] = []
    hold = {"1h"}  # the windows whose stats are held on their way

    def route(route: Route) -> None:
        if route.request.url.split("window=")[1] in hold:
            held.append(route)
        else:
            route.continue_()

    p.route("**/v1/activity/stats*", route)
    with p.expect_request(lambda r: "window=1h" in r.url):
        p.goto("/activity")
    with p.expect_response(lambda r: "window=24h" in r.url):
        p.select_option("#window", "24h")
    expect(p.locator("#chart-requests g[data-name='requests'] rect")).to_have_count(96)
    hold.add("24h")  # from now on every poll is held: only the late answer can draw
    p.evaluate("""() => { window.__buckets = [];
        new MutationObserver(() => window.__buckets.push(
            document.getElementById('bucket').textContent))
          .observe(document.getElementById('bucket'), { childList: true, subtree: true,
                                                       characterData: true }); }""")
    with p.expect_event("requestfinished", lambda r: "window=1h" in r.url):
        held[0].continue_()
    with pytest.raises(PlaywrightTimeout):  # the late answer drawn: the old window is back
        p.wait_for_function("() => window.__buckets.includes('per minute')", timeout=3000)
    expect(p.locator("#bucket")).to_have_text("per 15 minutes")
    expect(p.locator("#chart-requests g[data-name='requests'] rect")).to_have_count(96)
    for late in held[1:]:
        late.continue_()
    assert page.errors == []


@pytest.mark.parametrize("width", [390, 1200])
def test_time_labels_are_evenly_spaced(browser: Browser, site: Site, width: int) -> None:
    """Each time label stands under its own time, one step apart: a label pushed in
    from the edge crowded out its neighbour, and 08:45, 09:15, 09:30 read as a gap."""
    context = browser.new_context(
        base_url=site.url, viewport={"width": width, "height": 900}, timezone_id="UTC"
    )
    p = context.new_page()
    p.goto("/")
    p.evaluate("key => localStorage.setItem('saferouter.key', key)", site.admin_key)
    p.goto("/activity")
    for window, points in (("1h", 60), ("15m", 15), ("24h", 96), ("7d", 56)):
        if window != "1h":
            with p.expect_response(lambda r, w=window: f"window={w}" in r.url):
                p.select_option("#window", window)
        expect(p.locator("#chart-spend g[data-name='spend'] rect")).to_have_count(points)
        for chart in ("chart-requests", "chart-latency", "chart-spend"):
            where = p.evaluate(
                """chart => {
                    const svg = document.querySelector(`#${chart} svg`);
                    const ticks = [...svg.querySelectorAll('line')].filter(l =>
                        l.getAttribute('x1') === l.getAttribute('x2'));
                    const labels = [...svg.querySelectorAll('text[text-anchor=middle]')];
                    return [ticks.map(l => +l.getAttribute('x1')),
                            labels.map(t => +t.getAttribute('x'))];
                }""",
                chart,
            )
            ticks, labels = where
            # one label only where a wide money axis (10^15 µUSD, recorded above)
            # leaves room for no second
            assert labels, (window, chart)
            assert labels == ticks, (window, chart)  # each label at its own time
            gaps = [b - a for a, b in itertools.pairwise(labels)]
            assert max(gaps, default=0) - min(gaps, default=0) < 1, (window, chart, labels)
    context.close()
