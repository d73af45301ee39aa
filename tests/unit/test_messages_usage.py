"""Anthropic Messages usage against every recording in recordings/anthropic/: what the
stream watch (fed the stream in random pieces) and the body reader bill is the expected
usage of ../shared/testdata/recordings/index-extra.json — summed over ``iterations``
where there are some — to the token."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from saferouter.accounting import Usage
from saferouter.gateway.dialects.messages import MESSAGES
from saferouter.gateway.dialects.messages_usage import MessagesWatch, merge_usage, messages_usage
from saferouter.sse import SSEDecoder, SSEEvent

from ..recordings import (
    RECORDINGS,
    anthropic_billed,
    extra_index,
    recording_params,
    typed_stream_bytes,
)

EXPECTED = {
    path: entry
    for path, entry in extra_index().items()
    if path.startswith("anthropic/") and entry.get("final_usage")
}
STREAMS = sorted(p for p, e in EXPECTED.items() if e["stream"])
BODIES = sorted(p for p, e in EXPECTED.items() if not e["stream"])


def watched(data: bytes, seed: int) -> tuple[MessagesWatch, list[SSEEvent]]:
    """The watch after the stream, fed in random pieces; and the terminal events."""
    rng = random.Random(seed)
    watch, decoder, terminal = MessagesWatch(), SSEDecoder(), []
    at = 0
    while at < len(data):
        size = rng.choice([1, 3, 17, 256, 4096])
        decoder.feed(data[at : at + size])
        at += size
        for event in decoder.events():
            assert watch.observe(event) is False  # nothing is the gateway's to drop
            if watch.is_terminal(event):
                terminal.append(event)
    assert decoder.close() is None
    return watch, terminal


def counts(usage: Usage | None) -> tuple[int, int, int, int]:
    assert usage is not None
    return (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.output_tokens)


@pytest.mark.parametrize("relative", recording_params(STREAMS))
@pytest.mark.parametrize("seed", [0, 1])
def test_a_stream_bills_its_expected_usage(testdata: object, relative: str, seed: int) -> None:
    expected = EXPECTED[relative]
    watch, terminal = watched(typed_stream_bytes(relative), seed)
    assert counts(watch.usage) == counts(anthropic_billed(relative))
    assert watch.complete and not watch.failed
    assert [e.data and json.loads(e.data)["type"] for e in terminal] == ["message_stop"]
    assert watch.finish_reason == expected["stop_reason"]
    assert watch.response_id is not None and watch.response_id.startswith("msg_")


@pytest.mark.parametrize("relative", recording_params(BODIES))
def test_a_body_bills_its_expected_usage(testdata: object, relative: str) -> None:
    assert RECORDINGS is not None
    body = json.loads((RECORDINGS / relative).read_bytes())
    assert counts(messages_usage(body["usage"])) == counts(anthropic_billed(relative))


def test_cache_read_and_write_are_inside_the_prompt(testdata: object) -> None:
    """pydantic-ai's cache recording: in 3, read 1111, write 418, out 33."""
    assert RECORDINGS is not None
    body = json.loads(
        (RECORDINGS / "anthropic/pydantic-ai__claude_cache_read_and_write__i1.json").read_bytes()
    )
    usage = messages_usage(body["usage"])
    assert usage == Usage(
        prompt_tokens=3 + 1111 + 418, cached_tokens=1111, cache_write_tokens=418, output_tokens=33
    )


def test_z_ai_usage_without_a_cache_write_field(testdata: object) -> None:
    """Z.AI's one recorded body: no cache_creation_input_tokens key at all."""
    assert RECORDINGS is not None
    reported = json.loads((RECORDINGS / "anthropic/reported_in_issues.json").read_text())
    body = json.loads(reported["non_stream_examples"][0]["body"])
    assert messages_usage(body["usage"]) == Usage(prompt_tokens=9, output_tokens=14)


def test_message_delta_overrides_field_by_field() -> None:
    start = {"input_tokens": 394, "cache_read_input_tokens": 7, "output_tokens": 1}
    merged = merge_usage(start, {"output_tokens": 76, "input_tokens": None})
    assert merged == {"input_tokens": 394, "cache_read_input_tokens": 7, "output_tokens": 76}
    assert merge_usage(None, {"output_tokens": 2}) == {"output_tokens": 2}


