"""CORS in a real browser: a page on another 127.0.0.1 port (its own real HTTP server)
calls the gateway's /v1/chat/completions with fetch — with a key, so Chromium sends a
preflight first. From the origin given to --cors-origin the call succeeds and its
headers are readable; from any other origin Chromium blocks it."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from playwright.sync_api import Browser

from ..threaded_http import QuietFiles, serving_on_a_thread
from .conftest import gateway, served_lines

FETCH = """async ([url, key, stream]) => {
  try {
    const reply = await fetch(url + "/v1/chat/completions", {
      method: "POST",
      headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json"},
      body: JSON.stringify({model: "demo", stream,
                            messages: [{role: "user", content: "hi"}]}),
    });
    return {status: reply.status, body: await reply.text(),
            requestId: reply.headers.get("x-saferouter-request-id"),
            timing: reply.headers.get("server-timing")};
  } catch (error) {
    return {error: String(error)};
  }
}"""


def test_a_listed_origin_calls_the_api_and_another_is_blocked(
    browser: Browser, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>an app</title><p>an app</p>")
    files = functools.partial(QuietFiles, directory=str(site))
    with serving_on_a_thread(files) as app, serving_on_a_thread(files) as stranger:
        with gateway(tmp_path / "data", "--cors-origin", app) as served:
            admin = next(line for line in served_lines(served) if line.startswith("sk-sr-"))
            results = {}
            for origin in (app, stranger):
                context = browser.new_context()
                page = context.new_page()
                page.goto(origin + "/")
                results[origin] = [
                    page.evaluate(FETCH, [served.url, admin, stream]) for stream in (False, True)
                ]
                context.close()
    whole, streamed = results[app]
    assert whole["status"] == 200, whole
    assert json.loads(whole["body"])["choices"][0]["message"]["content"].startswith("You said")
    assert whole["requestId"].startswith("req_") and "gateway" in whole["timing"]
    assert streamed["status"] == 200 and streamed["body"].rstrip().endswith("data: [DONE]")
    # Chromium refuses the preflight's answer: fetch fails without a status to read
    assert results[stranger] == [{"error": "TypeError: Failed to fetch"}] * 2
