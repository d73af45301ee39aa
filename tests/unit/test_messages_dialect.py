"""The Anthropic Messages dialect, pure: parsing (bad input is an ApiError and nothing
else), what a metered key is refused, the headers passed on, the upstream body and
headers, a body's facts, and errors in Anthropic's shape and statuses."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saferouter.accounting import Usage
from saferouter.catalog import DEFAULT_CATALOG_PATH, load_catalog
from saferouter.errors import (
    ApiError,
    AuthenticationFailed,
    InsufficientQuota,
    InternalError,
    InvalidRequest,
    ParseError,
    PayloadTooLarge,
    RateLimited,
    UpstreamBadGateway,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from saferouter.gateway.dialect import Api
from saferouter.gateway.dialects.messages import MESSAGES

CATALOG = load_catalog(DEFAULT_CATALOG_PATH)
HI = [{"role": "user", "content": "Hi"}]


def body(**fields: Any) -> bytes:
    return json.dumps(
        {"model": "deepseek-flash", "max_tokens": 64, "messages": HI, **fields}
    ).encode()


def refused(raw: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        MESSAGES.parse(raw, headers or [])
    return caught.value


def test_a_claude_code_request_parses() -> None:
    tools = [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]
    system = [
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
    ]
    request = MESSAGES.parse(
        body(
            stream=True,
            tools=tools,
            system=system,
            thinking={"type": "enabled", "budget_tokens": 32},
        ),
        [(b"anthropic-version", b"2023-06-01"), (b"anthropic-beta", b"claude-code-20250219")],
    )
    assert request.api is Api.MESSAGES
    assert (request.model, request.stream, request.max_tokens) == ("deepseek-flash", True, 64)
    assert request.non_text == ()
    assert request.forward_headers == (
        (b"anthropic-version", b"2023-06-01"),
        (b"anthropic-beta", b"claude-code-20250219"),
    )


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"max_tokens": None}, "max_tokens", "max_tokens: Field required"),
        ({"max_tokens": "64"}, "max_tokens", "max_tokens: Input should be a valid integer"),
        ({"max_tokens": True}, "max_tokens", "max_tokens: Input should be a valid integer"),
        ({"max_tokens": 1.5}, "max_tokens", "max_tokens: Input should be a valid integer"),
        ({"max_tokens": 0}, "max_tokens", "max_tokens: Input should be greater than or equal to 1"),
        ({"model": None}, "model", "model: Field required"),
        ({"model": 7}, "model", None),
        ({"model": "a b"}, "model", None),
        ({"messages": None}, "messages", "messages: Field required"),
        ({"messages": "Hi"}, "messages", "messages: Input should be a valid list"),
        ({"messages": []}, "messages", "messages: at least one message is required"),
        ({"messages": ["Hi"]}, "messages", "messages: each message should be a valid object"),
        ({"stream": "yes"}, "stream", "stream: Input should be a valid boolean"),
        ({"models": "x"}, "models", None),
    ],
)
def test_bad_fields_are_refused_with_anthropic_wording(
    fields: dict[str, Any], param: str, message: str | None
) -> None:
    payload = json.loads(body())
    for name, value in fields.items():
        if value is None:
            payload.pop(name)
        else:
            payload[name] = value
    error = refused(json.dumps(payload).encode())
    assert error.param == param
    if message is not None:
        assert error.message == message


def test_models_without_model_is_openrouter_routing() -> None:
    raw = json.dumps({"models": ["glm-4.7", "deepseek-flash"], "max_tokens": 5, "messages": HI})
    request = MESSAGES.parse(raw.encode(), [])
    assert request.model is None and request.client_models == ("glm-4.7", "deepseek-flash")


@pytest.mark.parametrize(
    "headers",
    [
        [(b"anthropic-version", b"2023-06-01\x00")],
        [(b"anthropic-version", "2023-06-01é".encode())],
        [(b"anthropic-version", b"")],
        [(b"anthropic-version", b"x" * 65)],
        [(b"anthropic-version", b"2023-06-01"), (b"anthropic-version", b"2023-01-01")],
        [(b"anthropic-beta", b"a" * 1025)],
        [(b"anthropic-beta", b"ok"), (b"anthropic-beta", b"\x7f")],
        [(b"Anthropic-Beta", b"be\tta")],
    ],
)
def test_odd_anthropic_headers_are_refused(headers: list[tuple[bytes, bytes]]) -> None:
    error = refused(body(), headers)
    assert error.code == "invalid_header" and error.param in ("anthropic-version", "anthropic-beta")


def test_headers_default_and_join() -> None:
    request = MESSAGES.parse(body(), [(b"anthropic-beta", b"a, b"), (b"ANTHROPIC-BETA", b"c")])
    assert request.forward_headers == (
        (b"anthropic-version", b"2023-06-01"),
        (b"anthropic-beta", b"a, b,c"),
    )


def test_what_the_bytes_do_not_bound_is_named() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
    }
    nested = {
        "type": "tool_result",
        "tool_use_id": "t",
        "content": [{"type": "text", "text": "ok"}, image],
    }
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "look"}, image]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}],
        },
        {"role": "user", "content": [nested, {"type": "SECRET PROMPT TEXT"}]},
    ]
    tools = [
        {"name": "mine", "input_schema": {"type": "object"}},
        {"type": "custom", "name": "also mine", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search"},
        {"type": "Not A Name!", "name": "x"},
    ]
    request = MESSAGES.parse(
        body(
            messages=messages,
            tools=tools,
            system=[{"type": "document"}],
            mcp_servers=[{}],
            context_management={"edits": []},
        ),
        [],
    )
    assert [(n.param, n.where) for n in request.non_text] == [
        ("system", "system[0] (document)"),
        ("messages", "messages[0].content[1] (image)"),
        ("messages", "messages[2].content[0].content[1] (image)"),
        ("messages", "messages[2].content[1] (an unknown type)"),
        ("tools", "tools[2] (server tool web_search_20250305: its fees are not bounded)"),
        ("tools", "tools[3] (server tool an unknown type: its fees are not bounded)"),
        ("mcp_servers", "'mcp_servers'"),
        ("context_management", "'context_management'"),
    ]


# what Claude Code 2.1.332 sends with every request (tests/e2e/test_claude_code.py)
CLAUDE_CODE_EDITS = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
CLEAR_TOOL_USES = {"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens"}}


@pytest.mark.parametrize(
    "context_management",
    [CLAUDE_CODE_EDITS, {"edits": [CLEAR_TOOL_USES, {"type": "clear_thinking_20991231"}]}],
)
def test_context_edits_that_only_clear_are_bounded_by_the_bytes(
    context_management: dict[str, Any],
) -> None:
    request = MESSAGES.parse(body(context_management=context_management), [])
    assert request.non_text == ()


@pytest.mark.parametrize(
    "context_management",
    [
        {"edits": []},
        {"edits": [{"type": "compact_20260112"}]},  # another model turn writes a summary
        {"edits": [CLEAR_TOOL_USES, {"type": "compact_20260112"}]},
        {"edits": [{"type": "clear_thinking_2025"}]},
        {"edits": [{"type": "clear_thinking_20251015x"}]},
        {"edits": ["clear_thinking_20251015"]},
        {"edits": {"type": "clear_thinking_20251015"}},
        {**CLAUDE_CODE_EDITS, "compaction": {}},  # an option not known here
        [CLAUDE_CODE_EDITS],
        "clear",
    ],
)
def test_any_other_context_management_is_refused_on_a_metered_key(
    context_management: Any,
) -> None:
    request = MESSAGES.parse(body(context_management=context_management), [])
    assert [(n.param, n.where) for n in request.non_text] == [
        ("context_management", "'context_management'")
    ]


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_an_api_error(raw: bytes) -> None:
    with contextlib.suppress(ApiError):
        MESSAGES.parse(raw, [(b"anthropic-version", raw[:20])])


@given(
    st.dictionaries(
        st.sampled_from(["model", "messages", "max_tokens", "stream", "tools", "system", "models"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
    )
)
def test_any_shape_parses_or_raises_an_api_error(payload: dict[str, Any]) -> None:
    with contextlib.suppress(ApiError):
        MESSAGES.parse(json.dumps(payload).encode(), [])


def test_upstream_body_and_headers() -> None:
    raw = (
        b'{"model" : "claude-sonnet-4", "max_tokens":5,'
        b'"messages":[{"role":"user","content":"Hi \\u00e9"}],"provider":{"order":["x"]}}'
    )
    request = MESSAGES.parse(raw, [(b"anthropic-beta", b"b1")])
    upstream = MESSAGES.upstream_body(request).for_model(CATALOG.models["deepseek-v4-pro"])
    assert upstream == (
        b'{"model" : "deepseek-v4-pro", "max_tokens":5,'
        b'"messages":[{"role":"user","content":"Hi \\u00e9"}]}'
    )
    assert MESSAGES.upstream_headers(request, "sk-up") == [
        (b"anthropic-version", b"2023-06-01"),
        (b"anthropic-beta", b"b1"),
        (b"x-api-key", b"sk-up"),
        (b"authorization", b"Bearer sk-up"),
    ]
    assert MESSAGES.upstream_headers(request, None) == list(request.forward_headers)


def test_body_facts() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "model": "glm-4.6",
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 3, "cache_read_input_tokens": 1111, "output_tokens": 33},
    }
    facts = MESSAGES.body_facts(json.dumps(message).encode())
    assert (facts.response_id, facts.finish_reason, facts.failed) == ("msg_1", "tool_use", None)
    assert facts.raw_usage == message["usage"]
    assert facts.usage == Usage(prompt_tokens=1114, cached_tokens=1111, output_tokens=33)
    bare = MESSAGES.body_facts(b'{"id": 5}')
    assert (bare.usage, bare.response_id, bare.finish_reason) == (None, None, None)
    for raw in (b"{", b"[1]"):
        with pytest.raises(ParseError):
            MESSAGES.body_facts(raw)


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequest("bad"), 400, "invalid_request_error"),
        (AuthenticationFailed("who"), 401, "authentication_error"),
        (InsufficientQuota("broke"), 402, "billing_error"),
        (PayloadTooLarge("big"), 413, "request_too_large"),
        (RateLimited("slow", headers={"Retry-After": "3"}), 429, "rate_limit_error"),
        (InternalError("oops"), 500, "api_error"),
        (UpstreamBadGateway("p failed"), 500, "api_error"),
        (UpstreamUnavailable("p down", headers={"Retry-After": "2"}), 529, "overloaded_error"),
        (UpstreamTimeout("p slow"), 504, "timeout_error"),
        (InvalidRequest("gone", status=410), 410, "invalid_request_error"),
        (UpstreamBadGateway("x", status=599), 500, "api_error"),
    ],
)
def test_errors_in_anthropic_shape(error: ApiError, status: int, kind: str) -> None:
    got_status, headers, raw = MESSAGES.error_reply(error)
    assert got_status == status
    assert headers["Content-Type"] == "application/json"
    assert headers.get("Retry-After") == error.headers.get("Retry-After")
    reply = json.loads(raw)
    assert reply == {
        "type": "error",
        "error": {"type": kind, "message": error.message, "code": error.code},
    } or (
        error.code is None
        and reply == {"type": "error", "error": {"type": kind, "message": error.message}}
    )
    event = MESSAGES.stream_error(error)
    assert event.startswith(b"event: error\ndata: {") and event.endswith(b"}\n\n")
    assert json.loads(event.split(b"data: ", 1)[1]) == reply


FILE_SOURCE = {"type": "file", "file_id": "file_1"}


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (
            [{"role": "user", "content": [{"type": "document", "source": FILE_SOURCE}]}],
            "messages[0].content[0]",
        ),
        (
            [{"role": "user", "content": [{"type": "container_upload", "file_id": "file_1"}]}],
            "messages[0].content[0]",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "x"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "t",
                            "content": [{"type": "image", "source": FILE_SOURCE}],
                        },
                    ],
                }
            ],
            "messages[0].content[1].content[0]",
        ),
    ],
)
def test_a_file_stored_at_the_provider_is_refused_for_every_key(
    messages: list[dict[str, Any]], param: str
) -> None:
    # another tenant's code-execution output lives in the operator's shared account
    error = refused(body(messages=messages))
    assert (error.status, error.param, error.code) == (400, param, "unsupported_parameter")
    assert "file_1" not in error.message
    inline = {"type": "base64", "media_type": "image/png", "data": "AAAA"}
    ok = [{"role": "user", "content": [{"type": "image", "source": inline}]}]
    assert MESSAGES.parse(body(messages=ok), []).non_text  # a metered key's matter only
