"""/metrics after known traffic through a live gateway (hypercorn, the fake upstream, the
real openai SDK in a thread), read with prometheus_client's parser: request histograms
by route/model/status, attempts by why they started, upstream times, tokens and cost
(cross-checked with the activity log), open streams; admin-only unless
``--metrics-public``."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import httpx
import openai
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from ..processes import CHAT, new_key, serving
from ..servers import FakeUpstream, Gateway, gateway_settings, running_gateway
from .test_sdk import _close_clients, client  # noqa: F401  (closes the SDK clients)

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT_ROUTE = "/v1/chat/completions"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample, by its name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0)


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum over every sample ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in found.items() if n == name and wanted <= have)


async def scrape(gateway: Gateway, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        return await http.get("/metrics", headers=headers)


async def scraped_once(gateway: Gateway, requests: int) -> Samples:
    """/metrics once it has counted ``requests`` requests (a request is counted after its
    last byte, so possibly after its client has the answer; scrapes count too)."""
    with trio.fail_after(30):
        while True:
            found = samples((await scrape(gateway, gateway.admin_key)).text)
            if total(found, "saferouter_request_duration_seconds_count") >= requests:
                return found
            await trio.sleep(0.05)


async def sdk(gateway: Gateway, model: str, *, stream: bool = False) -> str:
    """A chat through the openai SDK; the answer's text, or the error's code."""

    def call() -> str:
        try:
            answer = client(gateway).chat.completions.create(
                model=model, messages=MESSAGES, stream=stream
            )
        except openai.APIStatusError as error:
            return str(error.code)
        if stream:
            return "".join(c.choices[0].delta.content or "" for c in answer if c.choices)  # type: ignore[union-attr]
        return answer.choices[0].message.content or ""  # type: ignore[union-attr]

    return await trio.to_thread.run_sync(call)


def assert_histograms_whole(found: Samples) -> None:
    """Every histogram series: buckets never fall as ``le`` grows, ``+Inf`` is the count."""
    series: dict[tuple[str, frozenset[tuple[str, str]]], list[tuple[float, float]]] = {}
    for (name, labels), count in found.items():
        if name.endswith("_bucket"):
            le = dict(labels)["le"]
            key = (name.removesuffix("_bucket"), labels - {("le", le)})
            series.setdefault(key, []).append((float(le), count))
    assert series
    for (base, labels), buckets in series.items():
        counts = [count for _, count in sorted(buckets)]
        assert counts == sorted(counts), (base, labels)
        assert counts[-1] == found[(base + "_count", labels)] > 0


async def test_known_traffic_is_counted_in_histograms_and_totals(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    assert await sdk(gateway, "chain-b") and await sdk(gateway, "chain-b", stream=True)
    assert await sdk(gateway, "chain-a")  # 503, then its fallback chain-b serves
    assert await sdk(gateway, "no-such-model") == "model_not_found"
    assert await sdk(gateway, "fake/status:503") == "upstream_unavailable"
    async with httpx.AsyncClient(base_url=gateway.url, timeout=0.5) as impatient:
        with pytest.raises(httpx.ReadTimeout):  # leaves before any answer
            await impatient.post(
                CHAT_ROUTE,
                json={"model": "fake/hang", "messages": MESSAGES},
                headers={"Authorization": f"Bearer {gateway.admin_key}"},
            )
    # a stream whose client leaves after its first chunk; open while it is read
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as leaving,
        leaving.stream(
            "POST",
            CHAT_ROUTE,
            json={"model": "fake/gate:g", "stream": True, "messages": MESSAGES},
            headers={"Authorization": f"Bearer {gateway.admin_key}"},
        ) as response,
    ):
        await response.aiter_raw().__anext__()
        during = samples((await scrape(gateway, gateway.admin_key)).text)
        assert value(during, "saferouter_open_streams") == 1
    found = await scraped_once(gateway, 8)  # and the scrape while the stream was open
    count = "saferouter_request_duration_seconds_count"
    assert value(found, count, route=CHAT_ROUTE, model="chain-b", status="200") == 2
    assert value(found, count, route=CHAT_ROUTE, model="chain-a", status="200") == 1
    assert value(found, count, route=CHAT_ROUTE, model="unknown", status="404") == 1
    assert value(found, count, route=CHAT_ROUTE, model="unlisted", status="503") == 1
    assert value(found, count, route=CHAT_ROUTE, model="unlisted", status="499") == 1  # hang
    assert value(found, count, route=CHAT_ROUTE, model="unlisted", status="200") == 1  # gate
    assert value(found, count, route="/metrics", model="", status="200") >= 1
    overhead = "saferouter_gateway_overhead_seconds_count"
    assert value(found, overhead, route=CHAT_ROUTE, model="chain-b", status="200") == 2
    assert total(found, overhead, route=CHAT_ROUTE, status="499") == 0  # nothing started

    attempts = "saferouter_upstream_attempts_total"
    assert value(found, attempts, provider="fake2", outcome="won", started_by="first") == 2
    assert value(found, attempts, provider="fake2", outcome="won", started_by="fallback") == 1
    assert value(found, attempts, provider="fake", outcome="error", started_by="first") == 2
    assert value(found, attempts, provider="fake", outcome="cancelled", started_by="first") == 1
    assert value(found, attempts, provider="fake", outcome="won", started_by="first") == 1
    first_byte = "saferouter_upstream_first_byte_seconds_count"
    assert value(found, first_byte, provider="fake2", model="chain-b") == 3
    upstream_time = "saferouter_upstream_duration_seconds_count"
    assert value(found, upstream_time, provider="fake2", model="chain-b", outcome="won") == 3
    assert value(found, upstream_time, provider="fake", model="chain-a", outcome="error") == 1
    assert_histograms_whole(found)

    served = {"model": "chain-b", "provider": "fake2"}
    assert value(found, "saferouter_tokens_total", **served, type="input") > 0
    assert value(found, "saferouter_tokens_total", **served, type="output") > 0
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        activity = await http.get(
            "/v1/activity",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {gateway.admin_key}"},
        )
    entries = [e for e in activity.json()["data"] if e["served_model"] == "chain-b"]
    spent = sum(e["cost_micro_usd"] for e in entries)
    assert value(found, "saferouter_cost_micro_usd_total", **served) == spent > 0
    assert value(found, "saferouter_open_streams") == 0


async def test_metrics_are_for_admins_unless_public(
    gateway: Gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    user = await gateway.create_key()
    for key, status, code in ((None, 401, "missing_api_key"), (user, 403, "permission_denied")):
        response = await scrape(gateway, key)
        assert response.status_code == status
        error: Mapping[str, object] = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
        assert "saferouter_" not in response.text
    admin = await scrape(gateway, gateway.admin_key)
    assert admin.status_code == 200
    assert admin.headers["content-type"].startswith("text/plain; version=0.0.4")

    (tmp_path / "public").mkdir()
    settings = attrs.evolve(
        gateway_settings(tmp_path / "public", upstream.url), metrics_public=True
    )
    async with running_gateway(settings) as public:
        response = await scrape(public)
    assert response.status_code == 200 and "saferouter_circuit_state" in response.text


def test_the_metrics_public_flag_opens_metrics_of_a_served_gateway(tmp_path: Path) -> None:
    new_key(tmp_path, "--name", "ops", "--admin")
    with serving(tmp_path, "--metrics-public") as served:
        assert httpx.post(served.url + CHAT_ROUTE, json=CHAT, timeout=30).status_code == 401
        response = httpx.get(served.url + "/metrics", timeout=30)
    assert response.status_code == 200
    assert 'saferouter_request_duration_seconds_count{route="/v1/chat/completions"' in (
        response.text
    )


def demo_counts(snapshot: dict[str, Any]) -> int:
    """The demo chats a worker's snapshot file counts."""
    return sum(
        sum(counts)
        for labels, counts, _ in snapshot["requests"]
        if labels == [CHAT_ROUTE, "demo", "200"]
    )


