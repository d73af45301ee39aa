"""Building a tool-calling app offline: the real ``openai`` and ``anthropic`` SDKs against
a real gateway serving the built-in demo provider. The SDKs' own parsers check the
demo's tool arguments and JSON against the pydantic models the app declared; a tool
loop (call → result → answer) runs end to end, streamed and not; ``n`` choices; and
``max_tokens`` sends exactly the tokens usage states and the gateway bills."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import openai
import pydantic
import pytest
import trio
from anthropic.types import TextBlock, ToolUseBlock

from saferouter.gateway.demo_answer import MAX_CHOICES
from saferouter.storage import ActivityFilter

from ..servers import Gateway
from .anthropic_support import sdk as anthropic_sdk

ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
_made: list[openai.OpenAI] = []


class GetWeather(pydantic.BaseModel):
    """The weather at a place."""

    model_config = pydantic.ConfigDict(extra="forbid")
    city: str
    unit: Literal["celsius", "fahrenheit"]
    days: int = pydantic.Field(ge=1, le=7)


class Verdict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    ok: bool
    reasons: list[str]
    score: float = pydantic.Field(ge=0, le=1)


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _made:
        _made.pop().close()


def client(gateway: Gateway) -> openai.OpenAI:
    made = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=gateway.admin_key, max_retries=0, timeout=30
    )
    _made.append(made)
    return made


@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_loop_runs_offline(gateway: Gateway, stream: bool) -> None:
    tools = [openai.pydantic_function_tool(GetWeather)]

    def run() -> tuple[Any, Any]:
        chat = client(gateway).chat.completions
        if stream:
            with chat.stream(model="demo", messages=ASK, tools=tools) as events:
                first = events.get_final_completion()
        else:
            first = chat.parse(model="demo", messages=ASK, tools=tools)
        (call,) = first.choices[0].message.tool_calls
        result = {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"}
        history = [*ASK, first.choices[0].message.model_dump(exclude_none=True), result]
        if stream:
            with chat.stream(model="demo", messages=history, tools=tools) as events:
                return first, events.get_final_completion()
        return first, chat.parse(model="demo", messages=history, tools=tools)

    first, second = await trio.to_thread.run_sync(run)
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls
    # the SDK validated the arguments against GetWeather (strict: extra keys refused)
    assert call.function.parsed_arguments == GetWeather(city="demo city", unit="celsius", days=1)
    answer = second.choices[0]
    assert answer.finish_reason == "stop" and answer.message.tool_calls in (None, [])
    assert answer.message.content.startswith('The tool GetWeather returned: "Sunny, 21 C".')


async def test_json_answers_the_sdk_parses(gateway: Gateway) -> None:
    def run() -> tuple[Any, Any]:
        chat = client(gateway).chat.completions
        parsed = chat.parse(model="demo-mini", messages=ASK, response_format=Verdict)
        loose = chat.create(
            model="demo", messages=ASK, response_format={"type": "json_object"}, stream=True
        )
        return parsed, "".join(c.choices[0].delta.content or "" for c in loose if c.choices)

    parsed, loose = await trio.to_thread.run_sync(run)
    assert parsed.choices[0].message.parsed == Verdict(ok=True, reasons=["demo reason"], score=1)
    assert json.loads(loose)["answer"].startswith('You said: "What is the weather in Paris?"')


async def test_n_choices_streamed_and_whole(gateway: Gateway) -> None:
    def run() -> tuple[Any, list[Any]]:
        chat = client(gateway).chat.completions
        whole = chat.create(model="demo", messages=ASK, n=3)
        chunks = list(
            chat.create(
                model="demo", messages=ASK, n=3, stream=True, stream_options={"include_usage": True}
            )
        )
        return whole, chunks

    whole, chunks = await trio.to_thread.run_sync(run)
    assert [c.index for c in whole.choices] == [0, 1, 2]
    texts = [c.message.content for c in whole.choices]
    assert [t.split(".")[0] for t in texts] == ["Choice 1 of 3", "Choice 2 of 3", "Choice 3 of 3"]
    streamed = ["", "", ""]
    for chunk in chunks:
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
    assert streamed == texts
    (usage,) = [c.usage for c in chunks if c.usage is not None]
    assert usage.completion_tokens == whole.usage.completion_tokens


@pytest.mark.parametrize("stream", [False, True])
async def test_max_tokens_5_sends_exactly_the_5_tokens_usage_states_and_the_gateway_bills(
    gateway: Gateway, stream: bool
) -> None:
    key = await gateway.create_key(credits_micro_usd=1_000_000)

    def run() -> tuple[str, str, int, str]:
        chat = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        _made.append(chat)
        if not stream:
            done = chat.chat.completions.create(model="demo-mini", messages=ASK, max_tokens=5)
            choice = done.choices[0]
            return "", choice.message.content, done.usage.completion_tokens, choice.finish_reason
        pieces, usage, finish = [], 0, ""
        for chunk in chat.chat.completions.create(
            model="demo-mini",
            messages=ASK,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        ):
            for choice in chunk.choices:
                pieces += [choice.delta.content] if choice.delta.content else []
                finish = choice.finish_reason or finish
            usage = chunk.usage.completion_tokens if chunk.usage else usage
        return "|".join(pieces), "".join(pieces), usage, finish

    pieces, content, usage, finish = await trio.to_thread.run_sync(run)
    assert (content, usage, finish) == ('You said: "What', 5, "length")
    if stream:
        assert pieces == 'You| said|:| "|What'  # one token a delta
    (entry,) = await gateway.store.activity(ActivityFilter(limit=10))
    assert entry.completion_tokens == 5 and not entry.estimated


async def test_too_many_choices_is_an_openai_shaped_400(gateway: Gateway) -> None:
    def run() -> openai.BadRequestError:
        with pytest.raises(openai.BadRequestError) as caught:
            client(gateway).chat.completions.create(model="demo", messages=ASK, n=MAX_CHOICES + 1)
        return caught.value

    error = await trio.to_thread.run_sync(run)
    assert error.status_code == 400 and error.param == "n"
    assert set(error.body) == {"message", "type", "param", "code"}  # type: ignore[arg-type]
    assert str(MAX_CHOICES) in error.body["message"]  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True])
async def test_an_anthropic_tool_use_loop(gateway: Gateway, stream: bool) -> None:
    tool = {"name": "get_weather", "input_schema": GetWeather.model_json_schema()}
    key = gateway.admin_key

    async def ask(messages: list[dict[str, Any]]) -> Any:
        async with anthropic_sdk(gateway, api_key=key) as api:
            if not stream:
                return await api.messages.create(
                    model="demo", max_tokens=1024, messages=messages, tools=[tool]
                )
            async with api.messages.stream(
                model="demo", max_tokens=1024, messages=messages, tools=[tool]
            ) as events:
                return await events.get_final_message()

    first = await ask(ASK)
    assert first.stop_reason == "tool_use"
    (use,) = first.content
    assert isinstance(use, ToolUseBlock) and use.name == "get_weather"
    GetWeather.model_validate(use.input)  # valid for the schema the app sent
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 C"}
    second = await ask(
        [
            *ASK,
            {"role": "assistant", "content": [use.model_dump()]},
            {"role": "user", "content": [result]},
        ]
    )
    (text,) = second.content
    assert second.stop_reason == "end_turn" and isinstance(text, TextBlock)
    assert text.text.startswith('The tool get_weather returned: "Sunny, 21 C".')


async def test_a_responses_function_call_loop(gateway: Gateway) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "parameters": GetWeather.model_json_schema(),
        "strict": True,
    }

    def run() -> tuple[Any, Any]:
        responses = client(gateway).responses
        with responses.stream(model="demo", input="Weather in Paris?", tools=[tool]) as events:
            first = events.get_final_response()
        (call,) = [item for item in first.output if item.type == "function_call"]
        result = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}
        history = [{"role": "user", "content": "Weather in Paris?"}, call, result]
        return first, responses.create(model="demo", input=history, tools=[tool])

    first, second = await trio.to_thread.run_sync(run)
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert GetWeather.model_validate_json(call.arguments).city == "demo city"
    assert second.output_text.startswith('The tool get_weather returned: "Sunny".')
