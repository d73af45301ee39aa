"""Every response carries ``Server-Timing: gateway;dur=<ms>`` — the gateway's own time
before the first byte, the upstream's excluded — and, when an upstream served it,
``upstream;dur=<ms>`` (issue 11). The real openai SDK (in a thread: it blocks, and the
servers share this trio loop) and httpx against a live gateway and fake upstream."""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx
import openai
import pytest
import trio

from ..servers import Gateway

# the SDK clients of test_sdk, closed after each test by its autouse fixture (imported
# so that it runs here too)
from .test_sdk import _close_clients, client  # noqa: F401

MESSAGES = [{"role": "user", "content": "hi"}]
# W3C Server Timing §3: comma-separated "name;dur=<ms>"
METRIC = r"([A-Za-z0-9_-]+);dur=(\d+(?:\.\d{1,3})?)"
# the fake upstream's pause before its first byte; long against the gateway's own work
# (a few ms) so that half of it is a bound no loaded machine comes near
DELAY_MS = 1000


def timings(headers: Mapping[str, str]) -> dict[str, float]:
    """The Server-Timing metrics, by name, in ms; asserts the header's shape."""
    value = headers.get("server-timing")
    assert value is not None, "no Server-Timing header"
    assert re.fullmatch(rf"{METRIC}(, {METRIC})*", value), value
    return {name: float(ms) for name, ms in re.findall(METRIC, value)}


async def chat_headers(gateway: Gateway, model: str, *, stream: bool) -> dict[str, str]:
    """The response head of a chat via the SDK's raw response; a stream is read to its
    end after its head is taken."""

    def call() -> dict[str, str]:
        raw = client(gateway).chat.completions.with_raw_response.create(
            model=model, messages=MESSAGES, stream=stream
        )
        headers = dict(raw.headers)
        parsed = raw.parse()
        if stream:
            assert len([chunk for chunk in parsed]) >= 1  # type: ignore[union-attr]
        else:
            assert parsed.choices  # type: ignore[union-attr]
        return headers

    return await trio.to_thread.run_sync(call)


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
async def test_a_chat_shows_the_gateway_and_the_upstream_time(
    gateway: Gateway, stream: bool
) -> None:
    metrics = timings(await chat_headers(gateway, "fake/delay:0", stream=stream))
    assert set(metrics) == {"gateway", "upstream"}
    assert metrics["gateway"] >= 0 and metrics["upstream"] >= 0


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
async def test_the_upstreams_wait_is_not_counted_as_the_gateways(
    gateway: Gateway, stream: bool
) -> None:
    metrics = timings(await chat_headers(gateway, f"fake/delay:{DELAY_MS}", stream=stream))
    assert metrics["upstream"] >= DELAY_MS
    assert metrics["gateway"] < DELAY_MS / 2, metrics


async def test_a_fallback_shows_the_serving_attempts_time(gateway: Gateway) -> None:
    # chain-a's upstream answers 503, then chain-b's serves: the race still ends in one
    # upstream metric, the winner's
    headers = await chat_headers(gateway, "chain-a", stream=False)
    assert headers["x-saferouter-fallback-to"] == "chain-b"
    metrics = timings(headers)
    assert set(metrics) == {"gateway", "upstream"}


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
async def test_an_upstream_error_after_waiting_shows_only_the_gateway(
    gateway: Gateway, stream: bool
) -> None:
    def call() -> openai.APIStatusError:
        with pytest.raises(openai.APIStatusError) as raised:
            client(gateway).chat.completions.create(
                model="fake/status:400", messages=MESSAGES, stream=stream
            )
        return raised.value

    error = await trio.to_thread.run_sync(call)
    assert error.status_code == 400
    assert set(timings(error.response.headers)) == {"gateway"}


async def test_errors_models_and_health_show_the_gateway_time(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        responses = [
            await client.post("/v1/chat/completions", json={"model": "demo"}),  # 401
            await client.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {gateway.admin_key}"},
                content=b"{not json",
            ),
            await client.get("/v1/nowhere"),
            await client.get("/v1/models"),
            await client.get("/v1/models/glm-9"),
            await client.get("/health"),
            await client.get("/ready"),
        ]
    assert [r.status_code for r in responses] == [401, 400, 404, 200, 404, 200, 200]
    for response in responses:
        metrics = timings(response.headers)
        assert set(metrics) == {"gateway"} and metrics["gateway"] >= 0
