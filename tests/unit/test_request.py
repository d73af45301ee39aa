"""The pure request checks and the upstream body."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saferouter.catalog import DEFAULT_CATALOG_PATH, load_catalog
from saferouter.errors import InvalidRequest
from saferouter.gateway.dialects.chat import CHAT, parse_chat_request
from saferouter.gateway.upstream_body import STRIPPED_FIELDS

CATALOG = load_catalog(DEFAULT_CATALOG_PATH)


def test_parse_keeps_everything_and_reads_the_decisions() -> None:
    body = {
        "model": "glm-4.7",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 50,
        "max_completion_tokens": 40,
        "thinking": {"type": "enabled"},
    }
    chat = parse_chat_request(json.dumps(body).encode())
    assert (chat.model, chat.stream, chat.include_usage, chat.max_tokens) == (
        "glm-4.7",
        True,
        True,
        50,  # both limits sent: the larger, since a provider may honour either
    )
    assert chat.payload == body
    assert (chat.choices, chat.non_text) == (1, ())


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"max_tokens": 10, "max_completion_tokens": 5000}, 5000),
        ({"max_completion_tokens": 5000, "max_tokens": 10}, 5000),
        ({"max_completion_tokens": 7}, 7),
        ({}, None),
    ],
)
def test_the_larger_token_limit_bounds_the_request(
    limits: dict[str, int], expected: int | None
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **limits}
    assert parse_chat_request(json.dumps(body).encode()).max_tokens == expected


def test_n_is_read_and_checked() -> None:
    def parse(n: object) -> int:
        body = {"model": "m", "messages": [{"role": "user"}], "n": n}
        return parse_chat_request(json.dumps(body).encode()).choices

    assert (parse(None), parse(1), parse(100), parse(128)) == (1, 1, 100, 128)
    for bad in (0, -1, 129, "2", True, 2.0):
        with pytest.raises(InvalidRequest) as caught:
            parse(bad)
        assert caught.value.param == "n" and caught.value.status == 400


def test_non_text_input_and_output_are_found() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA=="}},
                    {"type": "secret prompt text"},
                    "not an object",
                ],
            },
        ],
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "wav"},
    }
    chat = parse_chat_request(json.dumps(body).encode())
    assert [(n.param, n.where) for n in chat.non_text] == [
        ("messages", "messages[1].content[1] (image_url)"),
        ("messages", "messages[3].content[0] (input_audio)"),
        ("messages", "messages[3].content[1] (file)"),
        ("messages", "messages[3].content[2] (an unknown type)"),  # client text is never echoed
        ("messages", "messages[3].content[3] (an unknown type)"),
        ("modalities", "'modalities' beyond text"),
        ("audio", "'audio' output"),
    ]
    text_only = {"model": "m", "messages": body["messages"][:1], "modalities": ["text"]}
    assert parse_chat_request(json.dumps(text_only).encode()).non_text == ()


def test_a_file_stored_at_the_provider_is_refused_for_every_key() -> None:
    # the operator's provider account is every key's: a file id may be another tenant's
    stored = {"type": "file", "file": {"file_id": "file-1"}}
    body = {"model": "m", "messages": [{"role": "user", "content": [stored]}]}
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(json.dumps(body).encode())
    error = caught.value
    assert (error.status, error.code) == (400, "unsupported_parameter")
    assert error.param == "messages[0].content[0].file.file_id" and "file-1" not in error.message


def test_upstream_body_rewrites_model_and_adds_defaults_only_when_absent() -> None:
    chat = parse_chat_request(b'{"model": "deepseek-chat", "messages": [{"role": "user"}]}')
    sent = json.loads(CHAT.upstream_body(chat).for_model(CATALOG.models["deepseek-chat"]))
    assert sent["model"] == "deepseek-v4-flash"
    assert sent["thinking"] == {"type": "disabled"}
    chat = parse_chat_request(
        b'{"model": "deepseek-chat", "messages": [{}], "thinking": {"type": "enabled"}}'
    )
    sent = json.loads(CHAT.upstream_body(chat).for_model(CATALOG.models["deepseek-chat"]))
    assert sent["thinking"] == {"type": "enabled"}  # the client's choice wins


@given(
    st.dictionaries(
        st.text(max_size=8).filter(
            lambda k: (
                k
                not in {
                    "model",
                    # OpenRouter's routing fields (the client's fallback list, provider
                    # preferences, usage.include): the gateway's, never sent on
                    *STRIPPED_FIELDS,
                    "messages",
                    "stream",
                    "stream_options",
                    "max_tokens",
                    "max_completion_tokens",
                    "n",
                }
            )
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=10,
        ),
        max_size=5,
    )
)
def test_unknown_fields_round_trip_untouched(extra: dict[str, object]) -> None:
    body = {"model": "glm-4.7", "messages": [{"role": "user", "content": "x"}], **extra}
    chat = parse_chat_request(json.dumps(body).encode())
    sent = json.loads(CHAT.upstream_body(chat).for_model(CATALOG.models["glm-4.7"]))
    assert sent == body


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_ever_raise_invalid_request(data: bytes) -> None:
    with contextlib.suppress(InvalidRequest):
        parse_chat_request(data)