def test_every_worker_is_counted_whichever_answers_the_scrape(tmp_path: Path) -> None:
    key = new_key(tmp_path, "--name", "user")
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "1-2.json").write_text("{}")  # left by an earlier run: not counted, removed
    sent = 0

    def chat(_: int) -> int:
        response = httpx.post(  # a connection of its own: it may reach either worker
            served.url + CHAT_ROUTE,
            json=CHAT,
            headers={"Authorization": f"Bearer {key}", "Connection": "close"},
            timeout=30,
        )
        return response.status_code

    def scraped() -> Samples:
        response = httpx.get(served.url + "/metrics", headers={"Connection": "close"}, timeout=30)
        assert response.status_code == 200
        return samples(response.text)

    with (
        serving(tmp_path, "--workers", "2", "--metrics-public") as served,
        ThreadPoolExecutor(8) as pool,
    ):
        deadline = time.monotonic() + 60
        # until both workers have served some (which one accepts is the kernel's choice)
        while len(counted := [demo_counts(s) for s in snapshots(shared)]) < 2 or 0 in counted:
            assert time.monotonic() < deadline, counted
            assert list(pool.map(chat, range(16))) == [200] * 16
            sent += 16
            time.sleep(0.5)  # time for the snapshots to be written (every 2 s)
        assert not (shared / "1-2.json").exists()
        count = {"route": CHAT_ROUTE, "model": "demo", "status": "200"}
        while (
            seen := value(scraped(), "saferouter_request_duration_seconds_count", **count)
        ) < sent:
            assert time.monotonic() < deadline, (seen, sent)
            time.sleep(0.2)
        for _ in range(6):  # whichever worker answers, every worker's count
            assert value(scraped(), "saferouter_request_duration_seconds_count", **count) == sent
        assert max(counted) < sent  # no worker served them all alone


def snapshots(directory: Path) -> list[dict[str, Any]]:
    """The workers' snapshot files (as they stand: a file may be replaced meanwhile)."""
    found = []
    for path in directory.glob("*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return [snapshot for snapshot in found if "requests" in snapshot]
