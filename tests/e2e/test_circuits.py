"""Circuit breaking through a real gateway: a half-open probe cannot leak, and client
input (a made-up model name, a rate limit) never makes a provider unavailable."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from saferouter.config import BreakerPolicy, Settings

from ..servers import FakeUpstream, gateway_settings, running_gateway
from .test_resilience import assert_no_leaks, chat, metrics

# catalog models of the fake provider (the client-named ones are `fake/<mode>`)
EXTRA_MODELS = {
    "limited": "ratelimit:3:3",  # three 429s with Retry-After: 3, then answers
    "steady": "steady",
    "locked": "status:401",  # the provider refuses the gateway's key
}
FAKE_CIRCUIT = 'saferouter_circuit_state{key="fake"}'


def settings_with(tmp_path: Path, upstream: FakeUpstream, policy: BreakerPolicy) -> Settings:
    settings = gateway_settings(tmp_path, upstream.url)
    listed = settings.catalog.models["hedged"]  # a catalog model of the fake provider
    extra = {
        model_id: attrs.evolve(
            listed, id=model_id, name=model_id, upstream=name, hedge_after_ms=None, fallbacks=()
        )
        for model_id, name in EXTRA_MODELS.items()
    }
    catalog = attrs.evolve(settings.catalog, models={**settings.catalog.models, **extra})
    return attrs.evolve(settings, catalog=catalog, breaker=policy)


def sent(upstream: FakeUpstream, name: str) -> int:
    """How many requests for the upstream model ``name`` reached the fake."""
    return sum(r["body"]["model"] == name for r in upstream.requests)


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll a condition with a generous bound (a loaded machine is slow, never wrong)."""
    with trio.move_on_after(20):
        while not await condition():
            await trio.sleep(0.02)
        return
    pytest.fail(f"timed out waiting for {what}")


def error_code(payload: bytes) -> str:
    return str(json.loads(payload)["error"]["code"])


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
async def test_a_probe_whose_client_leaves_lets_the_next_request_probe(
    tmp_path: Path, upstream: FakeUpstream, stream: bool
) -> None:
    policy = BreakerPolicy(failures_to_open=1, cooldown_s=0.5)
    async with running_gateway(settings_with(tmp_path, upstream, policy)) as gw:
        response, _ = await chat(gw, "fake/status:500")
        assert response.status_code == 502
        assert (await metrics(gw))[FAKE_CIRCUIT] == 2  # open

        async def half_open() -> bool:
            return (await metrics(gw))[FAKE_CIRCUIT] == 1

        await wait_for(half_open, "the cooldown to end")
        async with trio.open_nursery() as nursery:  # the probe: a client that leaves

            async def probe() -> None:
                await chat(gw, "fake/slowstart:60000", stream=stream)

            nursery.start_soon(probe)

            async def probe_sent() -> bool:
                return sent(upstream, "slowstart:60000") == 1

            await wait_for(probe_sent, "the probe to reach the upstream")
            nursery.cancel_scope.cancel()

        async def gateway_hung_up() -> bool:
            return "cancelled:slowstart" in upstream.events

        await wait_for(gateway_hung_up, "the gateway to drop the probe's upstream call")
        response, payload = await chat(gw, "fake/delay:0", stream=stream)
        assert response.status_code == 200, payload  # not 503 circuit_open
        assert sent(upstream, "delay:0") == 1
        assert (await metrics(gw))[FAKE_CIRCUIT] == 0
        await assert_no_leaks(gw)


async def test_a_backing_off_model_shows_in_metrics_and_models(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """What a 429 with Retry-After leaves behind, as /metrics and /v1/models show it (the
    waiting itself, round after round, is tests/app/test_pipeline.py's, on a mock clock)."""
    policy = BreakerPolicy(failures_to_open=1, cooldown_s=300)
    async with running_gateway(settings_with(tmp_path, upstream, policy)) as gw:
        response, _ = await chat(gw, "limited")
        assert (response.status_code, response.headers["retry-after"]) == (429, "3")
        refused, payload = await chat(gw, "limited")
        assert (refused.status_code, error_code(payload)) == (429, "upstream_rate_limited")
        assert sent(upstream, "ratelimit:3:3") == 1
        served, _ = await chat(gw, "fake/delay:0")
        assert served.status_code == 200
        values = await metrics(gw)
        assert values[FAKE_CIRCUIT] == 0
        assert values['saferouter_circuit_state{key="fake/limited"}'] == 3  # backing off
        async with httpx.AsyncClient(base_url=gw.url) as client:
            model = (await client.get("/v1/models/limited")).json()
        assert (model["available"], model["circuit"]) == (False, "backing_off")
        assert model["availability"].startswith("unavailable: rate limited")
        await assert_no_leaks(gw)


async def test_repeated_429s_of_a_client_named_model_leave_the_provider_serving(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """The finding as reported: five 429s with ``Retry-After: 1`` opened the provider's
    circuit for 30 s. A name the client made up backs nothing off for anyone."""
    policy = BreakerPolicy(failures_to_open=2, cooldown_s=300)
    async with running_gateway(settings_with(tmp_path, upstream, policy)) as gw:
        for _ in range(5):
            response, payload = await chat(gw, "fake/ratelimit:99:1")
            assert response.status_code == 429, payload
            assert response.headers["retry-after"] == "1"
        assert sent(upstream, "ratelimit:99:1") == 5  # each was the provider's own answer
        response, payload = await chat(gw, "fake/delay:0")
        assert response.status_code == 200, payload  # not 503 circuit_open
        assert (await metrics(gw))[FAKE_CIRCUIT] == 0
        await assert_no_leaks(gw)


@pytest.mark.parametrize("status", [401, 403])
async def test_a_client_named_models_auth_failure_is_a_502_for_that_request_only(
    tmp_path: Path, upstream: FakeUpstream, status: int
) -> None:
    policy = BreakerPolicy(failures_to_open=1)
    async with running_gateway(settings_with(tmp_path, upstream, policy)) as gw:
        for _ in range(3):
            response, payload = await chat(gw, f"fake/status:{status}")
            assert response.status_code == 502
            assert error_code(payload) == "upstream_auth_failed"
            assert b"sk-upstream-secret" not in payload
        assert sent(upstream, f"status:{status}") == 3  # every one was asked
        response, _ = await chat(gw, "steady")  # a catalog model of the same provider
        assert response.status_code == 200
        response, _ = await chat(gw, "fake/delay:0")
        assert response.status_code == 200
        assert (await metrics(gw))[FAKE_CIRCUIT] == 0
        await assert_no_leaks(gw)


async def test_a_catalog_models_auth_failure_still_opens_the_circuit(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    async with running_gateway(settings_with(tmp_path, upstream, BreakerPolicy())) as gw:
        response, payload = await chat(gw, "locked")
        assert (response.status_code, error_code(payload)) == (502, "upstream_auth_failed")
        refused, payload = await chat(gw, "fake/delay:0")
        assert (refused.status_code, error_code(payload)) == (503, "circuit_open")
        assert int(refused.headers["retry-after"]) > 200  # the long no-balance cooldown
        assert sent(upstream, "delay:0") == 0
        assert (await metrics(gw))[FAKE_CIRCUIT] == 2
        await assert_no_leaks(gw)
