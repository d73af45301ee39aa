"""``/v1/messages`` at its edges, through the real ``anthropic`` SDK and raw HTTP: every
way an Anthropic client authenticates, bad input as Anthropic-shaped 4xx (never a 500),
a stream that fails or is cut, ``count_tokens`` (forwarded, never billed), the model
list in Anthropic's shape, and the demo answering as Claude Code calls it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from ..fake_messages import COUNTED_INPUT_TOKENS
from ..servers import FakeUpstream, Gateway, running_gateway
from .anthropic_support import HI, Tee, claude_settings, request_entries, sdk

BODY = {"model": "fake/ok", "max_tokens": 16, "messages": HI}


@pytest.fixture
async def gateway(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(claude_settings(tmp_path, upstream.url)) as gw:
        yield gw


async def post(
    gateway: Gateway, body: Any, headers: dict[str, str], path: str = "/v1/messages"
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        return await client.post(path, content=content, headers=headers)


def anthropic_error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """The response is Anthropic's error shape with this status and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["type"] == "error" and body["error"]["type"] == kind
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def test_every_way_an_anthropic_client_sends_its_key(gateway: Gateway) -> None:
    key = await gateway.create_key()
    for auth in ({"x-api-key": key}, {"authorization": f"Bearer {key}"}):
        # Claude Code posts /v1/messages?beta=true
        path = "/v1/messages?beta=true"
        response = await post(gateway, BODY, {**auth, "anthropic-version": "2023-06-01"}, path)
        assert response.status_code == 200, response.text
        assert response.json()["type"] == "message"
    for auth in ({"api_key": key}, {"auth_token": key}):
        async with sdk(gateway, **auth) as client:
            message = await client.messages.create(model="fake/ok", max_tokens=16, messages=HI)
        assert message.content[0].type == "text"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": "sk-sr-not-a-key"},
        {"authorization": "Bearer sk-sr-not-a-key"},
    ],
)
async def test_no_key_or_a_wrong_one_is_anthropics_401(
    gateway: Gateway, headers: dict[str, str]
) -> None:
    anthropic_error(await post(gateway, BODY, headers), 401, "authentication_error")


async def test_a_model_whose_provider_lacks_the_api_is_an_anthropic_400(gateway: Gateway) -> None:
    response = await post(gateway, {**BODY, "model": "chat-only"}, {"x-api-key": gateway.admin_key})
    error = anthropic_error(response, 400, "invalid_request_error")
    assert error["code"] == "unsupported_api"


async def test_two_different_keys_are_refused(gateway: Gateway) -> None:
    key = await gateway.create_key()
    headers = {"x-api-key": key, "authorization": f"Bearer {gateway.admin_key}"}
    anthropic_error(await post(gateway, BODY, headers), 401, "authentication_error")


@pytest.mark.parametrize(
    ("body", "headers", "param"),
    [
        ({"model": "fake/ok", "messages": HI}, {}, "max_tokens"),
        ({**BODY, "max_tokens": "16"}, {}, "max_tokens"),
        ({**BODY, "max_tokens": 0}, {}, "max_tokens"),
        ({**BODY, "messages": []}, {}, "messages"),
        ({**BODY, "messages": "Hi"}, {}, "messages"),
        ({**BODY, "stream": "yes"}, {}, "stream"),
        ({"max_tokens": 5, "messages": HI}, {}, "model"),
        (b"\xff\xfe{not json", {}, None),
        (b"[1, 2]", {}, None),
        (BODY, {"anthropic-beta": "b" * 2000}, "anthropic-beta"),
        (BODY, {"anthropic-version": "2023-06-01\x7f"}, "anthropic-version"),
    ],
)
async def test_bad_input_is_an_anthropic_400(
    gateway: Gateway, body: Any, headers: dict[str, str], param: str | None
) -> None:
    sent = {"x-api-key": gateway.admin_key, "content-type": "application/json", **headers}
    error = anthropic_error(await post(gateway, body, sent), 400, "invalid_request_error")
    if param is not None:
        assert param in error["message"]


