"""The real ``openrouter`` Python SDK (1.3.84) against a live gateway replaying provider
recordings: ``models`` without ``model``, ``provider`` preferences and
``usage: {"include": true}``, stream and not — what the SDK's HTTP layer received is the
recording's bytes but for the cost stated, and the cost is the charge.

openrouter 1.3.84 no longer sends the deprecated ``usage`` field (OpenRouter now always
reports usage); clients that do (older SDKs, the openai SDK's ``extra_body``) are
represented by adding it to the SDK's request on the wire (:class:`Wire`). The SDK runs
in a thread: it blocks, and the servers share this trio loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import trio
from openrouter import OpenRouter
from openrouter.errors import OpenRouterError

from saferouter.accounting import usd_text
from saferouter.gateway.upstream_body import STRIPPED_FIELDS

from ..recordings import RECORDINGS, stream_bytes
from ..servers import FakeUpstream, Gateway

PREFIX = "/api/v1"  # OpenRouter's, served as /v1
BODY = "nonstream/deepseek/vercel-ai__deepseek-text.json"
STREAM = "streams/deepseek/pydantic-ai__deepseek-reasoner_thinking_stream.sse"
MESSAGES = [{"role": "user", "content": "Hello"}]


class _Tee(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, into: bytearray) -> None:
        self._inner, self._into = inner, into

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._into += chunk
            yield chunk

    def close(self) -> None:
        self._inner.close()


class Wire(httpx.BaseTransport):
    """The SDK's HTTP layer: what it sent (with ``extra`` fields added) and the raw
    bytes it received."""

    def __init__(self, **extra: Any) -> None:
        self._inner = httpx.HTTPTransport()
        self._extra = extra
        self.received = bytearray()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._extra:
            body = json.loads(request.read()) | self._extra
            headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
            request = httpx.Request(
                request.method, request.url, headers=headers, content=json.dumps(body).encode()
            )
        response = self._inner.handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Tee(response.stream, self.received),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()


@contextmanager
def sdk(gateway: Gateway, key: str, wire: Wire) -> Iterator[OpenRouter]:
    """The SDK over ``wire``; its HTTP client is ours to close (the SDK leaves a
    supplied one open)."""
    with (
        httpx.Client(transport=wire) as http,
        OpenRouter(api_key=key, server_url=gateway.url + PREFIX, client=http) as client,
    ):
        yield client


async def spent_and_activity(gateway: Gateway, key: str) -> tuple[int, dict[str, Any]]:
    """What the key was charged (its credits), and its one activity entry, whose
    generation (OpenRouter's view of it) states the same cost."""
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        credits = (await client.get("/v1/credits")).json()
        [entry] = (await client.get("/v1/activity")).json()["data"]
        generation = (
            await client.get("/api/v1/generation", params={"id": entry["request_id"]})
        ).json()["data"]
    assert generation["total_cost"] == credits["spent_micro_usd"] / 1_000_000
    return credits["spent_micro_usd"], entry


def without_cost(received: bytes, cost_micro_usd: int) -> bytes:
    stated = b',"cost":' + usd_text(cost_micro_usd).encode()
    assert received.count(stated) == 1
    return received.replace(stated, b"")


def never_upstream(upstream: FakeUpstream) -> None:
    for seen in upstream.requests:
        assert not set(STRIPPED_FIELDS) & set(json.loads(seen["raw"]))


async def test_a_body_through_models_and_preferences_states_its_cost(
    testdata: object, gateway: Gateway, upstream: FakeUpstream
) -> None:
    assert RECORDINGS is not None
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    wire = Wire(usage={"include": True})

    def call() -> Any:
        with sdk(gateway, key, wire) as client:
            return client.chat.send(
                models=["gpt-4o", f"fake2/file:{BODY}", f"fake/file:{BODY}"],
                provider={"order": ["fake"], "ignore": ["deepseek"]},
                messages=MESSAGES,
            )

    result = await trio.to_thread.run_sync(call)
    spent, entry = await spent_and_activity(gateway, key)
    recorded = (RECORDINGS / BODY).read_bytes()
    assert entry["provider"] == "fake" and entry["served_model"] == f"fake/file:{BODY}"
    assert entry["note"] == "skipped models: gpt-4o (not in the catalog)"
    # the Activity page shows requested → served: the first known id, never the skipped
    assert entry["requested_model"] == f"fake2/file:{BODY}"
    assert spent == entry["cost_micro_usd"] > 0
    assert result.usage.cost == spent / 1_000_000  # what the SDK parsed is the charge
    assert (
        result.choices[0].message.content
        == json.loads(recorded)["choices"][0]["message"]["content"]
    )
    assert without_cost(bytes(wire.received), spent) == recorded
    never_upstream(upstream)


async def test_a_stream_through_models_and_preferences_states_its_cost(
    testdata: object, gateway: Gateway, upstream: FakeUpstream
) -> None:
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    wire = Wire(usage={"include": True})

    def call() -> list[Any]:
        with sdk(gateway, key, wire) as client:
            stream = client.chat.send(
                models=[f"fake/replay:{STREAM}", f"fake2/replay:{STREAM}"],
                provider={"sort": "price", "only": ["Fake upstream two", "fake"]},
                messages=MESSAGES,
                stream=True,
            )
            with stream:
                return list(stream)

    chunks = await trio.to_thread.run_sync(call)
    spent, entry = await spent_and_activity(gateway, key)
    assert entry["provider"] == "fake"  # the cheaper of the two (1.25 + 10 against 2.5 + 20)
    assert spent == entry["cost_micro_usd"] > 0
    usages = [c.usage for c in chunks if c.usage is not None]
    assert [u.cost for u in usages] == [spent / 1_000_000]
    assert usages[0].completion_tokens == entry["completion_tokens"]
    # DeepSeek puts its usage on the finish chunk: that chunk carries the cost, and every
    # other byte is the recording's
    assert without_cost(bytes(wire.received), spent) == stream_bytes(STREAM)
    never_upstream(upstream)


async def test_without_usage_include_the_stream_is_the_recording(
    testdata: object, gateway: Gateway
) -> None:
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    wire = Wire()

    def call() -> list[Any]:
        with sdk(gateway, key, wire) as client:
            stream = client.chat.send(model=f"fake/replay:{STREAM}", messages=MESSAGES, stream=True)
            with stream:
                return list(stream)

    chunks = await trio.to_thread.run_sync(call)
    assert chunks and chunks[-1].usage.completion_tokens > 0  # DeepSeek's own usage
    assert bytes(wire.received) == stream_bytes(STREAM)  # no cost in it: not asked


@pytest.mark.parametrize(
    ("provider", "status", "param"),
    [
        ({"only": ["anthropic"]}, 404, "provider.only"),
        ({"data_collection": "deny"}, 400, "provider.data_collection"),
        ({"sort": "exacto"}, 400, "provider.sort"),
    ],
)
async def test_preferences_refused_reach_the_sdk_as_errors(
    gateway: Gateway, upstream: FakeUpstream, provider: dict[str, Any], status: int, param: str
) -> None:
    key = await gateway.create_key(credits_micro_usd=10_000_000)

    def call() -> None:
        with sdk(gateway, key, Wire()) as client:
            client.chat.send(model="fake/ok", provider=provider, messages=MESSAGES)

    with pytest.raises(OpenRouterError) as caught:
        await trio.to_thread.run_sync(call)
    assert caught.value.status_code == status
    error = json.loads(caught.value.body)["error"]
    assert error["param"] == param and re.search(r"provider\.", error["message"])
    assert upstream.requests == []


async def test_models_show_what_this_worker_measured(gateway: Gateway) -> None:
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    async with httpx.AsyncClient(
        base_url=gateway.url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        before = (await client.get("/v1/models/chain-b")).json()
        assert before["measured"] is None  # nothing served yet
        body = {"model": "chain-b", "stream": True, "messages": MESSAGES}
        streamed = await client.post("/v1/chat/completions", json=body)
        assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
        listed = (await client.get("/v1/models")).json()["data"]
    [measured] = [m["measured"] for m in listed if m["id"] == "chain-b"]
    assert measured["samples"] == 1
    assert measured["ttfb_ms"] >= 0
    assert all(m["measured"] is None for m in listed if m["id"] != "chain-b")
