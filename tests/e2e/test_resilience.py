"""Fault injection: for every fault, what the client sees, which attempts are recorded and
billed, and that no reservation or upstream connection is left behind."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from saferouter.accounting import Usage, cost_micro_usd
from saferouter.catalog import Price
from saferouter.config import Timeouts

from ..servers import (
    USAGE,
    FakeUpstream,
    Gateway,
    gateway_settings,
    raw_upstream,
    running_gateway,
)

FAKE2_PRICE = Price(input=2_500_000, cached_input=250_000, output=20_000_000)
FALLBACK = "fake2/delay:0"


@pytest.fixture
async def raw() -> AsyncIterator[FakeUpstream]:
    async with raw_upstream() as state:
        yield state


@pytest.fixture
async def gw(upstream: FakeUpstream, raw: FakeUpstream, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(gateway_settings(tmp_path, upstream.url, raw_url=raw.url)) as g:
        yield g


async def chat(
    gateway: Gateway,
    model: str,
    *,
    stream: bool = False,
    fallbacks: list[str] | None = None,
    key: str | None = None,
) -> tuple[httpx.Response, bytes]:
    body: dict[str, Any] = {
        "model": model,
        "stream": stream,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
    }
    if fallbacks is not None:
        body["models"] = fallbacks
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        async with client.stream(
            "POST",
            "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key or gateway.admin_key}"},
        ) as response:
            payload = await response.aread()
    return response, payload


async def attempts(gateway: Gateway, response: httpx.Response) -> list[dict[str, Any]]:
    request_id = response.headers["x-saferouter-request-id"]
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.admin_key}"}
    ) as client:
        entries = (await client.get("/v1/activity", params={"limit": 50})).json()["data"]
    return sorted((e for e in entries if e["request_id"] == request_id), key=lambda e: e["attempt"])


async def metrics(gateway: Gateway) -> dict[str, float]:
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.admin_key}"}
    ) as client:
        text = (await client.get("/metrics")).text
    values = {}
    for line in text.splitlines():
        match = re.match(r"^(\w+)(\{[^}]*\})? (\S+)$", line)
        if match:
            values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


async def assert_no_leaks(gateway: Gateway) -> None:
    """No reservation left open, books balanced, no upstream connection still busy."""
    assert await gateway.store.check_books() == []
    for key in await gateway.store.list_keys():
        assert key.reserved_micro_usd == 0
    with trio.fail_after(2):
        while (await metrics(gateway))['saferouter_upstream_connections{state="active"}']:
            await trio.sleep(0.01)


def served_cost() -> int:
    return cost_micro_usd(Usage(prompt_tokens=USAGE["prompt_tokens"], output_tokens=5), FAKE2_PRICE)


# (first candidate, stream modes it applies to, status and code its attempt records)
FAILOVER = [
    ("fake/status:500", (False, True), 502, "upstream_error"),
    ("fake/status:502", (False, True), 502, "upstream_error"),
    ("fake/status:503", (False, True), 503, "upstream_unavailable"),
    ("fake/status:429", (False, True), 429, None),
    ("fake/busy", (False, True), 429, None),
    ("fake/zai1302", (False, True), 429, "1302"),
    ("fake/zai1305", (False, True), 429, "1305"),
    ("fake/zai1113", (False, True), 502, "upstream_insufficient_balance"),
    ("fake/status:402", (False, True), 502, "upstream_insufficient_balance"),
    ("raw/reset", (False, True), 502, "upstream_error"),
    ("fake/badjson", (False,), 502, "upstream_invalid_json"),
    ("fake/html", (False,), 502, "upstream_invalid_json"),
    ("fake/html", (True,), 502, "upstream_not_a_stream"),
    ("fake/oversized-first", (True,), 502, "upstream_event_too_large"),
]


@pytest.mark.parametrize(
    ("first", "modes", "status", "code"),
    FAILOVER,
    ids=[f"{f[0]}-{'+'.join(map(str, f[1]))}" for f in FAILOVER],
)
async def test_failover_to_the_next_candidate(
    gw: Gateway,
    upstream: FakeUpstream,
    first: str,
    modes: tuple[bool, ...],
    status: int,
    code: str | None,
) -> None:
    for stream in modes:
        key = await gw.create_key(credits_micro_usd=1_000_000)
        response, payload = await chat(gw, first, stream=stream, fallbacks=[FALLBACK], key=key)
        assert response.status_code == 200, payload
        assert response.headers["x-saferouter-fallback-from"] == first
        assert response.headers["x-saferouter-fallback-to"] == FALLBACK
        assert response.headers["x-saferouter-model"] == FALLBACK
        if stream:
            assert payload.endswith(b"data: [DONE]\n\n")
        else:
            assert json.loads(payload)["model"] == "delay:0"  # the model that served
        one, two = await attempts(gw, response)
        assert (one["attempt"], one["outcome"], one["status"], one["served_model"]) == (
            1,
            "error",
            status,
            first,
        )
        if code is not None:
            assert one["error_type"] == code
        assert one["original_model"] == first and one["cost_micro_usd"] == 0
        assert (two["attempt"], two["outcome"], two["served_model"]) == (2, "ok", FALLBACK)
        assert two["cost_micro_usd"] == served_cost()
        books = await gw.store.books((await gw.store.list_keys())[-1].id)
        assert books.spent_micro_usd == served_cost()
        if code in ("upstream_insufficient_balance",):
            break  # the provider's circuit is now open: covered below
    await assert_no_leaks(gw)


async def test_retry_after_rules_out_the_same_provider(gw: Gateway) -> None:
    response, _ = await chat(gw, "fake/status:429", fallbacks=["fake/delay:0", FALLBACK])
    assert response.headers["x-saferouter-model"] == FALLBACK
    assert [a["served_model"] for a in await attempts(gw, response)] == [
        "fake/status:429",
        FALLBACK,
    ]
    # without Retry-After the same provider may take the next attempt
    response, _ = await chat(gw, "fake/busy", fallbacks=["fake/delay:0", FALLBACK])
    assert response.headers["x-saferouter-model"] == "fake/delay:0"
    await assert_no_leaks(gw)


async def test_no_balance_skips_the_provider_and_opens_its_circuit(gw: Gateway) -> None:
    response, _ = await chat(gw, "fake/zai1113", fallbacks=["fake/delay:0", FALLBACK])
    assert response.headers["x-saferouter-model"] == FALLBACK
    refused, payload = await chat(gw, "fake/delay:0")
    assert refused.status_code == 503
    assert json.loads(payload)["error"]["code"] == "circuit_open"
    values = await metrics(gw)
    assert values['saferouter_circuit_state{key="fake"}'] == 2
    async with httpx.AsyncClient(base_url=gw.url) as client:
        chain_a = (await client.get("/v1/models/chain-a")).json()
    assert chain_a["available"] is False and chain_a["circuit"] == "open"
    assert "circuit open" in chain_a["availability"]
    await assert_no_leaks(gw)


async def test_an_overloaded_model_leaves_the_rest_of_its_provider(gw: Gateway) -> None:
    response, _ = await chat(gw, "fake/zai1305", fallbacks=["fake/delay:0"])
    assert response.headers["x-saferouter-model"] == "fake/delay:0"
    await assert_no_leaks(gw)


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_client_errors_are_not_retried(
    gw: Gateway, upstream: FakeUpstream, status: int
) -> None:
    response, payload = await chat(gw, f"fake/status:{status}", fallbacks=[FALLBACK])
    assert response.status_code == status
    assert set(json.loads(payload)["error"]) == {"message", "type", "param", "code"}
    assert [r["body"]["model"] for r in upstream.requests] == [f"status:{status}"]
    assert [a["outcome"] for a in await attempts(gw, response)] == ["error"]
    await assert_no_leaks(gw)


async def test_catalog_chain_serves_with_headers(gw: Gateway) -> None:
    for stream in (False, True):
        response, _ = await chat(gw, "chain-a", stream=stream)
        assert response.status_code == 200
        assert response.headers["x-saferouter-fallback-from"] == "chain-a"
        assert response.headers["x-saferouter-fallback-to"] == "chain-b"
        assert response.headers["x-saferouter-provider"] == "fake2"
    await assert_no_leaks(gw)


@pytest.mark.parametrize("stream", [False, True])
async def test_hedged_loser_is_cancelled_and_its_socket_closed(
    gw: Gateway, upstream: FakeUpstream, stream: bool
) -> None:
    start = trio.current_time()
    response, _ = await chat(gw, "hedged", stream=stream)
    took = trio.current_time() - start
    assert response.status_code == 200 and response.headers["x-saferouter-model"] == "chain-b"
    assert took < 1.5  # the slow primary would have taken 3 s
    one, two = await attempts(gw, response)
    assert (one["served_model"], one["outcome"], one["cost_micro_usd"]) == (
        "hedged",
        "cancelled",
        0,
    )
    assert (two["served_model"], two["outcome"]) == ("chain-b", "ok")
    # the fake saw its connection go: the handler waiting to answer was cancelled
    with trio.fail_after(1):
        while "cancelled:slowstart" not in upstream.events:
            await trio.sleep(0.005)
    await assert_no_leaks(gw)


async def test_slow_first_byte_fails_over(
    tmp_path: Path, upstream: FakeUpstream, raw: FakeUpstream
) -> None:
    settings = gateway_settings(tmp_path, upstream.url, raw_url=raw.url)
    async with running_gateway(settings, timeouts=Timeouts(first_byte_s=0.3)) as gateway:
        for stream in (False, True):
            response, _ = await chat(
                gateway, "fake/slowstart:2000", stream=stream, fallbacks=[FALLBACK]
            )
            assert response.headers["x-saferouter-model"] == FALLBACK
            one, _two = await attempts(gateway, response)
            assert one["error_type"] == "upstream_first_byte_timeout"
            assert one["status"] == 504
        await assert_no_leaks(gateway)
    assert upstream.events.count("cancelled:slowstart") == 2


async def test_overall_deadline_and_attempt_bound(
    tmp_path: Path, upstream: FakeUpstream, raw: FakeUpstream
) -> None:
    settings = gateway_settings(tmp_path, upstream.url, raw_url=raw.url)
    timeouts = Timeouts(first_byte_s=0.3, request_deadline_s=0.5)
    async with running_gateway(settings, timeouts=timeouts) as gateway:
        slow = ["fake/slowstart:2000", "fake2/slowstart:2000", "fake/slowstart:2100"]
        response, payload = await chat(gateway, slow[0], fallbacks=slow[1:])
        assert response.status_code == 504
        assert json.loads(payload)["error"]["code"] == "request_deadline_exceeded"
        assert [a["outcome"] for a in await attempts(gateway, response)] == ["error", "cancelled"]
        failing = [f"fake2/status:50{i}" for i in range(5)]
        response, _ = await chat(gateway, "fake/status:500", fallbacks=failing)
        assert len(await attempts(gateway, response)) == settings.max_attempts
        await assert_no_leaks(gateway)


async def test_reset_mid_stream_ends_with_an_error_event(gw: Gateway) -> None:
    key = await gw.create_key(credits_micro_usd=1_000_000)
    response, payload = await chat(gw, "raw/reset-mid", stream=True, fallbacks=[FALLBACK], key=key)
    assert response.status_code == 200  # the first byte had gone: no fallback
    events = [e for e in payload.split(b"\n\n") if e]
    assert [json.loads(e[6:])["choices"][0]["delta"]["content"] for e in events[:2]] == [
        "one ",
        "two ",
    ]
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_stream_failed"
    assert b"[DONE]" not in payload
    (attempt,) = await attempts(gw, response)
    assert (attempt["outcome"], attempt["status"], attempt["estimated"]) == ("error", 502, True)
    assert attempt["completion_tokens"] == 2  # "one two " relayed, estimated
    await assert_no_leaks(gw)


async def test_oversized_event_mid_stream(gw: Gateway) -> None:
    response, payload = await chat(gw, "fake/oversized-mid", stream=True)
    events = [e for e in payload.split(b"\n\n") if e]
    assert len(events) == 2 and b"before" in events[0]
    assert json.loads(events[1][6:])["error"]["code"] == "upstream_event_too_large"
    (attempt,) = await attempts(gw, response)
    assert attempt["error_type"] == "upstream_event_too_large"
    await assert_no_leaks(gw)


async def test_stall_mid_stream_is_recorded(
    tmp_path: Path, upstream: FakeUpstream, raw: FakeUpstream
) -> None:
    settings = gateway_settings(tmp_path, upstream.url, raw_url=raw.url)
    async with running_gateway(settings, timeouts=Timeouts(idle_s=0.3)) as gateway:
        response, payload = await chat(gateway, "fake/stall:2", stream=True)
        assert b"[DONE]" not in payload and b"upstream_stream_failed" in payload
        (attempt,) = await attempts(gateway, response)
        assert attempt["outcome"] == "error" and attempt["estimated"] is True
        await assert_no_leaks(gateway)


async def test_blank_lines_and_keep_alives_pass_through(gw: Gateway) -> None:
    response, payload = await chat(gw, "fake/blanks")
    assert response.status_code == 200 and payload.startswith(b"\n\n\n{")
    (attempt,) = await attempts(gw, response)
    assert attempt["outcome"] == "ok" and attempt["prompt_tokens"] == 3
    response, payload = await chat(gw, "fake/blanks", stream=True)
    assert payload.startswith(b": keep-alive\n\n: keep-alive\n\ndata: ")
    assert payload.endswith(b"data: [DONE]\n\n")
    (attempt,) = await attempts(gw, response)
    assert attempt["outcome"] == "ok" and not attempt["estimated"]
    await assert_no_leaks(gw)


async def test_malformed_sse_passes_through_as_sent(gw: Gateway) -> None:
    response, payload = await chat(gw, "fake/malformed", stream=True)
    assert payload.startswith(b"data: {not json\n\ndata: ")
    assert payload.endswith(b"data: [DONE]\n\n")
    (attempt,) = await attempts(gw, response)
    assert attempt["outcome"] == "ok" and attempt["completion_tokens"] == 2
    await assert_no_leaks(gw)


async def test_in_band_error_event_passes_through_and_counts_as_a_failure(
    testdata: object, gw: Gateway
) -> None:
    recording = "streams/groq/pydantic-ai__gpt-oss-120b_event_error_midstream__i0.sse"
    response, payload = await chat(gw, f"fake/replay:{recording}", stream=True)
    assert b"event: error" in payload and b"upstream_stream" not in payload
    (attempt,) = await attempts(gw, response)
    assert (attempt["outcome"], attempt["error_type"]) == ("error", "upstream_error_event")
    await assert_no_leaks(gw)
