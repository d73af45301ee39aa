"""The Activity page's charts (issue 16), in real Chromium against a real `saferouter
serve`: for each window, every chart draws one bar (or one point per measured bucket)
per point of the series the page was sent, with its values; the series holds the known
traffic (live requests and entries recorded earlier, across several buckets); a hover
shows the bucket's time and values; the charts fit a 390 px phone, light and dark."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ..app.stores import entry
from .conftest import Site, Watched, record, shot

WINDOWS = {"15m": (60, 15), "1h": (60, 60), "24h": (900, 96), "7d": (10800, 56)}
# entries recorded earlier: seconds ago → (latency ms, TTFB ms, cost µUSD), two each
EARLIER = {300: (120.0, 30.0, 2500), 2400: (800.0, 90.0, 400), 5 * 3600: (1500.0, 200.0, 9000)}
EARLIER |= {3 * 86400: (60.0, 20.0, 100)}


@pytest.fixture(scope="module")
def traffic(site: Site) -> dict[str, int]:
    """Known traffic on the site: three live chat requests (two of another key) and two
    entries at each of EARLIER's times, recorded by a store sharing the gateway's
    file; how many entries each window holds."""
    admin = {"Authorization": f"Bearer {site.admin_key}"}
    made = httpx.post(site.url + "/v1/keys", json={"name": "charts"}, headers=admin).json()
    chat = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    for key in (site.admin_key, made["key"], made["key"]):
        sent = httpx.post(
            site.url + "/v1/chat/completions",
            json=chat,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert sent.status_code == 200, sent.text
    now = time.time()

    attempts = [
        entry(
            f"earlier-{ago}-{n}",
            made["id"],
            now - ago,
            cost,
            latency_ms=latency * (n + 1),
            ttfb_ms=ttfb,
        )
        for ago, (latency, ttfb, cost) in EARLIER.items()
        for n in range(2)  # both in one bucket, whatever the grid
    ]
    attempts.append(entry("earlier-failed", made["id"], now - 300, status=502, outcome="error"))

    record(site, made["id"], attempts)
    spans = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400}
    # the live three, and the failed one 300 s ago, are in every window
    return {w: 4 + 2 * sum(1 for ago in EARLIER if ago < s - 120) for w, s in spans.items()}


def choose(page: Page, window: str) -> dict[str, Any]:
    """Choose ``window`` on the Activity page; the stats the page was sent for it."""
    with page.expect_response(lambda r: f"/v1/activity/stats?window={window}" in r.url) as sent:
        page.select_option("#window", window)
    stats: dict[str, Any] = sent.value.json()
    return stats


def drawn(page: Page, chart: str, series: str, shape: str) -> dict[int, float]:
    """The drawn marks of one series of a chart: bucket start → value."""
    marks = page.locator(f"#{chart} g[data-name='{series}'] {shape}")
    return {
        int(m["start"]): float(m["value"])
        for m in marks.evaluate_all("ms => ms.map(m => ({...m.dataset}))")
    }


def agrees(page: Page, chart: str, series: str, shape: str, want: dict[int, Any]) -> None:
    """The chart draws ``want`` (start → value; None: no mark): the same number of
    marks, and the same values where the drawn buckets are the sent ones (a poll that
    came in since may have moved the grid on by a bucket)."""
    marks = [start for start, value in want.items() if value is not None]
    expect(page.locator(f"#{chart} g[data-name='{series}'] {shape}")).to_have_count(len(marks))
    got = drawn(page, chart, series, shape)
    shared = [start for start in got if start in want]
    assert len(shared) >= len(got) - 1
    assert {s: got[s] for s in shared} == {s: float(want[s]) for s in shared}


def point_at(page: Page, chart: str, series: str, start: int) -> None:
    """Rest the mouse on one bucket's column of a chart. The column is found and measured
    in one go in the page: the page redraws its charts on every poll (each 5 s), so a
    node located first may be gone by the time it would be hovered."""
    where = page.evaluate(
        """([chart, series, start]) => {
            const bar = document.querySelector(
                `#${chart} g[data-name='${series}'] rect[data-start='${start}']`);
            if (!bar) return null;
            bar.scrollIntoView({ block: "center" });
            const r = bar.getBoundingClientRect();  // a 0-height bar's column is hoverable too
            return [r.x + r.width / 2, r.y + r.height - 1];
        }""",
        [chart, series, start],
    )
    assert where is not None, (chart, series, start)
    page.mouse.move(*where)


def test_each_window_draws_its_series(
    page: Watched, site: Site, traffic: dict[str, int], tmp_path: Path
) -> None:
    p = page.page
    p.goto("/activity")
    p.add_style_tag(content="header.nav { position: static }")  # not over the charts' picture
    for window, (bucket_s, points) in WINDOWS.items():
        stats = choose(p, window)
        series = stats["series"]
        assert (stats["bucket_s"], len(series)) == (bucket_s, points)
        assert sum(b["requests"] for b in series) == traffic[window], window
        by_start = {b["start"]: b for b in series}

        def of(pick: Any, by_start: dict[int, Any] = by_start) -> dict[int, Any]:
            return {start: pick(b) for start, b in by_start.items()}

        agrees(p, "chart-requests", "requests", "rect", of(lambda b: b["requests"]))
        agrees(p, "chart-requests", "errors", "rect", of(lambda b: b["errors"]))
        agrees(p, "chart-spend", "spend", "rect", of(lambda b: b["cost_micro_usd"]))
        for chart, field in (("chart-latency", "latency_ms"), ("chart-ttfb", "ttfb_ms")):
            for pct in ("p50", "p95"):
                agrees(p, chart, pct, "circle", of(lambda b, f=field, q=pct: b[f][q]))
        measured = [b for b in series if b["latency_ms"]["p50"] is not None]
        assert len(measured) >= 2, window  # lines across buckets, not one dot
        p.locator(".charts").screenshot(path=str(tmp_path / f"activity-charts-{window}.png"))
    assert page.errors == []


def test_a_hover_shows_the_bucket_and_its_values(
    page: Watched, site: Site, traffic: dict[str, int], tmp_path: Path
) -> None:
    p = page.page
    p.set_viewport_size({"width": 1200, "height": 900})
    if time.time() % 60 > 40:  # the 1 h grid (minutes) is not to move on under the mouse
        time.sleep(61 - time.time() % 60)
    p.goto("/activity")
    stats = choose(p, "1h")
    busy = next(b for b in stats["series"] if b["cost_micro_usd"] == 5000)  # 300 s ago
    assert (busy["requests"], busy["errors"]) == (3, 1)
    p.add_style_tag(content="header.nav { position: static }")  # not over the charts
    point_at(p, "chart-requests", "requests", busy["start"])
    tip = p.locator("#chart-requests .chart-tip")
    expect(tip).to_be_visible()
    clock = p.evaluate(
        "s => new Date(s * 1000).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'})",
        busy["start"],
    )
    expect(tip).to_contain_text(clock)
    expect(tip).to_contain_text(f"requests: {busy['requests']}")
    expect(tip).to_contain_text("errors: 1")
    point_at(p, "chart-spend", "spend", busy["start"])
    expect(p.locator("#chart-spend .chart-tip")).to_contain_text("spend: $0.005")
    shot(p, "activity-charts-light")
    p.locator(".charts").screenshot(path=str(tmp_path / "activity-charts-light.png"))
    p.mouse.move(0, 0)
    expect(tip).to_be_hidden()
    assert page.errors == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_charts_fit_a_phone(
    browser: Browser, site: Site, traffic: dict[str, int], tmp_path: Path, scheme: str
) -> None:
    context = browser.new_context(
        base_url=site.url, color_scheme=scheme, viewport={"width": 390, "height": 844}
    )
    p = context.new_page()
    p.goto("/")
    p.evaluate("key => localStorage.setItem('saferouter.key', key)", site.admin_key)
    p.goto("/activity")
    choose(p, "24h")
    expect(p.locator("#chart-requests g[data-name='requests'] rect")).to_have_count(96)
    for figure in p.locator(".chart").all():
        box = figure.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    # every axis label inside its chart
    for svg in p.locator(".chart svg").all():
        assert svg.evaluate(
            "s => [...s.querySelectorAll('text')].every(t => {"
            " const b = t.getBBox(), w = s.viewBox.baseVal.width;"
            " return b.x >= 0 && b.x + b.width <= w; })"
        )
    p.locator("#chart-latency svg").hover()
    expect(p.locator("#chart-latency .chart-tip")).to_be_visible()
    # every time label clear of the next
    for svg in p.locator(".chart svg").all():
        assert svg.evaluate(
            "s => [...s.querySelectorAll('text[text-anchor=middle]')].map(t => t.getBBox())"
            ".every((b, i, all) => i === 0 || all[i - 1].x + all[i - 1].width <= b.x)"
        )
    shot(p, f"activity-charts-390-{scheme}")
    p.add_style_tag(content="header.nav { position: static }")  # not over the charts' picture
    p.locator(".charts").screenshot(path=str(tmp_path / f"activity-charts-390-{scheme}.png"))
    context.close()
