"""The demo provider's Anthropic Messages answers: Anthropic's wire format (each event
read by the anthropic SDK's own types), usage the messages watch bills, tools ignored,
thinking with a signature when asked, ``max_tokens`` honoured."""

from __future__ import annotations

import json
from typing import Any

import anthropic.types as types
import httpcore
import pydantic

from saferouter.gateway.demo import DemoTransport
from saferouter.gateway.dialects.messages import MESSAGES
from saferouter.gateway.dialects.messages_usage import MessagesWatch
from saferouter.sse import SSEDecoder

EVENTS = pydantic.TypeAdapter(types.RawMessageStreamEvent)
CLAUDE_CODE = {
    "model": "demo",
    "max_tokens": 32000,
    "system": [{"type": "text", "text": "You are Claude Code."}],
    "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "list my files"}]}],
}


async def answer(payload: dict[str, Any] | bytes, *, count_only: bool = False) -> tuple[int, bytes]:
    """The demo transport's answer at its /v1/messages (or count_tokens) path."""
    path = "/v1/messages/count_tokens" if count_only else "/v1/messages"
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = httpcore.Request(b"POST", "http://demo.invalid" + path, content=content)
    response = await DemoTransport().handle_async_request(request)
    body = b"".join([part async for part in response.aiter_stream()])
    return response.status, body


async def test_a_claude_code_stream_is_text_in_anthropic_events() -> None:
    status, body = await answer({**CLAUDE_CODE, "stream": True})
    assert status == 200
    decoder, watch = SSEDecoder(), MessagesWatch()
    decoder.feed(body)
    kinds = []
    for event in decoder.events():
        watch.observe(event)
        kinds.append(event.event)
        if event.event != "ping":  # the SDK skips pings by name, unparsed
            assert EVENTS.validate_json(event.data or "").type == event.event
    assert kinds[:2] == ["message_start", "ping"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert "content_block_delta" in kinds
    assert watch.complete and watch.finish_reason == "end_turn"
    message = json.loads((await answer(CLAUDE_CODE))[1])
    assert watch.usage == MESSAGES.body_facts(json.dumps(message).encode()).usage
    assert watch.usage is not None and watch.usage.output_tokens > 1
    text = types.Message.model_validate(message).content[0]
    assert isinstance(text, types.TextBlock) and 'You said: "list my files"' in text.text


async def test_thinking_when_asked_with_a_signature() -> None:
    payload = {**CLAUDE_CODE, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    message = types.Message.model_validate_json((await answer(payload))[1])
    thinking, text = message.content
    assert isinstance(thinking, types.ThinkingBlock) and thinking.signature
    assert isinstance(text, types.TextBlock)
    _, body = await answer({**payload, "stream": True})
    assert b'"type":"signature_delta"' in body and b'"type":"thinking_delta"' in body


async def test_max_tokens_cuts_the_text() -> None:
    message = json.loads((await answer({**CLAUDE_CODE, "max_tokens": 5}))[1])
    assert message["stop_reason"] == "max_tokens"
    assert message["usage"]["output_tokens"] <= 5


async def test_count_tokens_and_bad_bodies() -> None:
    status, body = await answer(CLAUDE_CODE, count_only=True)
    assert status == 200 and json.loads(body)["input_tokens"] > 0
    for count_only in (False, True):
        status, body = await answer(b'{"messages": 1}', count_only=count_only)
        assert status == 400 and json.loads(body)["type"] == "error"
        assert (await answer(b"{", count_only=count_only))[0] == 400