async def test_the_sdk_raises_bad_request_for_a_missing_max_tokens(gateway: Gateway) -> None:
    async with sdk(gateway, api_key=gateway.admin_key) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(model="fake/ok", max_tokens=None, messages=HI)  # type: ignore[arg-type]
    assert caught.value.body["error"]["message"] == "max_tokens: Field required"  # type: ignore[index]


async def test_a_metered_key_is_refused_a_server_tool(gateway: Gateway) -> None:
    key = await gateway.create_key(credits_micro_usd=1_000_000)
    tools = [{"type": "web_search_20250305", "name": "web_search"}]
    response = await post(gateway, {**BODY, "tools": tools}, {"x-api-key": key})
    error = anthropic_error(response, 400, "invalid_request_error")
    assert error["code"] == "unsupported_content"
    assert (
        "tools[0] (server tool web_search_20250305: its fees are not bounded)" in error["message"]
    )


async def test_an_error_event_mid_stream_reaches_the_sdk_and_charges_the_start(
    gateway: Gateway,
) -> None:
    key = await gateway.create_key(credits_micro_usd=1_000_000)
    async with sdk(gateway, api_key=key) as client:
        stream = await client.messages.create(
            model="fake/error-event", max_tokens=16, messages=HI, stream=True
        )
        with pytest.raises(anthropic.APIStatusError) as caught:
            async for _ in stream:
                pass
        request_id = stream.response.headers["x-saferouter-request-id"]
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    [entry] = await request_entries(gateway, request_id)
    assert (entry.outcome, entry.error_type) == ("error", "upstream_error_event")
    assert (entry.prompt_tokens, entry.completion_tokens) == (5, 3)  # message_start's


async def test_a_cut_stream_ends_with_an_anthropic_error_event_and_an_estimate(
    testdata: object, gateway: Gateway
) -> None:
    """The thinking recording cut after 20 events: no message_delta, no message_stop."""
    key = await gateway.create_key(credits_micro_usd=1_000_000)
    tee = Tee()
    model = "fake/cut:anthropic/pydantic-ai__claude-sonnet-4_thinking_signature_stream.sse:20"
    async with sdk(gateway, tee, api_key=key) as client:
        stream = await client.messages.create(
            model=model, max_tokens=4096, messages=HI, stream=True
        )
        with pytest.raises(anthropic.APIStatusError):
            async for _ in stream:
                pass
        request_id = stream.response.headers["x-saferouter-request-id"]
    last = bytes(tee.received[-1]).rsplit(b"\n\n", 2)[-2]
    assert last.startswith(b"event: error\ndata: ")
    assert json.loads(last.split(b"data: ", 1)[1])["error"]["type"] == "api_error"
    [entry] = await request_entries(gateway, request_id)
    assert entry.outcome == "error" and entry.prompt_tokens == 43
    assert entry.completion_tokens > 1  # the relayed thinking, estimated over message_start's 1


# the fake answers a count it cannot make with a recorded 404 (recordings/anthropic/)
@pytest.mark.testdata
async def test_count_tokens_is_forwarded_and_never_billed(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    key = await gateway.create_key(credits_micro_usd=1_000_000)
    async with sdk(gateway, api_key=key) as client:
        counted = await client.messages.count_tokens(model="claude-cache", messages=HI)
        assert counted.input_tokens == COUNTED_INPUT_TOKENS
        with pytest.raises(anthropic.NotFoundError) as caught:
            await client.messages.count_tokens(model="fake/nocount", messages=HI)
        with pytest.raises(anthropic.NotFoundError):
            await client.messages.count_tokens(model="no-such-model", messages=HI)
    assert "does not count tokens" in caught.value.body["error"]["message"]  # type: ignore[index]
    [sent, _] = [r for r in upstream.requests if r.get("path") == "/v1/messages/count_tokens"]
    assert (
        sent["body"]["model"]
        == "replay:anthropic/pydantic-ai__claude_cache_read_and_write__i1.json"
    )
    assert sent["headers"]["X-Api-Key"] == "sk-upstream-secret-1234"
    assert await gateway.store.activity_since(0, None) == []
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"authorization": f"Bearer {key}"}
    ) as raw:
        credits = (await raw.get("/v1/credits")).json()
    assert (credits["spent_micro_usd"], credits["reserved_micro_usd"]) == (0, 0)
    anonymous = await post(
        gateway, {"model": "claude-cache", "messages": HI}, {}, "/v1/messages/count_tokens"
    )
    anthropic_error(anonymous, 401, "authentication_error")


