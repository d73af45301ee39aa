"""The pure request checks and the upstream body."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given
from hypothesis import strategies as st

from saferouter.catalog import DEFAULT_CATALOG_PATH, load_catalog
from saferouter.errors import InvalidRequest
from saferouter.gateway.request import encode_upstream_body, parse_chat_request

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
        40,
    )
    assert chat.payload == body


def test_upstream_body_rewrites_model_and_adds_defaults_only_when_absent() -> None:
    chat = parse_chat_request(b'{"model": "deepseek-chat", "messages": [{"role": "user"}]}')
    sent = json.loads(encode_upstream_body(chat, CATALOG.models["deepseek-chat"]))
    assert sent["model"] == "deepseek-v4-flash"
    assert sent["thinking"] == {"type": "disabled"}
    chat = parse_chat_request(
        b'{"model": "deepseek-chat", "messages": [{}], "thinking": {"type": "enabled"}}'
    )
    sent = json.loads(encode_upstream_body(chat, CATALOG.models["deepseek-chat"]))
    assert sent["thinking"] == {"type": "enabled"}  # the client's choice wins


@given(
    st.dictionaries(
        st.text(max_size=8).filter(
            lambda k: (
                k
                not in {
                    "model",
                    "messages",
                    "stream",
                    "stream_options",
                    "max_tokens",
                    "max_completion_tokens",
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
    sent = json.loads(encode_upstream_body(chat, CATALOG.models["glm-4.7"]))
    assert sent == body


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_ever_raise_invalid_request(data: bytes) -> None:
    with contextlib.suppress(InvalidRequest):
        parse_chat_request(data)
