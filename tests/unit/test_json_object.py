"""A JSON object body read with its members' byte spans: the same verdict and value as
the plain reader on any input, and spans that hold exactly each member."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saferouter.client_input import parse_json_body
from saferouter.errors import InvalidRequest
from saferouter.json_object import parse_json_object


def verdict(read: object, body: bytes) -> object:
    """What a reader makes of ``body``: its value, or the error's code and param."""
    try:
        return ("value", read(body))  # type: ignore[operator]
    except InvalidRequest as error:
        return ("error", error.code, error.param)


def plain_object(body: bytes) -> object:
    value = parse_json_body(body)
    if not isinstance(value, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    return value


def as_object(body: bytes) -> object:
    return parse_json_object(body).value


JSONISH = st.lists(
    st.sampled_from(
        [
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\n",
            '"a"',
            '"b"',
            '"\\u00e9"',
            '"\\ud800"',
            '"\\ud83d\\ude00"',
            "1",
            "-0.5e3",
            "1e999",
            "NaN",
            "null",
            "true",
            '"é"',
            '"\x01"',
            "\ufeff",
            '"a\\"b"',
        ]
    ),
    max_size=14,
).map(lambda parts: "".join(parts).encode())


@given(st.one_of(JSONISH, st.binary(max_size=60)))
def test_the_span_reader_gives_the_plain_readers_verdict_on_any_input(body: bytes) -> None:
    assert verdict(as_object, body) == verdict(plain_object, body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": NaN}',
        b'{"a": 1e999}',
        b'{"a": "\\ud800"}',
        b'{"\\udfff": 1}',
        b'{"a": "\xed\xa0\x80"}',
        b'{"a": 1} x',
        b'{"a": 1,}',
        b'{"a" 1}',
        b"[1]",
        b'"s"',
        b"{}",
        b'{"a": [' * 100_000,
        b'\xef\xbb\xbf{"a": 1}',
        b'{"a": 1, "a": 2}',
        b'{"a": {"b": 1, "b": 2}}',
    ],
)
def test_edge_bodies_get_the_plain_readers_verdict(body: bytes) -> None:
    assert verdict(as_object, body) == verdict(plain_object, body)


def test_each_member_span_holds_its_key_and_value_in_bytes() -> None:
    body = ' \n{ "model" :"m",\t"é\U0001f600": [1.50, "ß"] , "messages":[{}]}\r\n'.encode()
    parsed = parse_json_object(body)
    assert parsed.members is not None
    for m in parsed.members:
        assert json.loads(b"{" + body[m.start : m.end] + b"}") == {m.key: parsed.value[m.key]}
        assert json.loads(body[m.value_start : m.end]) == parsed.value[m.key]
    assert [m.key for m in parsed.members] == ["model", "é\U0001f600", "messages"]
