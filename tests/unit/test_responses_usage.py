"""The Responses API watch and body reader against every Responses recording: the usage
billed is index-extra.json's (index.json's for the older ones) to the token, whatever
pieces the stream arrives in; the end is the terminal event; a 200 that is a failure
is one."""

from __future__ import annotations

import json
import random

import pytest

from saferouter.accounting import Usage
from saferouter.errors import ParseError, UpstreamBadGateway
from saferouter.gateway.dialects.responses import RESPONSES
from saferouter.gateway.dialects.responses_usage import ResponsesWatch
from saferouter.sse import SSEDecoder, SSEEvent

from ..recordings import RECORDINGS, recording_params, responses_usages, typed_stream_bytes

EXPECTED = responses_usages()
STREAMS = sorted(p for p in EXPECTED if not p.endswith(".json"))
BODIES = sorted(p for p in EXPECTED if p.endswith(".json"))


def watched(data: bytes, seed: int) -> tuple[ResponsesWatch, list[SSEEvent]]:
    """``data`` fed to a decoder in random pieces, every event to a watch; the events
    the relay would settle before (terminal) listed."""
    rng = random.Random(seed)
    decoder, watch, terminal = SSEDecoder(), ResponsesWatch(), []
    at = 0
    while at < len(data):
        size = rng.choice([1, 2, 5, 17, 300, 4096])
        decoder.feed(data[at : at + size])
        at += size
        for event in decoder.events():
            watch.observe(event)
            if watch.is_terminal(event):
                terminal.append(event)
    rest = decoder.close()
    if rest is not None:
        watch.observe(rest)
    return watch, terminal


