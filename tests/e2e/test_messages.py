"""``POST /v1/messages`` end to end: the real ``anthropic`` SDK through a real gateway to
a fake upstream replaying recordings/anthropic/ byte for byte (tests/fake_messages.py).

What the SDK's HTTP layer received is compared with the recording's bytes (a transport
that tees them), and parsed by the SDK; each request's activity entry is billed exactly
from the recording's expected usage (index-extra.json, summed over ``iterations``) at
the catalog's price, cache reads and writes each at their own."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic._constants import ANTHROPIC_API_VERSION

from saferouter.accounting import Usage, cost_micro_usd

from ..recordings import RECORDINGS, anthropic_billed, extra_index, recording_params
from ..servers import FAKE_PRICE, FakeUpstream, Gateway, running_gateway
from .anthropic_support import CLAUDE_PRICE, HI, Tee, claude_settings, request_entries, sdk
from .test_receipts import RECEIPT, verified

EXPECTED = {p: e for p, e in extra_index().items() if p.startswith("anthropic/")}
STREAMS = sorted(p for p, e in EXPECTED.items() if p.endswith(".sse"))
BODIES = sorted(p for p, e in EXPECTED.items() if p.endswith(".json") and e.get("final_usage"))


@pytest.fixture
async def gateway(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(claude_settings(tmp_path, upstream.url)) as gw:
        yield gw


@pytest.mark.parametrize("relative", recording_params(STREAMS))
async def test_a_stream_reaches_the_sdk_byte_for_byte_and_is_billed_exactly(
    testdata: object, gateway: Gateway, relative: str
) -> None:
    assert RECORDINGS is not None
    # unmetered: the recordings' prompts (up to 404,500 tokens with web search) are far
    # beyond what this request's bytes bound, so a metered key's charge would be capped
    key = await gateway.create_key()
    tee = Tee()
    async with sdk(gateway, tee, api_key=key) as client:
        stream = await client.messages.create(
            model=f"fake/replay:{relative}@7", max_tokens=4096, messages=HI, stream=True
        )
        kinds = [event.type async for event in stream]
        request_id = stream.response.headers["x-saferouter-request-id"]
    received = bytes(tee.received[-1])
    assert received == (RECORDINGS / relative).read_bytes()
    receipt = await verified(gateway, key, stream.response.headers[RECEIPT])
    assert receipt["response_sha256"] == hashlib.sha256(received).hexdigest()
    assert receipt["cost_micro_usd"] == cost_micro_usd(anthropic_billed(relative), FAKE_PRICE)
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    [entry] = await request_entries(gateway, request_id)
    usage = anthropic_billed(relative)
    assert (entry.outcome, entry.streamed, entry.estimated) == ("ok", True, False)
    assert (entry.prompt_tokens, entry.cached_tokens, entry.completion_tokens) == (
        usage.prompt_tokens,
        usage.cached_tokens,
        usage.output_tokens,
    )
    assert entry.cache_write_tokens == usage.cache_write_tokens
    assert entry.cost_micro_usd == cost_micro_usd(usage, FAKE_PRICE)
    assert (entry.api, entry.finish_reason) == ("messages", EXPECTED[relative]["stop_reason"])
    assert entry.response_id is not None and entry.response_id.startswith("msg_")


@pytest.mark.parametrize("relative", recording_params(BODIES))
async def test_a_body_reaches_the_sdk_as_sent_and_is_billed_exactly(
    testdata: object, gateway: Gateway, relative: str
) -> None:
    assert RECORDINGS is not None
    key = await gateway.create_key()  # unmetered, as above
    async with sdk(gateway, auth_token=key) as client:  # Authorization: Bearer
        raw = await client.messages.with_raw_response.create(
            model=f"fake/replay:{relative}", max_tokens=4096, messages=HI
        )
    assert raw.http_response.content == (RECORDINGS / relative).read_bytes()
    message = await raw.parse()
    assert message.type == "message"
    [entry] = await request_entries(gateway, raw.headers["x-saferouter-request-id"])
    assert entry.cost_micro_usd == cost_micro_usd(anthropic_billed(relative), FAKE_PRICE)
    assert entry.response_id == message.id and entry.finish_reason == message.stop_reason


async def test_an_overloaded_provider_falls_over_and_the_cache_is_billed_at_its_prices(
    testdata: object, gateway: Gateway, upstream: FakeUpstream
) -> None:
    """The first provider answers Anthropic's 529 overloaded_error (the body quoted in
    claude-code#45064); the second serves pydantic-ai's cache recording: in 3, cache
    read 1111 (at the cached price), cache write 418 (at cache_write), out 33."""
    key = await gateway.create_key(credits_micro_usd=50_000_000)
    async with sdk(gateway, api_key=key) as client:
        raw = await client.messages.with_raw_response.create(
            model="claude-overloaded", max_tokens=1024, messages=HI
        )
    message = await raw.parse()
    assert message.usage.cache_read_input_tokens == 1111
    assert (raw.headers["x-saferouter-fallback-from"], raw.headers["x-saferouter-model"]) == (
        "claude-overloaded",
        "claude-cache",
    )
    first, second = await request_entries(gateway, raw.headers["x-saferouter-request-id"])
    # recorded as the gateway's own error for it (a provider that is unavailable: 503)
    assert (first.status, first.outcome, first.error_type) == (503, "error", "upstream_unavailable")
    assert first.cost_micro_usd == 0
    usage = Usage(prompt_tokens=1532, cached_tokens=1111, cache_write_tokens=418, output_tokens=33)
    assert second.cost_micro_usd == cost_micro_usd(usage, CLAUDE_PRICE) == 2405
    assert (second.served_model, second.outcome) == ("claude-cache", "ok")
    receipt = await verified(gateway, key, raw.headers[RECEIPT])
    assert [(a["model"], a["status"]) for a in receipt["attempts"]] == [
        ("claude-overloaded", 503),
        ("claude-cache", 200),
    ]
    assert receipt["cost_micro_usd"] == 2405
    sent = [r for r in upstream.requests if r.get("path") == "/v1/messages"]
    assert [r["body"]["model"] for r in sent] == [
        "overloaded",
        "replay:anthropic/" + ("pydantic-ai__claude_cache_read_and_write__i1.json"),
    ]
    for request in sent:  # the operator's key both ways, the API version passed on
        assert request["headers"]["X-Api-Key"] == "sk-upstream-secret-1234"
        assert request["headers"]["Authorization"] == "Bearer sk-upstream-secret-1234"
        assert request["headers"]["Anthropic-Version"] == ANTHROPIC_API_VERSION  # the SDK's
        assert key not in json.dumps(request["headers"])


# the fake answers with the 529 body reported in issues (recordings/anthropic/)
@pytest.mark.testdata
async def test_every_provider_overloaded_is_anthropics_529(gateway: Gateway) -> None:
    async with sdk(gateway, api_key=gateway.admin_key) as client:
        with pytest.raises(anthropic.InternalServerError) as caught:
            await client.messages.create(model="fake/overloaded", max_tokens=5, messages=HI)
    assert caught.value.status_code == 529
    assert isinstance(caught.value, anthropic.OverloadedError)
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
