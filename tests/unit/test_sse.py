"""The sans-I/O SSE decoder: every recording, split every way, gives the same events and
gives back every byte."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from saferouter.errors import ParseError
from saferouter.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEEvent

from ..recordings import entry, jsonl_paths, recording_params, sse_paths, stream_bytes


def decode(pieces: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for piece in pieces:
        decoder.feed(piece)
        events.extend(decoder.events())
    tail = decoder.close()
    if tail is not None:
        events.append(tail)
    return events


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def test_h11_style_pieces() -> None:
    events = decode(
        [b"da", b'ta: {"a"', b":1}\n", b"\n: keep-alive\n\nevent: x\ndata: 1\n", b"data: 2\n\n"]
    )
    assert [(e.data, e.event, e.comments) for e in events] == [
        ('{"a":1}', None, ()),
        (None, None, ("keep-alive",)),
        ("1\n2", "x", ()),
    ]
    assert events[0].json() == {"a": 1}


def test_crlf_and_lone_cr_split_between_cr_and_lf() -> None:
    events = decode([b"data: a\r", b"\n\r", b"\ndata: b\r\r"])
    assert [e.data for e in events] == ["a", "b"]
    # the LF after a blank line's CR ends that event, not the next one
    assert [e.raw for e in events] == [b"data: a\r\n\r\n", b"data: b\r\r"]


def test_an_event_ending_in_a_split_crlf_waits_for_its_lf() -> None:
    decoder = SSEDecoder()
    decoder.feed(b": ping\r\n\r")
    assert list(decoder.events()) == []  # the CR may be half of a CRLF
    decoder.feed(b"\ndata: 1\r\n\r\n")
    assert [e.raw for e in decoder.events()] == [b": ping\r\n\r\n", b"data: 1\r\n\r\n"]
    decoder.feed(b"data: 2\r")
    assert list(decoder.events()) == []
    tail = decoder.close()  # the end of the stream: no LF is coming
    assert tail is not None and (tail.raw, tail.data) == (b"data: 2\r", "2")


def test_cut_stream_returns_the_partial_event() -> None:
    events = decode([b'data: {"x": 1}\n\ndata: {"y"'])
    assert events[-1].data == '{"y"'
    assert events[-1].json() is None
    assert b"".join(e.raw for e in events) == b'data: {"x": 1}\n\ndata: {"y"'


def test_leading_space_is_not_a_data_field() -> None:
    # WHATWG: the field name is " data", which is ignored (simonw-llm variant_c).
    (event,) = decode([b' data: {"a": 1}\n\n'])
    assert event.data is None


def test_done_is_not_json() -> None:
    (event,) = decode([b"data: [DONE]\n\n"])
    assert event.data == "[DONE]"
    assert event.json() is None


def test_line_limit_is_the_only_error() -> None:
    decoder = SSEDecoder(max_line_bytes=16)
    decoder.feed(b"data: " + b"x" * 32)
    with pytest.raises(ParseError):
        list(decoder.events())


def test_one_event_is_bounded_not_only_one_line() -> None:
    """20,000 data lines of 500 bytes and no blank line: 10 MB in one event."""
    decoder = SSEDecoder()
    line = b"data: " + b"x" * 494 + b"\n"
    fed = 0
    with pytest.raises(ParseError, match="event"):
        for _ in range(20_000):
            decoder.feed(line)
            fed += len(line)
            list(decoder.events())
    assert fed <= DEFAULT_MAX_EVENT_BYTES + len(line)


@pytest.mark.parametrize(
    "pieces",
    [[b"data: 1\ndata: 2\ndata: 3\n"], [b"data: 1\n", b"data: 2\n", b"data: 3"]],
    ids=["complete-lines", "partial-last-line"],
)
def test_event_limit_counts_every_line_of_the_event(pieces: list[bytes]) -> None:
    decoder = SSEDecoder(max_line_bytes=16, max_event_bytes=20)
    decoder.feed(b"data: ok\n\n")  # earlier events do not count
    assert [e.data for e in decoder.events()] == ["ok"]
    with pytest.raises(ParseError, match="event"):
        for piece in pieces:
            decoder.feed(piece)
            list(decoder.events())


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=20))
def test_any_bytes_any_split_come_back_whole(data: bytes, cuts: list[int]) -> None:
    events = decode(split_at(data, cuts))
    assert b"".join(e.raw for e in events) == data
    whole = decode([data])
    assert [(e.data, e.event, e.comments) for e in events] == [
        (e.data, e.event, e.comments) for e in whole
    ]


@pytest.mark.parametrize("relative", recording_params(sse_paths() + jsonl_paths()))
def test_recording_events_match_the_index(testdata: object, relative: str) -> None:
    data = stream_bytes(relative)
    events = decode([data])
    assert b"".join(e.raw for e in events) == data
    analysis = entry(relative).get("analysis") or {}
    if relative.endswith(".sse") and "data_events" in analysis:
        data_events = [e for e in events if e.data is not None]
        # the index, like a spec parser, does not count variant_c's leading " data:" line
        assert len(data_events) == analysis["data_events"]
        comment_lines = sum(len(e.comments) for e in events)
        assert comment_lines == analysis["comment_lines"]
        assert any(e.event for e in events) == bool(analysis["event_fields"])
    for event in events:
        if event.data not in (None, "[DONE]"):
            assert event.json() is not None, event.data[:80]


@pytest.mark.parametrize("relative", recording_params(sse_paths()))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=0), min_size=1, max_size=60))
@example(cuts=[44])  # the CRLF recording cut between the CR and LF of its first blank line
def test_every_split_of_every_recording(testdata: object, relative: str, cuts: list[int]) -> None:
    data = stream_bytes(relative)
    expected = decode([data])
    events = decode(split_at(data, cuts))
    assert [e.raw for e in events] == [e.raw for e in expected]
    assert [(e.data, e.event, e.comments) for e in events] == [
        (e.data, e.event, e.comments) for e in expected
    ]
