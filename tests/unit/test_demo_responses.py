"""The demo provider's Responses API: the wire format the openai SDK's own models accept,
read by the gateway's watch like a real provider's stream."""

from __future__ import annotations

import json
from typing import Any

import httpcore
import pydantic
import pytest
import trio
from openai.types.responses import Response, ResponseStreamEvent

from saferouter.gateway.demo import DemoTransport
from saferouter.gateway.dialects.responses_usage import ResponsesWatch
from saferouter.sse import SSEDecoder, SSEEvent

STREAM_EVENT = pydantic.TypeAdapter(ResponseStreamEvent)


def answer(payload: dict[str, Any] | bytes) -> tuple[int, bytes]:
    """The demo transport's answer to ``POST /v1/responses``, as the gateway calls it."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()

    async def post() -> tuple[int, bytes]:
        request = httpcore.Request("POST", "http://demo.invalid/v1/responses", content=body)
        response = await DemoTransport().handle_async_request(request)
        return response.status, await response.aread()

    return trio.run(post)


def events(data: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    decoder.feed(data)
    found = list(decoder.events())
    assert decoder.close() is None
    return found


def test_a_stream_in_the_responses_wire_format() -> None:
    status, data = answer({"model": "demo", "input": "hello there", "stream": True})
    assert status == 200
    stream = events(data)
    parsed = [STREAM_EVENT.validate_json(event.data or "") for event in stream]
    assert [p.type for p in parsed] == [event.event for event in stream]
    assert [p.sequence_number for p in parsed] == list(range(len(parsed)))
    kinds = [event.event for event in stream]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert "response.reasoning_text.delta" in kinds and "response.output_text.delta" in kinds
    assert kinds[-1] == "response.completed"
    watch = ResponsesWatch()
    for event in stream:
        watch.observe(event)
    final = json.loads(stream[-1].data or "")["response"]
    text = "".join(p.delta for p in parsed if p.type == "response.output_text.delta")
    assert final["output"][-1]["content"][0]["text"] == text and "hello there" in text
    assert watch.complete and not watch.failed and watch.finish_reason == "completed"
    assert watch.usage is not None and watch.usage.prompt_tokens == final["usage"]["input_tokens"]
    assert watch.response_id == final["id"]


def test_a_whole_body_the_sdk_accepts_and_an_output_limit() -> None:
    status, body = answer(
        {
            "model": "demo-mini",
            "input": [{"role": "user", "content": "hi you"}],
            "max_output_tokens": 5,
        }
    )
    assert status == 200
    response = Response.model_validate_json(body)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens <= 5
    _, streamed = answer(
        {"model": "demo-mini", "input": "hi you", "max_output_tokens": 5, "stream": True}
    )
    assert events(streamed)[-1].event == "response.incomplete"


def test_bad_bodies_are_openai_shaped_400s() -> None:
    for body in (b"{", b"[]"):
        status, data = answer(body)
        assert status == 400 and set(json.loads(data)["error"]) >= {"message", "type"}


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def test_a_function_call_streamed_and_whole_then_an_answer_to_its_output() -> None:
    request = {"model": "demo", "input": "weather in Paris?", "tools": [WEATHER]}
    status, data = answer({**request, "stream": True})
    assert status == 200
    parsed = [STREAM_EVENT.validate_json(event.data or "") for event in events(data)]
    deltas = [p.delta for p in parsed if p.type == "response.function_call_arguments.delta"]
    (done,) = [p for p in parsed if p.type == "response.function_call_arguments.done"]
    assert len(deltas) > 1 and "".join(deltas) == done.arguments == '{"city": "demo city"}'
    assert parsed[-1].type == "response.completed"
    whole = Response.model_validate_json(answer(request)[1])
    (call,) = [item for item in whole.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "demo city"}
    assert whole.usage is not None
    assert (
        whole.usage.output_tokens
        == len(deltas) + 1 + whole.usage.output_tokens_details.reasoning_tokens
    )
    follow_up = [
        {"role": "user", "content": "weather in Paris?"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"},
    ]
    after = Response.model_validate_json(answer({**request, "input": follow_up})[1])
    assert after.output_text.startswith('The tool get_weather returned: "Sunny".')
    none = Response.model_validate_json(answer({**request, "tool_choice": "none"})[1])
    assert 'You said: "weather in Paris?"' in none.output_text


def test_json_formats_and_a_named_tool_that_is_not_offered() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fmt = {"format": {"type": "json_schema", "name": "x", "schema": schema}}
    whole = Response.model_validate_json(answer({"model": "demo", "input": "hi", "text": fmt})[1])
    assert json.loads(whole.output_text) == {"n": 1}
    fmt = {"format": {"type": "json_object"}}
    whole = Response.model_validate_json(answer({"model": "demo", "input": "hi", "text": fmt})[1])
    assert json.loads(whole.output_text)["answer"].startswith('You said: "hi".')
    choice = {"type": "function", "name": "elsewhere"}
    status, data = answer(
        {"model": "demo", "input": "hi", "tools": [WEATHER], "tool_choice": choice}
    )
    assert status == 400 and json.loads(data)["error"]["param"] == "tool_choice"


@pytest.mark.parametrize(
    "choice",
    [
        "requried",
        "any",
        {"type": "bogus"},
        {"type": "file_search"},  # a hosted tool's: the demo has none
        {"type": "function"},  # no name
        {"type": "function", "function": {"name": "get_weather"}},  # chat's shape
        5,
    ],
)
def test_a_tool_choice_the_api_does_not_define_is_refused(choice: object) -> None:
    """It was served as auto: a typo passed the demo and failed at the provider."""
    status, data = answer(
        {"model": "demo", "input": "hi", "tools": [WEATHER], "tool_choice": choice}
    )
    error = json.loads(data)["error"]
    assert (status, error["param"], error["code"]) == (400, "tool_choice", "invalid_value")
    assert error["message"].startswith("tool_choice must be none, auto, required or")
    for good in ("auto", "required", "none", {"type": "function", "name": "get_weather"}):
        request = {"model": "demo", "input": "hi", "tools": [WEATHER], "tool_choice": good}
        assert answer(request)[0] == 200
