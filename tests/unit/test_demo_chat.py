"""The demo's chat completions in the wire format: every chunk read by the openai SDK's
own types and stream accumulator, the stream adding up to the same completion as the
whole body (content, reasoning, tool calls, finish reasons, n choices), usage counting
exactly the deltas sent, and bad tools/n/response_format refused OpenAI-shaped."""

from __future__ import annotations

import json
from typing import Any

import httpcore
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from saferouter.gateway.demo import DemoTransport
from saferouter.gateway.demo_answer import MAX_CHOICES
from saferouter.gateway.dialects.chat_watch import ChatWatch
from saferouter.sse import SSEDecoder

HI = [{"role": "user", "content": "what is the weather in Paris"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 2}},
            "required": ["city", "days"],
        },
    },
}


async def post(payload: dict[str, Any]) -> tuple[int, bytes]:
    request = httpcore.Request(
        b"POST", "http://demo.invalid/v1/chat/completions", content=json.dumps(payload).encode()
    )
    response = await DemoTransport().handle_async_request(request)
    return response.status, b"".join([part async for part in response.aiter_stream()])


async def both(payload: dict[str, Any]) -> tuple[ChatCompletion, list[ChatCompletionChunk]]:
    """The whole completion, and the chunks of the same request streamed."""
    status, body = await post(payload)
    assert status == 200, body
    status, streamed = await post({**payload, "stream": True})
    assert status == 200
    decoder, watch = SSEDecoder(), ChatWatch()
    decoder.feed(streamed)
    chunks = []
    for event in decoder.events():
        watch.observe(event)
        if event.data != "[DONE]":
            chunks.append(ChatCompletionChunk.model_validate_json(event.data or ""))
    whole = ChatCompletion.model_validate_json(body)
    assert watch.complete and watch.usage is not None
    assert watch.usage.output_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    return whole, chunks


def sent_tokens(chunks: list[ChatCompletionChunk]) -> int:
    """Deltas that carried a token: a piece of reasoning, content or a tool call."""
    count = 0
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            reasoning = (delta.model_extra or {}).get("reasoning_content")
            count += bool(delta.content) + bool(reasoning) + len(delta.tool_calls or [])
    return count


def accumulated(chunks: list[ChatCompletionChunk], tools: list[Any]) -> Any:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(input_tools=tools)
    for chunk in chunks:
        state.handle_chunk(chunk)
    return state.current_completion_snapshot


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"tools": [WEATHER]},
        {"tools": [WEATHER], "tool_choice": "none"},
        {"n": 3},
        {"n": 3, "tools": [WEATHER], "model": "demo-mini"},
        {"response_format": {"type": "json_object"}},
        {"max_tokens": 5},
        {"max_completion_tokens": 37, "tools": [WEATHER]},  # cut in the arguments,
    ],
)
async def test_the_stream_adds_up_to_the_whole_completion(extra: dict[str, Any]) -> None:
    whole, chunks = await both({"model": "demo", "messages": HI, **extra})
    streamed = accumulated(chunks, extra.get("tools", []))
    assert len(whole.choices) == len(streamed.choices) == extra.get("n", 1)
    for a, b in zip(whole.choices, streamed.choices, strict=True):
        assert (a.index, a.finish_reason, a.message.content) == (
            b.index,
            b.finish_reason,
            b.message.content,
        )
        calls = [(c.function.name, c.function.arguments) for c in a.message.tool_calls or []]
        assert calls == [
            (c.function.name, c.function.arguments) for c in b.message.tool_calls or []
        ]
    assert sent_tokens(chunks) == whole.usage.completion_tokens  # type: ignore[union-attr]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage == [whole.usage]  # once, with the last finish (DeepSeek's way)


async def test_a_tool_call_then_its_result_then_an_answer() -> None:
    whole, chunks = await both({"model": "demo", "messages": HI, "tools": [WEATHER]})
    (choice,) = whole.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "demo city", "days": 2}  # type: ignore[union-attr]
    pieces = [
        d.function.arguments
        for c in chunks
        for d in c.choices[0].delta.tool_calls or []
        if d.function is not None and d.function.arguments
    ]
    assert len(pieces) > 3  # split across chunks, as OpenAI streams arguments
    follow_up = [
        *HI,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    ]
    answer, _ = await both({"model": "demo", "messages": follow_up, "tools": [WEATHER]})
    assert answer.choices[0].finish_reason == "stop"
    assert 'The tool get_weather returned: "Sunny, 21 C".' in (
        answer.choices[0].message.content or ""
    )


async def test_max_tokens_bounds_reasoning_and_content_together() -> None:
    whole, chunks = await both({"model": "demo", "messages": HI, "max_tokens": 5})
    assert whole.usage is not None and whole.usage.completion_tokens == 5
    assert whole.choices[0].finish_reason == "length"
    assert sent_tokens(chunks) == 5
    reasoning = whole.choices[0].message.model_extra["reasoning_content"]  # type: ignore[index]
    assert reasoning == "The user wrote 6 words"  # five tokens, all of them reasoning


async def test_a_json_schema_answer() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    whole, _ = await both({"model": "demo", "messages": HI, "response_format": fmt})
    assert json.loads(whole.choices[0].message.content or "") == {"ok": True}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": MAX_CHOICES + 1}, "n"),
        ({"n": 0}, "n"),
        ({"n": "2"}, "n"),
        ({"tools": {"a": 1}}, "tools"),
        ({"tools": [{"type": "function"}]}, "tools[0]"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format",
        ),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        # a tool_choice OpenAI does not define was served as auto
        ({"tools": [WEATHER], "tool_choice": "requried"}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": "any"}, "tool_choice"),  # Anthropic's word
        ({"tools": [WEATHER], "tool_choice": 5}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function"}}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "x"}}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": {"function": {"name": "get_weather"}}}, "tool_choice"),
    ],
)
async def test_what_a_provider_refuses_is_an_openai_shaped_400(
    extra: dict[str, Any], param: str
) -> None:
    status, body = await post({"model": "demo", "messages": HI, **extra})
    assert status == 400
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