async def test_count_tokens_counts_against_the_keys_requests_per_minute(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """Each count is a request on the operator's account: the key's requests per minute
    bound them, and one over is a 429 in Anthropic's shape that never goes upstream."""
    key = await gateway.create_key(rpm_limit=2)
    answered, refused = 0, None
    async with sdk(gateway, api_key=key) as client:
        for _ in range(6):  # 2 per window: the minute may turn over once while this runs
            try:
                await client.messages.count_tokens(model="claude-cache", messages=HI)
            except anthropic.RateLimitError as error:
                refused = error
                break
            answered += 1
    assert refused is not None and 2 <= answered <= 4
    assert refused.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert 1 <= int(refused.response.headers["retry-after"]) <= 60
    assert refused.response.headers["x-ratelimit-limit"] == "2"
    sent = [r for r in upstream.requests if r.get("path") == "/v1/messages/count_tokens"]
    assert len(sent) == answered  # the refused count was not forwarded


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"model": "claude-cache"}, 400, "invalid_request_error"),
        ({"model": "claude-cache", "messages": []}, 400, "invalid_request_error"),
        (b"\xff{", 400, "invalid_request_error"),
        ({"model": "chat-only", "messages": HI}, 400, "invalid_request_error"),
        ({"model": "nope", "messages": HI}, 404, "not_found_error"),
    ],
)
async def test_count_tokens_refuses_bad_input_in_anthropic_shape(
    gateway: Gateway, body: Any, status: int, kind: str
) -> None:
    headers = {"x-api-key": gateway.admin_key}
    anthropic_error(await post(gateway, body, headers, "/v1/messages/count_tokens"), status, kind)


async def test_the_model_list_in_anthropic_shape(gateway: Gateway) -> None:
    async with sdk(gateway, api_key=gateway.admin_key) as client:
        page = await client.models.list()
        one = await client.models.retrieve("claude-cache")
        with pytest.raises(anthropic.NotFoundError):
            await client.models.retrieve("no-such-model")
    ids = [model.id for model in page.data]
    assert "claude-cache" in ids and "demo" in ids
    assert "chat-only" not in ids  # its provider does not serve /v1/messages
    assert (page.first_id, page.last_id) == (ids[0], ids[-1]) and not page.has_more
    assert (one.type, one.id, one.display_name) == ("model", "claude-cache", "claude-cache")
    async with httpx.AsyncClient(base_url=gateway.url) as raw:
        openai_shape = (await raw.get("/v1/models")).json()
    assert openai_shape["object"] == "list"


async def test_the_demo_answers_claude_code(gateway: Gateway) -> None:
    tools = [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}]
    async with sdk(gateway, auth_token=gateway.admin_key) as client:
        async with client.messages.stream(
            model="demo",
            max_tokens=32000,
            system="You are Claude Code.",
            tools=tools,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "list the files"}],
            extra_headers={"anthropic-beta": "claude-code-20250219"},
        ) as stream:
            final = await stream.get_final_message()
    # it calls the first tool, with an input valid for its schema (any object)
    assert final.stop_reason == "tool_use" and final.usage.output_tokens > 1
    (use,) = final.content
    assert use.type == "tool_use" and use.name == "Bash" and use.input == {}
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "a.txt"}
    async with sdk(gateway, auth_token=gateway.admin_key) as client:
        answer = await client.messages.create(
            model="demo",
            max_tokens=32000,
            tools=tools,  # type: ignore[arg-type]
            messages=[
                {"role": "user", "content": "list the files"},
                {"role": "assistant", "content": [use.model_dump()]},  # type: ignore[misc]
                {"role": "user", "content": [result]},  # type: ignore[misc]
            ],
        )
        counted = await client.messages.count_tokens(model="demo", messages=HI)
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"
    assert answer.content[0].text.startswith('The tool Bash returned: "a.txt".')
    assert counted.input_tokens > 0
