"""``/v1/activity/stats``' ``series`` on a live gateway: a fixed number of buckets per
window (empty ones included), each request counted in the bucket of its time, errors,
percentiles and spend per bucket; a key sees only its own, an admin everyone's."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from saferouter.keys import generate_key
from saferouter.storage import Settlement

from ..app.stores import entry
from ..servers import Gateway


async def stats(gateway: Gateway, key: str, **params: str) -> Any:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        response = await client.get(
            "/v1/activity/stats", params=params, headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == 200, response.text
    return response.json()


async def new_key(gateway: Gateway, name: str) -> tuple[str, str]:
    """A user key: its secret and its id."""
    new = generate_key()
    made = await gateway.store.create_key(
        name=name, role="user", key_hash=new.hash, prefix=new.display_prefix
    )
    return new.secret, made.id


async def earlier(gateway: Gateway, key_id: str, request_id: str, at: float, **fields: Any) -> None:
    """An attempt recorded at ``at``, as a settlement then would have."""
    attempt = entry(request_id, key_id, at, **fields)
    await gateway.store.settle(
        Settlement(key_id, request_id, 0, attempt.cost_micro_usd, 1, (attempt,), now=at)
    )


def bucket_of(series: list[dict[str, Any]], at: float, width_s: int) -> dict[str, Any]:
    (found,) = [b for b in series if b["start"] <= at < b["start"] + width_s]
    return found


async def test_the_series_counts_each_request_in_its_bucket(gateway: Gateway) -> None:
    alice, alice_id = await new_key(gateway, "alice")
    _, bob_id = await new_key(gateway, "bob")
    sent_at = time.time()
    async with openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key=alice, max_retries=0
    ) as sdk:
        for _ in range(2):
            await sdk.chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(openai.APIStatusError):
            await sdk.chat.completions.create(
                model="fake/status:500", messages=[{"role": "user", "content": "hi"}]
            )
    ten_ago = (sent_at // 60 - 10) * 60 + 20  # 20 s into the minute ten minutes back
    await earlier(gateway, alice_id, "ten", ten_ago, latency_ms=40.0, ttfb_ms=4.0, cost=30)
    await earlier(gateway, alice_id, "ten-b", ten_ago + 1, latency_ms=80.0, ttfb_ms=8.0, cost=12)
    bob_at = ten_ago - 20 * 60
    await earlier(gateway, bob_id, "bobs", bob_at, status=502, outcome="error", latency_ms=9.0)

    mine = await stats(gateway, alice, window="1h", key_id=bob_id)  # a user's key_id: ignored
    assert (mine["bucket_s"], len(mine["series"])) == (60, 60)
    series = mine["series"]
    assert [b["start"] for b in series] == [series[0]["start"] + 60 * i for i in range(60)]
    assert series[0]["start"] % 60 == 0 and series[-1]["start"] <= time.time()
    assert sum(b["requests"] for b in series) == mine["total"] == 5
    assert sum(b["cost_micro_usd"] for b in series) == mine["cost_micro_usd"]
    ten = bucket_of(series, ten_ago, 60)
    assert (ten["requests"], ten["errors"], ten["cost_micro_usd"]) == (2, 0, 42)
    assert ten["latency_ms"] == {"p50": 40.0, "p95": 80.0}
    assert ten["ttfb_ms"] == {"p50": 4.0, "p95": 8.0}
    now = [b for b in series[-2:] if b["requests"]]  # the live requests (one minute edge)
    assert sum(b["requests"] for b in now) == 3 and sum(b["errors"] for b in now) == 1
    assert all(b["latency_ms"]["p50"] is not None for b in now)
    empty = bucket_of(series, bob_at, 60)
    assert empty == {
        "start": empty["start"],
        "requests": 0,
        "errors": 0,
        "latency_ms": {"p50": None, "p95": None},
        "ttfb_ms": {"p50": None, "p95": None},
        "cost_micro_usd": 0,
    }

    everyone = await stats(gateway, gateway.admin_key, window="1h")
    assert sum(b["requests"] for b in everyone["series"]) == 6
    bobs = bucket_of(everyone["series"], bob_at, 60)
    assert (bobs["requests"], bobs["errors"], bobs["latency_ms"]["p95"]) == (1, 1, 9.0)
    only_bob = await stats(gateway, gateway.admin_key, window="1h", key_id=bob_id)
    assert sum(b["requests"] for b in only_bob["series"]) == 1


@pytest.mark.parametrize(
    ("window", "bucket_s", "points"),
    [
        ("15m", 60, 15),
        ("1h", 60, 60),
        ("24h", 900, 96),
        ("7d", 10800, 56),
        ("30s", 60, 1),  # shorter than a bucket: the one it is in
        ("3650d", 39 * 86400, 94),  # the longest: whole days, starting after the epoch
    ],
)
async def test_each_window_has_its_fixed_number_of_points(
    gateway: Gateway, window: str, bucket_s: int, points: int
) -> None:
    got = await stats(gateway, gateway.admin_key, window=window)
    assert (got["bucket_s"], len(got["series"])) == (bucket_s, points)
    assert all(b["requests"] == 0 for b in got["series"])
    assert got["since"] > 0 and got["series"][0]["start"] > 0


@pytest.mark.parametrize("window", ["0m", "0s", "000d", "3651d", "999999d", "87601h"])
async def test_an_empty_or_too_long_window_is_refused(gateway: Gateway, window: str) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        response = await client.get(
            "/v1/activity/stats",
            params={"window": window},
            headers={"Authorization": f"Bearer {gateway.admin_key}"},
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("window", "invalid_value")
    assert "at most 3650d" in error["message"]