@pytest.mark.parametrize(
    "raw",
    [
        {"input_tokens": -5, "output_tokens": "7", "cache_read_input_tokens": True},
        {"iterations": "many", "input_tokens": None},
        {"iterations": [1, "x", None]},
    ],
)
def test_nonsense_counts_bill_nothing(raw: dict[str, Any]) -> None:
    assert messages_usage(raw) == Usage()


def test_thinking_tokens_are_reasoning_inside_the_output() -> None:
    raw = {"output_tokens": 10, "output_tokens_details": {"thinking_tokens": 40}}
    assert messages_usage(raw) == Usage(output_tokens=10, reasoning_tokens=10)


def event(kind: str, body: dict[str, Any]) -> SSEEvent:
    data = json.dumps({"type": kind, **body})
    return SSEEvent(raw=f"event: {kind}\ndata: {data}\n\n".encode(), data=data, event=kind)


START = event(
    "message_start",
    {"message": {"id": "msg_1", "usage": {"input_tokens": 100, "output_tokens": 1}}},
)


def test_a_stream_cut_after_message_start_bills_at_least_the_estimate() -> None:
    watch = MessagesWatch()
    watch.observe(START)
    for text in ("x" * 400, "y" * 400):  # 800 bytes ≈ 200 tokens, more than the 1 reported
        delta = {"index": 0, "delta": {"type": "text_delta", "text": text}}
        watch.observe(event("content_block_delta", delta))
    json_delta = {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "z" * 40}}
    watch.observe(event("content_block_delta", json_delta))
    assert watch.text_bytes == 840
    assert watch.usage == Usage(prompt_tokens=100, output_tokens=210)
    assert not watch.complete


def test_message_delta_usage_is_trusted_over_the_estimate() -> None:
    watch = MessagesWatch()
    watch.observe(START)
    delta = {"index": 0, "delta": {"type": "thinking_delta", "thinking": "t" * 400}}
    watch.observe(event("content_block_delta", delta))
    watch.observe(event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {}}))
    watch.observe(event("message_delta", {"usage": {"output_tokens": 3}}))
    assert watch.usage == Usage(prompt_tokens=100, output_tokens=3)
    assert watch.finish_reason == "end_turn"


def test_an_error_event_fails_the_stream() -> None:
    watch = MessagesWatch()
    watch.observe(START)
    error = {"error": {"type": "overloaded_error", "message": "Overloaded"}}
    watch.observe(event("error", error))
    assert watch.failed and not watch.complete
    named_only = SSEEvent(raw=b"event: error\ndata: oops\n\n", data="oops", event="error")
    other = MessagesWatch()
    other.observe(named_only)
    assert other.failed


def test_message_stop_is_terminal_by_name_or_by_data() -> None:
    watch = MessagesWatch()
    assert watch.is_terminal(event("message_stop", {}))
    bare = SSEEvent(raw=b'data: {"type":"message_stop"}\n\n', data='{"type":"message_stop"}')
    assert watch.is_terminal(bare)
    assert not watch.is_terminal(event("message_delta", {}))
    ping = SSEEvent(raw=b'event: ping\ndata: {"type": "ping"}\n\n', data='{"type": "ping"}')
    assert not watch.is_terminal(ping)
    assert watch.usage is None  # nothing reported, nothing to bill from usage


def test_ids_and_stop_reasons_are_kept_only_as_storable_text() -> None:
    """A provider's id with a NUL (PostgreSQL text cannot hold it) is not kept; a long
    one is cut: what a watch or a body reports goes into the activity entry."""
    watch = MessagesWatch()
    start = {"message": {"id": "msg_\x00", "usage": {"input_tokens": 1}}}
    watch.observe(event("message_start", start))
    watch.observe(event("message_delta", {"delta": {"stop_reason": "x" * 500}}))
    assert watch.response_id is None
    assert watch.finish_reason == "x" * 200
    facts = MESSAGES.body_facts(json.dumps({"id": "a\x00b", "stop_reason": 7}).encode())
    assert (facts.response_id, facts.finish_reason) == (None, None)
