"""Per-key requests and tokens per minute, the same across worker processes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import trio

from ..processes import CHAT, new_key, serving


async def wait_for_fresh_window(margin_s: float = 4.0) -> None:
    """Start right after a minute boundary so a test's requests share one window."""
    left = 60 - time.time() % 60
    if left < margin_s:
        await trio.sleep(left + 0.05)


def test_requests_per_minute_hold_across_two_workers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = new_key(data, "--name", "limited", "--rpm", "10")
    with serving(data, "--workers", "2") as served:
        trio.run(wait_for_fresh_window)
        responses = [
            httpx.post(
                served.url + "/v1/chat/completions",
                json=CHAT,
                timeout=10,
                headers={"Authorization": f"Bearer {key}"},
            )
            for _ in range(25)
        ]
        pids = {httpx.get(served.url + "/health").json()["worker"] for _ in range(20)}
    assert len(pids) == 2
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * 10 + [429] * 15
    assert [r.headers["x-ratelimit-remaining"] for r in responses[:10]] == [
        str(n) for n in range(9, -1, -1)
    ]
    refused = responses[10]
    assert refused.headers["x-ratelimit-limit"] == "10"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
