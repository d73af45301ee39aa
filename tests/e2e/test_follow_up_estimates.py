"""A Responses follow-up whose usage never arrives (the stream cut before its terminal
event) is billed an estimate, and the estimate counts the earlier turns the provider
replayed (``context_tokens``, known exactly from the gateway's own records): the prompt
bytes alone would bill a 4 000-token conversation as the follow-up's few words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ..servers import FakeUpstream, Gateway
from .anthropic_support import request_entries
from .responses_gateway import responses_gateway

# a served response of 4020 input and 5 output tokens (OpenRouter's prompt-cache turn)
EARLIER = "responses/pydantic-ai__openrouter_responses_prompt_cache__i1.json"
EARLIER_TOKENS = 4020 + 5
CUT = "streams/deepseek/pydantic-ai__deepseek-v4-flash_responses_api_text_stream.sse"


@pytest.fixture
async def gateway(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with responses_gateway(tmp_path, upstream.url) as gw:
        yield gw


async def post(gateway: Gateway, key: str, body: dict[str, object]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        return await client.post(
            "/v1/responses", json=body, headers={"Authorization": f"Bearer {key}"}
        )


async def test_a_cut_follow_up_is_billed_the_context_it_replayed(
    testdata: object, gateway: Gateway
) -> None:
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    first = await post(gateway, key, {"model": f"rfake/file:{EARLIER}", "input": "hi"})
    assert first.status_code == 200, first.text
    follow_up = await post(
        gateway,
        key,
        {
            "model": f"rfake/cut:{CUT}",
            "input": "and?",
            "stream": True,
            "previous_response_id": first.json()["id"],
        },
    )
    assert follow_up.status_code == 200 and b"upstream_stream_incomplete" in follow_up.content
    (entry,) = await request_entries(gateway, follow_up.headers["x-saferouter-request-id"])
    assert entry.estimated and entry.completion_tokens > 0
    # the provider read the earlier turns again: they are in the estimate's prompt
    assert entry.prompt_tokens >= EARLIER_TOKENS
