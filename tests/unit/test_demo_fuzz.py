"""Whatever a client puts in the fields the demo reads (tools, tool_choice,
response_format, n, token limits, messages, input, text), every API's demo answers a
200 in its format or an error body — never an exception in the gateway's worker."""

from __future__ import annotations

import json
from typing import Any

import httpcore
import trio
from hypothesis import example, given
from hypothesis import strategies as st

from saferouter.gateway.demo import DemoTransport

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
FIELDS = {
    "/v1/chat/completions": [
        "messages",
        "tools",
        "tool_choice",
        "response_format",
        "n",
        "max_tokens",
        "max_completion_tokens",
    ],
    "/v1/messages": ["messages", "tools", "tool_choice", "thinking", "system", "max_tokens"],
    "/v1/responses": ["input", "tools", "tool_choice", "text", "max_output_tokens"],
}
# plausible shapes, so the fuzzing reaches past the first type check
TOOL = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "name": st.just("f"),
        "function": st.fixed_dictionaries({"name": st.just("f"), "parameters": JSON}),
        "input_schema": st.dictionaries(
            st.sampled_from(["type", "properties", "required", "items"]), JSON
        ),
        "parameters": JSON,
    }
)
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "tool"]),
        "content": JSON,
        "tool_call_id": JSON,
        "tool_calls": JSON,
    }
)


def post(path: str, payload: dict[str, Any]) -> tuple[int, bytes]:
    async def go() -> tuple[int, bytes]:
        request = httpcore.Request(
            b"POST", "http://demo.invalid" + path, content=json.dumps(payload).encode()
        )
        response = await DemoTransport().handle_async_request(request)
        return response.status, await response.aread()

    return trio.run(go)


UNHASHABLE_IDS = [
    {"role": "assistant", "tool_calls": [{"id": [1], "function": {"name": "f"}}]},
    {"role": "tool", "tool_call_id": [1], "content": "x"},
]


# found by this test at 4000 examples: each crashed the demo once
@example(path="/v1/messages", values={"tools": True}, stream=False)
@example(path="/v1/responses", values={"tools": 1}, stream=True)
@example(path="/v1/chat/completions", values={"messages": UNHASHABLE_IDS}, stream=False)
@example(
    path="/v1/chat/completions",
    values={"messages": [{"role": "user", "tool_calls": 3}]},
    stream=False,
)
@given(
    path=st.sampled_from(sorted(FIELDS)),
    values=st.dictionaries(
        st.sampled_from(sorted({f for fs in FIELDS.values() for f in fs})),
        JSON | st.lists(TOOL, max_size=2) | st.lists(MESSAGE, min_size=1, max_size=3),
    ),
    stream=st.booleans(),
)
def test_any_value_in_any_field_is_answered(
    path: str, values: dict[str, Any], stream: bool
) -> None:
    payload = {
        "model": "demo",
        "messages": [{"role": "user", "content": "hi"}],
        "input": "hi",
        **values,
        "stream": stream,
    }
    status, body = post(path, payload)
    assert status in (200, 400), body
    if status == 400 or not stream:
        json.loads(body)
    else:
        assert body.startswith((b"data: ", b"event: "))
