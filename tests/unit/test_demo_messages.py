"""The demo provider's Anthropic Messages answers: Anthropic's wire format (each event
read by the anthropic SDK's own types), usage the messages watch bills, a ``tool_use``
block valid for the tool's schema and text after its ``tool_result``, thinking with a
signature when asked, ``max_tokens`` honoured to the token."""

from __future__ import annotations

import json
from typing import Any

import anthropic.types as types
import httpcore
import pydantic
import pytest

from saferouter.gateway.demo import DemoTransport
from saferouter.gateway.dialects.messages import MESSAGES
from saferouter.gateway.dialects.messages_usage import MessagesWatch
from saferouter.sse import SSEDecoder

DEMO_SIGN = "This reply comes from SafeRouter's built-in demo provider"
EVENTS = pydantic.TypeAdapter(types.RawMessageStreamEvent)
CLAUDE_CODE = {
    "model": "demo",
    "max_tokens": 32000,
    "system": [{"type": "text", "text": "You are Claude Code."}],
    "tools": [
        {
            "name": "Bash",
            "input_schema": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        },
        {
            "name": "Read",
            "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
        },
    ],
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


def stream_events(body: bytes) -> tuple[list[Any], MessagesWatch]:
    """The stream's events read by the anthropic SDK's own types, and the gateway's watch."""
    decoder, watch = SSEDecoder(), MessagesWatch()
    decoder.feed(body)
    parsed = []
    for event in decoder.events():
        watch.observe(event)
        if event.event != "ping":  # the SDK skips pings by name, unparsed
            parsed.append(EVENTS.validate_json(event.data or ""))
            assert parsed[-1].type == event.event
    return parsed, watch


async def test_a_claude_code_stream_calls_its_first_tool_in_anthropic_events() -> None:
    status, body = await answer({**CLAUDE_CODE, "stream": True})
    assert status == 200
    events, watch = stream_events(body)
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    (start,) = [e for e in events if e.type == "content_block_start"]
    assert (
        isinstance(start.content_block, types.ToolUseBlock) and start.content_block.name == "Bash"
    )
    partial = "".join(e.delta.partial_json for e in events if e.type == "content_block_delta")
    assert json.loads(partial) == {"command": "demo command"}
    assert watch.complete and watch.finish_reason == "tool_use"
    message = json.loads((await answer(CLAUDE_CODE))[1])
    assert watch.usage == MESSAGES.body_facts(json.dumps(message).encode()).usage
    (use,) = types.Message.model_validate(message).content
    assert isinstance(use, types.ToolUseBlock) and use.input == {"command": "demo command"}


async def test_a_tool_result_gets_text_and_a_named_tool_or_none_is_honoured() -> None:
    message = types.Message.model_validate_json((await answer(CLAUDE_CODE))[1])
    (use,) = message.content
    assert isinstance(use, types.ToolUseBlock)
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "a.txt b.txt"}
    follow_up = {
        **CLAUDE_CODE,
        "messages": [
            *CLAUDE_CODE["messages"],
            {"role": "assistant", "content": [use.model_dump()]},
            {"role": "user", "content": [result]},
        ],
    }
    answered = types.Message.model_validate_json((await answer(follow_up))[1])
    (text,) = answered.content
    assert isinstance(text, types.TextBlock) and answered.stop_reason == "end_turn"
    assert text.text.startswith('The tool Bash returned: "a.txt b.txt".')
    named = {**CLAUDE_CODE, "tool_choice": {"type": "tool", "name": "Read"}}
    (read,) = types.Message.model_validate_json((await answer(named))[1]).content
    assert isinstance(read, types.ToolUseBlock) and read.input == {"file_path": "demo file path"}
    quiet = {**CLAUDE_CODE, "tool_choice": {"type": "none"}}
    (said,) = types.Message.model_validate_json((await answer(quiet))[1]).content
    assert isinstance(said, types.TextBlock) and 'You said: "list my files"' in said.text


async def test_thinking_when_asked_with_a_signature() -> None:
    payload = {**CLAUDE_CODE, "tools": [], "thinking": {"type": "enabled", "budget_tokens": 1024}}
    message = types.Message.model_validate_json((await answer(payload))[1])
    thinking, text = message.content
    assert isinstance(thinking, types.ThinkingBlock) and thinking.signature
    assert isinstance(text, types.TextBlock) and DEMO_SIGN in text.text
    _, body = await answer({**payload, "stream": True})
    assert b'"type":"signature_delta"' in body and b'"type":"thinking_delta"' in body


async def test_max_tokens_cuts_thinking_and_text_to_exactly_that_many_tokens() -> None:
    payload = {**CLAUDE_CODE, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    message = json.loads((await answer({**payload, "max_tokens": 5}))[1])
    assert message["stop_reason"] == "max_tokens"
    assert message["usage"]["output_tokens"] == 5
    events, _ = stream_events((await answer({**payload, "max_tokens": 5, "stream": True}))[1])
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert len([d for d in deltas if d.delta.type != "signature_delta"]) == 5


async def test_count_tokens_and_bad_bodies() -> None:
    status, body = await answer(CLAUDE_CODE, count_only=True)
    assert status == 200 and json.loads(body)["input_tokens"] > 0
    for count_only in (False, True):
        status, body = await answer(b'{"messages": 1}', count_only=count_only)
        assert status == 400 and json.loads(body)["type"] == "error"
        assert (await answer(b"{", count_only=count_only))[0] == 400


@pytest.mark.parametrize(
    "choice",
    ["auto", "any", {"type": "bogus"}, {"type": "tool"}, {"type": "function", "name": "Read"}, {}],
)
async def test_a_tool_choice_the_api_does_not_define_is_refused(choice: object) -> None:
    """Anthropic's tool_choice is an object of type auto, any, none or tool (with a
    name); anything else was served as auto."""
    status, data = await answer({**CLAUDE_CODE, "tool_choice": choice})
    error = json.loads(data)
    assert status == 400 and error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith("tool_choice must be")
    for good in (
        {"type": "auto"},
        {"type": "any"},
        {"type": "none"},
        {"type": "tool", "name": "Read"},
    ):
        assert (await answer({**CLAUDE_CODE, "tool_choice": good}))[0] == 200
