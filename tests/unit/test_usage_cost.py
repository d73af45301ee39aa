"""``usage.cost`` spliced into real provider bodies and usage chunks: the value is the
charge in USD, and every other byte is the provider's."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from saferouter.errors import InvalidRequest
from saferouter.gateway.usage_cost import (
    MAX_HELD_BYTES,
    CostHold,
    event_with_cost,
    parse_usage_option,
    with_cost,
)
from saferouter.sse import SSEDecoder, SSEEvent

from ..recordings import (
    RECORDINGS,
    jsonl_paths,
    nonstream_paths,
    recording_params,
    sse_paths,
    stream_bytes,
)


def without(stated: bytes, original: bytes) -> bytes:
    """``stated`` with the one run of bytes it has beyond ``original`` cut out."""
    start = next(
        (i for i, (a, b) in enumerate(zip(stated, original, strict=False)) if a != b),
        len(original),
    )
    extra = len(stated) - len(original)
    return stated[:start] + stated[start + extra :]


@pytest.mark.parametrize("relative", recording_params(nonstream_paths()))
def test_a_body_gets_the_cost_and_keeps_every_other_byte(testdata: object, relative: str) -> None:
    assert RECORDINGS is not None
    body = (RECORDINGS / relative).read_bytes()
    value = json.loads(body)
    stated = with_cost(body, 1_234_567)  # 1.234567 USD
    if not isinstance(value.get("usage"), dict):
        assert stated == body
        return
    assert json.loads(stated) == {**value, "usage": {**value["usage"], "cost": 1.234567}}
    assert without(stated, body) == body  # one insertion, nothing else touched
    assert b'"cost":1.234567' in stated  # a JSON number, exact


def events_of(data: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    decoder.feed(data)
    events = list(decoder.events())
    tail = decoder.close()
    return events + ([tail] if tail is not None else [])


def _usage_of(event: SSEEvent) -> Any:
    value = event.json()
    return value.get("usage") if isinstance(value, dict) else None


@pytest.mark.parametrize("relative", recording_params(sse_paths() + jsonl_paths()))
def test_every_usage_chunk_gets_the_cost_in_its_own_framing(
    testdata: object, relative: str
) -> None:
    for event in events_of(stream_bytes(relative)):
        usage = _usage_of(event)
        stated = event_with_cost(event.data, event.raw, 250)
        if not isinstance(usage, dict):
            assert stated == event.raw
            continue
        [again] = events_of(stated)
        assert again.event == event.event
        assert again.json() == {**event.json(), "usage": {**usage, "cost": 0.00025}}
        if "cost" in usage:  # an OpenRouter recording: its own figure replaced, in place
            [theirs] = re.findall(rb'"cost":\s*([-+.0-9eE]+)', event.raw)
            back = re.sub(rb'("cost":\s*)0\.00025', lambda m, t=theirs: m.group(1) + t, stated)
            assert back == event.raw
        else:
            assert without(stated, event.raw) == event.raw


def test_a_provider_cost_is_replaced_by_the_charge() -> None:
    body = b'{"id":"x","usage":{"prompt_tokens":3,"cost":0.95,"total_tokens":5}}'
    assert with_cost(body, 42) == (
        b'{"id":"x","usage":{"prompt_tokens":3,"cost":0.000042,"total_tokens":5}}'
    )


@pytest.mark.parametrize(
    ("body", "stated"),
    [
        (b'{"usage":{}}', b'{"usage":{"cost":0}}'),
        (b'{"usage" : { } , "id":"\xc3\xa9"}', b'{"usage" : { "cost":0} , "id":"\xc3\xa9"}'),
        (b'{"usage":null}', b'{"usage":null}'),
        (b'{"id":"x"}', b'{"id":"x"}'),
        (b"[1]", b"[1]"),
        (b"not json", b"not json"),
        # a duplicate key: the reader will not splice it, so what was read is encoded
        (b'{"a":1,"a":2,"usage":{"x":1}}', b'{"a":2,"usage":{"x":1,"cost":0}}'),
    ],
)
def test_odd_bodies(body: bytes, stated: bytes) -> None:
    assert with_cost(body, 0) == stated


def test_an_event_keeps_crlf_framing_and_the_redacted_bytes() -> None:
    [event] = events_of(b'data: {"choices":[],"usage":{"prompt_tokens":1}}\r\n\r\n')
    assert event_with_cost(event.data, event.raw, 1) == (
        b'data: {"choices":[],"usage":{"prompt_tokens":1,"cost":0.000001}}\r\n\r\n'
    )


@pytest.mark.parametrize(
    ("value", "include"),
    [
        (None, False),
        ({}, False),
        ({"include": None}, False),
        ({"include": False}, False),
        ({"include": True}, True),
    ],
)
def test_usage_option(value: object, include: bool) -> None:
    assert parse_usage_option(value) is include


@pytest.mark.parametrize(
    ("value", "param", "code"),
    [
        (True, "usage", "invalid_type"),
        ({"include": "yes"}, "usage.include", "invalid_type"),
        ({"include": True, "detail": 1}, "usage.detail", "unknown_parameter"),
    ],
)
def test_bad_usage_option(value: object, param: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_usage_option(value)
    assert (caught.value.param, caught.value.code) == (param, code)


def test_a_usage_reported_early_does_not_hold_back_the_rest_of_the_answer() -> None:
    hold = CostHold()
    usage = '{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}'
    assert hold.hold(usage, f"data: {usage}\n\n".encode()) == b""  # held: it may be the last
    text = '{"choices":[{"delta":{"content":"' + "x" * 1000 + '"}}]}'
    raw = f"data: {text}\n\n".encode()
    sent = b"".join(hold.hold(text, raw) for _ in range(2 * MAX_HELD_BYTES // len(raw)))
    assert sent.startswith(f"data: {usage}\n\n".encode())  # let go as it was, uncosted
    assert len(sent) > MAX_HELD_BYTES
    out = hold.hold(usage, f"data: {usage}\n\n".encode()) + hold.release(7)
    assert b'"cost":0.000007' in out  # a later usage still states the charge
