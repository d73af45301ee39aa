"""Streams over a real socket: incremental, cancelled on disconnect, honest on failure."""

from __future__ import annotations

import itertools
import json
from contextlib import aclosing
from pathlib import Path

import httpx
import trio

from saferouter.config import Timeouts

from ..servers import FakeUpstream, Gateway, gateway_settings, running_gateway


def stream_request(gateway: Gateway, model: str) -> dict[str, object]:
    return {
        "method": "POST",
        "url": "/v1/chat/completions",
        "headers": {"Authorization": f"Bearer {gateway.admin_key}"},
        "json": {"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]},
    }


async def test_chunks_arrive_as_they_are_produced(gateway: Gateway) -> None:
    arrivals: list[float] = []
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        async with client.stream(**stream_request(gateway, "fake/slow:5:200")) as response:
            async for _ in response.aiter_raw():
                arrivals.append(trio.current_time())
    # five events 200 ms apart must not arrive in one buffered lump
    assert len(arrivals) >= 5
    assert arrivals[-1] - arrivals[0] > 0.6
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert sum(1 for g in gaps if g > 0.1) >= 3


async def test_client_disconnect_cancels_the_upstream(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        async with client.stream(**stream_request(gateway, "fake/slow:1000:20")) as response:
            async with aclosing(response.aiter_raw()) as chunks:
                async for _ in chunks:
                    break
    hung_up = trio.current_time()
    with trio.fail_after(2):
        while "cancelled" not in upstream.events:
            await trio.sleep(0.005)
    assert trio.current_time() - hung_up < 1.0


async def test_stall_mid_stream_ends_with_an_error_event_and_no_done(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    settings = gateway_settings(tmp_path, upstream.url)
    async with running_gateway(settings, timeouts=Timeouts(idle_s=0.3)) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
            async with client.stream(**stream_request(gateway, "fake/stall:3")) as response:
                body = b"".join([c async for c in response.aiter_raw()])
    events = [e for e in body.split(b"\n\n") if e]
    assert len(events) == 4
    assert b"[DONE]" not in body
    error = json.loads(events[-1].removeprefix(b"data: "))["error"]
    assert error["code"] == "upstream_stream_failed"
    assert "0.3 s" in error["message"]
    with trio.fail_after(2):
        while "cancelled" not in upstream.events:
            await trio.sleep(0.005)