@pytest.mark.parametrize("relative", recording_params(STREAMS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_stream_bills_its_recorded_usage(
    testdata: object, relative: str | None, seed: int
) -> None:
    assert relative is not None
    watch, terminal = watched(typed_stream_bytes(relative), seed)
    final = EXPECTED[relative]
    assert watch.complete and len(terminal) == 1
    if final is None:  # the in-stream error then response.failed, usage null
        assert watch.failed and watch.usage is None and watch.finish_reason == "failed"
        return
    assert watch.usage == final
    assert not watch.failed and watch.finish_reason == "completed"
    terminal_data = terminal[0].json()
    assert terminal_data["response"]["id"] == watch.response_id
    assert watch.raw_usage == terminal_data["response"]["usage"]  # as the provider wrote it


def test_mantle_writes_data_before_event_and_is_read_per_the_spec(testdata: object) -> None:
    """Bedrock Mantle's events are ``data:`` then ``event:``, keys sorted (``type``
    last): the watch still sees response.completed, and its cache writes."""
    relative = "responses/pydantic-ai__bedrock-mantle_gpt-5.6-luna_text_stream__i2.sse"
    data = typed_stream_bytes(relative)
    assert data.startswith(b"data: {")
    watch, terminal = watched(data, 3)
    assert terminal[0].event == "response.completed"
    assert watch.usage == Usage(
        prompt_tokens=158, output_tokens=32, reasoning_tokens=10, cache_write_tokens=43
    )
    assert watch.response_id is not None and watch.response_id.startswith("resp_")


def test_background_mode_order_quirks(testdata: object) -> None:
    """response.queued before in_progress, output_tokens_details before output_tokens."""
    relative = "responses/pydantic-ai__gpt-4o_background_mode_stream.sse"
    watch, _ = watched(typed_stream_bytes(relative), 4)
    assert watch.usage == Usage(prompt_tokens=15, output_tokens=9)


@pytest.mark.parametrize("relative", recording_params(STREAMS))
def test_a_stream_cut_before_its_terminal_event_is_not_complete(
    testdata: object, relative: str | None
) -> None:
    """No [DONE] in this API: without the terminal event, no end and no usage (earlier
    events carry ``usage: null``; nothing is read from them)."""
    assert relative is not None
    data = typed_stream_bytes(relative)
    events = data.split(b"\n\n")
    cut = b"\n\n".join(
        e for e in events if b"response.completed" not in e and b"response.failed" not in e
    )
    watch, terminal = watched(cut, 5)
    assert not watch.complete and not terminal and watch.usage is None
    assert watch.text_bytes > 0 or b".delta" not in data


def test_an_error_event_fails_the_stream() -> None:
    watch = ResponsesWatch()
    watch.observe(SSEEvent(raw=b"", data='{"type":"response.created","response":{"id":"r1"}}'))
    error = '{"type":"error","code":"server_error","message":"m","param":null,"sequence_number":1}'
    watch.observe(SSEEvent(raw=b"", data=error, event="error"))
    assert watch.failed and not watch.complete and watch.response_id == "r1"


def test_the_type_comes_from_the_event_field_not_the_data() -> None:
    """An ``event:`` field names the event (SSE spec); the data's ``type`` only stands in
    when there is none."""
    watch = ResponsesWatch()
    completed = {"type": "response.completed", "response": {"usage": {"input_tokens": 5}}}
    not_terminal = SSEEvent(raw=b"", data=json.dumps(completed), event="response.note")
    watch.observe(not_terminal)
    assert not watch.is_terminal(not_terminal) and not watch.complete
    untyped = SSEEvent(raw=b"", data=json.dumps(completed))
    watch.observe(untyped)
    assert watch.is_terminal(untyped) and watch.complete and watch.usage == Usage(prompt_tokens=5)


@pytest.mark.parametrize("relative", recording_params(BODIES))
def test_every_body_bills_its_recorded_usage(testdata: object, relative: str | None) -> None:
    assert relative is not None and RECORDINGS is not None
    body = (RECORDINGS / relative).read_bytes()
    facts = RESPONSES.body_facts(body)
    final = EXPECTED[relative]
    data = json.loads(body)
    assert facts.response_id == data["id"] and facts.finish_reason == data["status"]
    if final is None:  # Bedrock Mantle's 200 whose status is "failed", no usage key
        assert facts.usage is None and facts.raw_usage is None
        assert facts.failed is not None and "(server_error)" in facts.failed
        assert "timed out" not in facts.failed  # the provider's text is not ours to echo
        return
    assert facts.failed is None and facts.usage == final


def test_an_incomplete_body_is_a_success_billed_from_its_usage() -> None:
    body = {"id": "r", "status": "incomplete", "usage": {"input_tokens": 9, "output_tokens": 4}}
    facts = RESPONSES.body_facts(json.dumps(body).encode())
    assert facts.failed is None and facts.finish_reason == "incomplete"
    assert facts.usage == Usage(prompt_tokens=9, output_tokens=4)


@pytest.mark.parametrize("body", [b"", b"<html>", b"[1]", b'"resp"'])
def test_a_body_that_is_no_response_object_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        RESPONSES.body_facts(body)


def test_the_stream_error_event_is_the_responses_api_error_event() -> None:
    error = UpstreamBadGateway("DeepSeek broke off the stream", code="upstream_stream_failed")
    raw = RESPONSES.stream_error(error)
    decoder = SSEDecoder()
    decoder.feed(raw)
    (event,) = decoder.events()
    assert event.event == "error" and event.raw == raw
    assert event.json() == {
        "type": "error",
        "code": "upstream_stream_failed",
        "message": "DeepSeek broke off the stream",
        "param": None,
        "sequence_number": 0,
    }


def test_ids_and_statuses_are_kept_only_as_text_the_store_can_hold() -> None:
    """A response id or status goes into the activity entry: a NUL (PostgreSQL's text
    cannot hold it) or a megabyte of it is not kept as sent."""
    watch = ResponsesWatch()
    nul = {"type": "response.created", "response": {"id": "resp_\u0000x"}}
    watch.observe(SSEEvent(raw=b"", data=json.dumps(nul)))
    assert watch.response_id is None
    done = {"type": "response.completed", "response": {"id": "r" * 10_000, "status": "x" * 999}}
    watch.observe(SSEEvent(raw=b"", data=json.dumps(done)))
    assert watch.response_id == "r" * 200 and watch.finish_reason == "x" * 200
    facts = RESPONSES.body_facts(json.dumps({"id": "a\u0000", "status": "completed"}).encode())
    assert facts.response_id is None and facts.finish_reason == "completed"
