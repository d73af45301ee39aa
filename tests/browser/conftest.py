"""Real Chromium (Debian's, driven by Playwright) against a real `saferouter serve`."""

from __future__ import annotations

import os
import queue
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Playwright, sync_playwright

from saferouter.storage import ActivityEntry, Settlement
from saferouter.storage.sqlite import DB_NAME, SQLiteStore

from ..processes import Served, free_port, serving
from ..rewriting_proxy import rewriting_proxy as rewriting_proxy  # the page tests import it here
from ..servers import FakeUpstream, fake_upstream, write_catalog

CHROMIUM = os.environ.get("SAFEROUTER_CHROMIUM", "/usr/bin/chromium")
WEB = Path(__file__).resolve().parents[2] / "saferouter" / "web"  # the pages, as opened from disk
SHOTS = Path(os.environ.get("SAFEROUTER_SCREENSHOTS", "/tmp/saferouter-screenshots"))
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not shutil.which(CHROMIUM):
        message = f"{CHROMIUM} is missing (apt-get install chromium; make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield browser
    browser.close()


class Site:
    def __init__(self, url: str, admin_key: str, data_dir: Path) -> None:
        self.url = url
        self.admin_key = admin_key
        self.data_dir = data_dir


@contextmanager
def gateway(
    data: Path, *extra: str, audience: str | None = None, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """`saferouter serve` whose audience is the authority of its URL — the origin prefix a
    verifier pins for its logs — unless another ``audience`` is given."""
    port = free_port()
    env = {**(env or {}), "SAFEROUTER_AUDIENCE": audience or f"127.0.0.1:{port}"}
    with serving(data, *extra, env=env, port=port) as served:
        yield served


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("browser") / "data"
    with gateway(data) as served:
        admin = next(line for line in served_lines(served) if line.startswith("sk-sr-"))
        yield Site(served.url, admin, data)


def served_lines(served: object) -> list[str]:
    """What `saferouter serve` printed before it was ready (the admin key among it)."""
    process = served.process  # type: ignore[attr-defined]
    lines = []
    while True:
        line = process.stdout.readline()
        lines.append(line.strip())
        if "Running on" in line or not line:
            return lines


class Watched:
    """A page whose console errors and failed requests are collected."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on(
            "requestfailed", lambda r: self.errors.append(f"request failed: {r.url} {r.failure}")
        )
        page.on(
            "response",
            lambda r: self.errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
        )

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Watched]:
    context = browser.new_context(base_url=site.url, color_scheme="light")
    page = context.new_page()
    page.goto("/")
    page.evaluate("key => localStorage.setItem('saferouter.key', key)", site.admin_key)
    yield Watched(page)
    context.close()


@contextmanager
def upstream_on_a_thread() -> Iterator[FakeUpstream]:
    """The fake upstream of tests/servers.py (a trio app, a real HTTP server) on a thread
    of its own, for these synchronous tests; stopped when the block ends."""
    started: queue.Queue[tuple[FakeUpstream, trio.Event, trio.lowlevel.TrioToken]] = queue.Queue()

    async def main() -> None:
        stop = trio.Event()
        async with fake_upstream() as state:
            started.put((state, stop, trio.lowlevel.current_trio_token()))
            await stop.wait()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    state, stop, token = started.get(timeout=30)
    try:
        yield state
    finally:
        trio.from_thread.run_sync(stop.set, trio_token=token)
        thread.join(timeout=30)


def step_rows(page: Page, selector: str) -> list[tuple[str, str]]:
    """Each listed check's state ("true", "false", "unchecked") and text."""
    return [
        (li.get_attribute("data-ok") or "", li.inner_text()) for li in page.locator(selector).all()
    ]


def flip(hex_hash: str) -> str:
    """A hex hash with one bit of its first byte flipped."""
    return f"{int(hex_hash[:2], 16) ^ 1:02x}{hex_hash[2:]}"


def send_chat(page: Page, prompt: str) -> Locator:
    """A new conversation on the chat page, ``prompt`` sent: the answer's message box."""
    page.goto("/chat")
    page.click("#new")
    page.fill("#prompt", prompt)
    page.click("#send")
    return page.locator(".message.assistant").last


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@contextmanager
def site_with_upstream(folder: Path, extra_catalog: str = "") -> Iterator[Site]:
    """A gateway whose catalog adds the fake providers of tests/servers.py (available:
    their key is set, their models answer from a fake upstream on a thread) and
    ``extra_catalog``."""
    with upstream_on_a_thread() as upstream:
        config = write_catalog(folder / "catalog.toml", upstream.url)
        config.write_text(config.read_text() + extra_catalog)
        env = {"FAKE_API_KEY": "sk-fake-operator"}
        with gateway(folder / "data", "--config", str(config), env=env) as served:
            admin = next(line for line in served_lines(served) if line.startswith("sk-sr-"))
            yield Site(served.url, admin, folder / "data")


def record(site: Site, key_id: str, attempts: list[ActivityEntry]) -> None:
    """Settle one request per attempt of ``key_id`` (at its own time and cost) through a
    store sharing the gateway's SQLite file: entries from any time, any value."""

    async def settle() -> None:
        store = SQLiteStore(site.data_dir / DB_NAME)
        for a in attempts:
            at, cost = a.created_at, a.cost_micro_usd
            await store.settle(Settlement(key_id, a.request_id, 0, cost, 1, (a,), at))
        await store.close()

    trio.run(settle)
