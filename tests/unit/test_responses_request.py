"""What the gateway reads of a Responses API request: the checked fields, what is
refused for everyone (state at the provider the gateway cannot attribute to a key), what
a metered key may not send (non_text), and that any bytes give an ApiError or a request."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saferouter.errors import ApiError, InvalidRequest
from saferouter.gateway.dialect import Api
from saferouter.gateway.dialects.responses import RESPONSES


def parse(payload: dict[str, Any]) -> Any:
    return RESPONSES.parse(json.dumps(payload).encode(), [])


def test_a_text_request() -> None:
    request = parse({"model": "deepseek-flash", "input": "Hi", "stream": True, "store": False})
    assert request.api is Api.RESPONSES and request.model == "deepseek-flash"
    assert request.stream and request.max_tokens is None and request.non_text == ()
    assert request.previous_response_id is None and request.client_models is None


def test_max_output_tokens_bounds_output_and_a_follow_up_names_its_predecessor() -> None:
    request = parse(
        {
            "model": "m",
            "input": [{"role": "user", "content": "more"}],
            "max_output_tokens": 64,
            "previous_response_id": "resp_0da443d9ee83",
        }
    )
    assert request.max_tokens == 64 and request.previous_response_id == "resp_0da443d9ee83"


def test_models_stand_in_for_model() -> None:
    request = parse({"models": ["deepseek-flash", "glm-4.7"], "input": "Hi"})
    assert request.model is None and request.client_models == ("deepseek-flash", "glm-4.7")


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"input": "x"}, "model", "missing_required_parameter"),
    ({"model": 5, "input": "x"}, "model", "invalid_type"),
    ({"model": "a b", "input": "x"}, "model", "invalid_model_id"),
    ({"model": "m"}, "input", "missing_required_parameter"),
    ({"model": "m", "input": None}, "input", "missing_required_parameter"),
    ({"model": "m", "input": 3}, "input", "invalid_type"),
    ({"model": "m", "input": []}, "input", "empty_array"),
    ({"model": "m", "input": ["hi"]}, "input[0]", "invalid_type"),
    ({"model": "m", "input": "x", "stream": "yes"}, "stream", "invalid_type"),
    ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens", "invalid_value"),
    ({"model": "m", "input": "x", "max_output_tokens": 1.5}, "max_output_tokens", "invalid_type"),
    ({"model": "m", "input": "x", "max_output_tokens": True}, "max_output_tokens", "invalid_type"),
    ({"model": "m", "input": "x", "store": "no"}, "store", "invalid_type"),
    (
        {"model": "m", "input": "x", "previous_response_id": 7},
        "previous_response_id",
        "invalid_value",
    ),
    (
        {"model": "m", "input": "x", "previous_response_id": "resp_1\nX-Evil: 1"},
        "previous_response_id",
        "invalid_value",
    ),
    (
        {"model": "m", "input": "x", "previous_response_id": ""},
        "previous_response_id",
        "invalid_value",
    ),
    ({"model": "m", "input": "x", "background": True}, "background", "unsupported_parameter"),
    ({"model": "m", "input": "x", "background": "1"}, "background", "invalid_type"),
    (
        {"model": "m", "input": "x", "conversation": "conv_1"},
        "conversation",
        "unsupported_parameter",
    ),
    (
        {"model": "m", "input": "x", "conversation": {"id": "conv_1"}},
        "conversation",
        "unsupported_parameter",
    ),
    ({"model": "m", "input": "x", "prompt": {"id": "pmpt_1"}}, "prompt", "unsupported_parameter"),
    (
        {
            "model": "m",
            "input": [{"role": "user", "content": "x"}, {"type": "item_reference", "id": "msg_1"}],
        },
        "input[1]",
        "unsupported_parameter",
    ),
    ({"model": "m", "input": "x", "models": []}, "models", "invalid_value"),
    (  # a file stored in the operator's shared provider account: another tenant's, maybe
        {
            "model": "m",
            "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}],
        },
        "input[0].content[0].file_id",
        "unsupported_parameter",
    ),
    (
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "x"},
                {
                    "type": "function_call_output",
                    "call_id": "c",
                    "output": [{"type": "input_image", "file_id": "file-1"}],
                },
            ],
        },
        "input[1].output[0].file_id",
        "unsupported_parameter",
    ),
    (
        {
            "model": "m",
            "input": "x",
            "tools": [{"type": "file_search", "vector_store_ids": ["vs"]}],
        },
        "tools[0]",
        "unsupported_parameter",
    ),
    (
        {"model": "m", "input": "x", "tools": [{"type": "code_interpreter", "container": "cntr"}]},
        "tools[0]",
        "unsupported_parameter",
    ),
    (
        {
            "model": "m",
            "input": "x",
            "tools": [
                {"type": "function", "name": "f"},
                {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["f"]}},
            ],
        },
        "tools[1]",
        "unsupported_parameter",
    ),
]


@pytest.mark.parametrize(("payload", "param", "code"), BAD)
def test_bad_input_is_a_400_naming_the_field(
    payload: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(payload)
    error = caught.value
    assert (error.status, error.param, error.code) == (400, param, code)
    body = json.loads(error.body())["error"]
    assert set(body) == {"message", "type", "param", "code"}


def test_background_false_and_nulls_are_plain_requests() -> None:
    request = parse(
        {"model": "m", "input": "x", "background": False, "conversation": None, "prompt": None}
    )
    assert request.non_text == ()


def test_not_json_and_not_an_object_are_400() -> None:
    for body in (b"", b"{", b"[1]", b'"x"', b'{"model":"m","input":NaN}'):
        with pytest.raises(InvalidRequest):
            RESPONSES.parse(body, [])


def test_what_the_bytes_do_not_bound_is_listed() -> None:
    request = parse(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "see"}]},
                {"role": "user", "content": [{"type": "input_image", "image_url": "https://x"}]},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_file", "file_data": "data:application/pdf;base64,AA=="}
                    ],
                },
                {"type": "function_call_output", "call_id": "c", "output": "text is fine"},
                {
                    "type": "function_call_output",
                    "call_id": "c",
                    "output": [{"type": "input_audio", "input_audio": {}}],
                },
                {"type": "computer_call_output", "call_id": "c", "output": {}},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}]},
                {"type": "my secret text"},
                {"type": ["unhashable"]},
                {"role": "user", "content": [{"type": "mystery"}, {"type": {}}]},
            ],
            "tools": [
                {"type": "function", "name": "f"},
                {"type": "custom", "name": "g"},
                {"type": "web_search_preview_2025_03_11"},
                {"type": "file_search"},
                {"type": "mcp", "server_label": "s"},
                {"type": "tool of my own"},
                {"type": ["x"]},
            ],
        }
    )
    assert [(n.param, n.where) for n in request.non_text] == [
        ("input", "input[1].content[0] (input_image)"),
        ("input", "input[2].content[0] (input_file)"),
        ("input", "input[4].output[0] (input_audio)"),
        ("input", "input[5] (computer_call_output)"),
        ("input", "input[7] (an unknown type)"),
        ("input", "input[8] (an unknown type)"),
        ("input", "input[9].content[0] (an unknown type)"),
        ("input", "input[9].content[1] (an unknown type)"),
        ("tools", "tools[2] (web_search_preview_2025_03_11)"),
        ("tools", "tools[3] (file_search)"),
        ("tools", "tools[4] (mcp)"),
        ("tools", "tools[5] (an unknown type)"),
        ("tools", "tools[6] (an unknown type)"),
    ]


def test_a_function_tool_request_is_text() -> None:
    request = parse(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "weather?"},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "sunny"},
            ],
            "tools": [{"type": "function", "name": "f", "parameters": {}}],
        }
    )
    assert request.non_text == ()


def test_the_upstream_body_is_the_clients_bytes_but_model_and_stripped_fields() -> None:
    from saferouter.catalog import DEFAULT_CATALOG_PATH, load_catalog

    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    body = (
        b'{"model": "deepseek-chat",  "input":"caf\\u00e9 \xe2\x82\xac",'
        b' "provider": {"sort": "price"},'
        b' "store":true,"models":["deepseek-flash"], "temperature": 1.0e0}'
    )
    request = RESPONSES.parse(body, [])
    sent = RESPONSES.upstream_body(request).for_model(catalog.models["deepseek-flash"])
    assert sent == (
        b'{"model": "deepseek-flash",  "input":"caf\\u00e9 \xe2\x82\xac",'
        b' "store":true, "temperature": 1.0e0}'
    )


@given(st.binary(max_size=300))
def test_any_bytes_give_a_request_or_an_api_error(body: bytes) -> None:
    with contextlib.suppress(ApiError):
        RESPONSES.parse(body, [])


# the keys the reader looks into, so that nested shapes reach every branch
KEYS = st.sampled_from(["type", "role", "content", "output", "text", "id"]) | st.text(max_size=4)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "model",
        "models",
        "input",
        "stream",
        "max_output_tokens",
        "previous_response_id",
        "store",
        "background",
        "conversation",
        "prompt",
        "tools",
    ]
)


@given(st.dictionaries(FIELDS, JSON, max_size=6))
def test_any_json_object_gives_a_request_or_an_api_error(payload: dict[str, Any]) -> None:
    with contextlib.suppress(ApiError):
        parse(payload)
