"""``POST /v1/responses`` with the real openai SDK (``client.responses.create``) through a
real gateway to a fake upstream replaying real recordings: byte for byte, billed to the
token from the terminal event, with fallback only to providers serving the API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import trio

from saferouter.accounting import Usage, cost_micro_usd
from saferouter.keys import hash_key
from saferouter.storage import ActivityEntry, ActivityFilter

from ..recordings import RECORDINGS, recording_params, responses_usages, typed_stream_bytes
from ..responses_upstream import KEYISH
from ..servers import FakeUpstream, Gateway
from .responses_gateway import FAILED_200, RFAKE_PRICE, WEATHER_TOOL, responses_gateway, sdk

DEEPSEEK = "streams/deepseek/pydantic-ai__deepseek-v4-flash_responses_api_"
STREAMS = [
    DEEPSEEK + "text_stream.sse",
    DEEPSEEK + "function_tool_stream__i0.sse",
    "responses/pydantic-ai__deepseek-v4-flash_function_tool_stream__i1.sse",
    "responses/pydantic-ai__bedrock-mantle_gpt-5.6-luna_tool_stream__i0.sse",
    "responses/pydantic-ai__bedrock-mantle_gpt-5.6-luna_text_stream__i2.sse",
    "responses/pydantic-ai__gpt-5_web_search_cached_tokens_stream.sse",
]
BODIES = [
    "responses/pydantic-ai__deepseek-v4-flash_function_tool__i0.json",
    "responses/pydantic-ai__deepseek-v4-flash_reasoning_effort.json",
    "responses/pydantic-ai__openrouter_responses_prompt_cache__i1.json",
]


@pytest.fixture
async def gateway(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with responses_gateway(tmp_path, upstream.url) as gw:
        yield gw


def expected_usage(relative: str) -> Usage:
    usage = responses_usages()[relative]
    assert usage is not None
    return usage


async def entries(gateway: Gateway, key_id: str | None = None) -> list[ActivityEntry]:
    """Every activity entry (of ``key_id``), oldest first."""
    found = await gateway.store.activity(ActivityFilter(key_id=key_id, limit=200))
    return sorted(found, key=lambda e: (e.created_at, e.request_id, e.attempt))


async def key_id_of(gateway: Gateway, secret: str) -> str:
    record = await gateway.store.key_by_hash(hash_key(secret))
    assert record is not None
    return record.id


@pytest.mark.parametrize("relative", recording_params(STREAMS))
async def test_a_recorded_stream_reaches_the_sdk_byte_for_byte_and_is_billed_exactly(
    testdata: object, gateway: Gateway, upstream: FakeUpstream, relative: str
) -> None:
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    client, tee = sdk(gateway, key)
    seed = sum(relative.encode()) % 1000

    def call() -> list[Any]:
        with client:
            stream = client.responses.create(
                model=f"rfake/replay:{relative}@{seed}",
                input=[{"role": "user", "content": "What is the temperature in Tokyo?"}],
                tools=[WEATHER_TOOL],  # type: ignore[list-item]
                stream=True,
            )
            return list(stream)

    events = await trio.to_thread.run_sync(call)
    recorded = typed_stream_bytes(relative)
    assert bytes(tee.bodies[-1]) == recorded
    assert events[-1].type == "response.completed"
    usage = expected_usage(relative)
    sent = upstream.requests[-1]
    assert sent["path"] == "/v1/responses"
    assert sent["headers"]["Authorization"] == "Bearer sk-upstream-secret-1234"
    (entry,) = [e for e in await entries(gateway) if e.requested_model.startswith("rfake/")]
    assert entry.outcome == "ok" and entry.streamed and not entry.estimated
    assert (entry.prompt_tokens, entry.cached_tokens) == (usage.prompt_tokens, usage.cached_tokens)
    assert (entry.completion_tokens, entry.reasoning_tokens) == (
        usage.output_tokens,
        usage.reasoning_tokens,
    )
    assert entry.cache_write_tokens == usage.cache_write_tokens
    assert entry.cost_micro_usd == cost_micro_usd(usage, RFAKE_PRICE)
    assert entry.api == "responses" and entry.finish_reason == "completed"
    assert entry.response_id == events[-1].response.id


@pytest.mark.parametrize("relative", recording_params(BODIES))
async def test_a_recorded_body_reaches_the_sdk_byte_for_byte_and_is_billed_exactly(
    testdata: object, gateway: Gateway, relative: str
) -> None:
    assert RECORDINGS is not None
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    client, tee = sdk(gateway, key)

    def call() -> Any:
        with client:
            return client.responses.create(
                model=f"rfake/file:{relative}", input="What is the temperature in Tokyo?"
            )

    response = await trio.to_thread.run_sync(call)
    recorded = (RECORDINGS / relative).read_bytes()
    assert bytes(tee.bodies[-1]) == recorded
    assert response.id == json.loads(recorded)["id"]
    usage = expected_usage(relative)
    (entry,) = await entries(gateway, await key_id_of(gateway, key))
    assert entry.outcome == "ok" and not entry.streamed
    assert (entry.prompt_tokens, entry.cached_tokens, entry.completion_tokens) == (
        usage.prompt_tokens,
        usage.cached_tokens,
        usage.output_tokens,
    )
    assert entry.cost_micro_usd == cost_micro_usd(usage, RFAKE_PRICE)
    assert entry.response_id == response.id and entry.api == "responses"


async def test_a_200_whose_status_is_failed_fails_over_and_bills_nothing_for_it(
    testdata: object, gateway: Gateway, upstream: FakeUpstream
) -> None:
    """Bedrock Mantle's 200 body with status "failed" and no usage is no answer: the
    next candidate serves, and only it is billed."""
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    client, _ = sdk(gateway, key)

    def call() -> Any:
        with client:
            return client.responses.with_raw_response.create(model="resp-failed", input="hi")

    raw = await trio.to_thread.run_sync(call)
    assert raw.headers["x-saferouter-fallback-to"] == "resp-b"
    assert raw.parse().status == "completed"
    assert [r["body"]["model"] for r in upstream.requests] == [f"file:{FAILED_200}", "answer-b"]
    first, second = await entries(gateway, await key_id_of(gateway, key))
    assert (first.outcome, first.error_type, first.cost_micro_usd) == (
        "error",
        "upstream_failed_response",
        0,
    )
    assert second.outcome == "ok" and second.provider == "rfake2"


async def test_a_model_whose_provider_lacks_the_api_is_a_400_naming_those_that_serve_it(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    client, _ = sdk(gateway, gateway.admin_key)

    def call() -> None:
        with client:
            client.responses.create(model="chat-only", input="hi")

    with pytest.raises(openai.BadRequestError) as caught:
        await trio.to_thread.run_sync(call)
    error = caught.value
    assert error.code == "unsupported_api" and error.param == "model"
    assert "resp-b" in error.message and "deepseek-flash" in error.message
    assert "chat-only," not in error.message and not upstream.requests


async def test_fallback_goes_only_to_candidates_serving_the_api(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """resp-chain: its own provider answers 503, the chat-only fallback is skipped, the
    next one serves."""
    client, _ = sdk(gateway, gateway.admin_key)

    def call() -> Any:
        with client:
            return client.responses.with_raw_response.create(model="resp-chain", input="hi")

    raw = await trio.to_thread.run_sync(call)
    assert raw.headers["x-saferouter-provider"] == "rfake2"
    assert [r["body"]["model"] for r in upstream.requests] == ["status:503", "answer-b"]
    assert all(r["path"] == "/v1/responses" for r in upstream.requests)


async def test_an_answer_quoting_a_key_shape_is_relayed_untouched(
    testdata: object, gateway: Gateway
) -> None:
    """Every response object in a Responses stream has ``"error": null``: that is no
    error event, and the answer in it (which may rightly hold ``sk-…`` or ``Bearer …``,
    in code) goes out as the provider wrote it, like the deltas before it."""
    relative = DEEPSEEK + "text_stream.sse"
    client, tee = sdk(gateway, gateway.admin_key)

    def call() -> list[Any]:
        with client:
            return list(
                client.responses.create(model=f"rfake/keyish:{relative}", input="hi", stream=True)
            )

    events = await trio.to_thread.run_sync(call)
    expected = typed_stream_bytes(relative).replace(b"Paris", KEYISH)
    assert bytes(tee.bodies[-1]) == expected
    assert "sk-Paris-1234" in events[-1].response.output_text


async def test_an_in_stream_failure_is_relayed_as_sent_and_bills_nothing(
    testdata: object, gateway: Gateway
) -> None:
    """OpenAI's 200 stream with an ``error`` event then ``response.failed`` (usage null):
    the client gets it byte for byte (the SDK raises on the error event), the request
    is recorded failed, and nothing is charged."""
    relative = "responses/vercel-ai__openai_gpt-5-nano_error_then_response_failed.chunks.jsonl"
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    client, tee = sdk(gateway, key)

    def call() -> None:
        with client:
            for _ in client.responses.create(
                model=f"rfake/replay:{relative}", input="hi", stream=True
            ):
                pass

    with pytest.raises(openai.APIError, match="exceeded your current quota"):
        await trio.to_thread.run_sync(call)
    # the SDK stops reading at the error event: what it read is the recording's start
    assert typed_stream_bytes(relative).startswith(bytes(tee.bodies[-1]))
    assert b'"type":"error"' in bytes(tee.bodies[-1])
    with trio.fail_after(10):  # settled once the relay saw the end, after the SDK left
        while not (found := await entries(gateway, await key_id_of(gateway, key))):
            await trio.sleep(0.02)
    (entry,) = found
    assert entry.outcome == "error" and entry.cost_micro_usd == 0
