"""A JSON object body with where each top-level member sits in its bytes (pure).

The gateway sends a request body upstream with a few members changed
(:class:`saferouter.gateway.upstream_body.UpstreamBody`). Encoding the parsed value
again costs a full JSON encode per attempt — milliseconds for a long prompt — and
changes the client's bytes (key order, escapes, number forms) for no reason. Knowing
each member's span lets it splice instead.

The spans come with the one parse of the body: the top level is walked here, a few
regular expressions per member, and each member's value read by the C scanner
(``JSONDecoder.raw_decode``), which returns where the value ends; the values are read with
:func:`saferouter.client_input.parse_json_body`'s rules. A body this walk does not take
(not the common shape, or invalid) is read by ``parse_json_body`` itself, which either
raises its precise error or returns the value, then without spans.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import attrs

from .client_input import json_decoder, parse_json_body, validate_sendable
from .errors import InvalidRequest


class JsonMember(NamedTuple):
    """A top-level member of a JSON object body, by byte offsets into that body."""

    key: str
    start: int  # the key's opening quote
    value_start: int
    end: int  # just past the value


@attrs.frozen
class JsonObject:
    """A JSON object body: its value, its bytes and, when they can be spliced, where each
    top-level member sits in them (in order; ``None`` when they cannot, see
    :func:`parse_json_object`)."""

    value: dict[str, Any]
    body: bytes
    members: tuple[JsonMember, ...] | None


def parse_json_object(body: bytes) -> JsonObject:
    """A body that must be a JSON object, read as
    :func:`~saferouter.client_input.parse_json_body` reads it, plus the byte spans of its
    top-level members. Raises InvalidRequest (``invalid_body`` for JSON that is not an
    object).

    The top level is walked here and each member's value read by the C scanner, which
    returns where the value ends: the body is still parsed once, at the scanner's speed
    plus about a microsecond per top-level member and per nested object (the duplicate
    check). ``json.dumps`` of the value, the plain reader's check that every string can
    be sent, runs only where a ``\\u`` escape could have made a lone surrogate.

    ``members`` is ``None`` where splicing the bytes could let a reader see other values
    than the gateway did, or is not worth a special case: a duplicate key at any depth
    (Python keeps the last, another parser may keep the first), a key written with
    escapes (``"mod\\u0065l"``), a body that is not UTF-8 or starts with a byte-order
    mark. Those bodies are read by ``parse_json_body`` alone.
    """
    try:
        text = body.decode("utf-8")
        walked = _walk_object(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        walked = None  # invalid, or odd (a duplicate key): the plain reader says which
    if walked is None:
        value = parse_json_body(body)
        if not isinstance(value, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
        return JsonObject(value=value, body=body, members=None)
    value, members = walked
    # Strict UTF-8 leaves only \u escapes able to make a lone surrogate: without one that
    # could, the value is sendable and its full encode (the check) can be skipped.
    if _SURROGATE_ESCAPE.search(text) is not None:
        validate_sendable(value)
    if not text.isascii():  # O(1) in CPython; ASCII character offsets are byte offsets
        members = _byte_offsets(text, len(body), members)
    return JsonObject(value=value, body=body, members=members)


def _distinct_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("a duplicate key")  # parse_json_object reads such a body plainly
    return value


# parse_json_body's rules (finite numbers, no NaN), and no duplicate keys in any object
_SCANNER = json_decoder(object_pairs_hook=_distinct_keys)
_JSON_SPACE = r"[ \t\n\r]*"  # RFC 8259 §2: the only whitespace JSON has
# a key without escapes or control characters and its colon: the value starts at end()
_KEY = r'"([^"\\\x00-\x1f]*)"' + _JSON_SPACE + ":" + _JSON_SPACE
_FIRST = re.compile(_JSON_SPACE + "{" + _JSON_SPACE + _KEY)
# after a value: the next key, or the object's end and the body's (group 1 is then None)
_NEXT = re.compile(_JSON_SPACE + "(?:," + _JSON_SPACE + _KEY + "|}" + _JSON_SPACE + r"\Z)")
# \uD800-\uDFFF: the only way to a surrogate once the bytes decoded as strict UTF-8
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _walk_object(text: str) -> tuple[dict[str, Any], tuple[JsonMember, ...]] | None:
    """The object ``text`` holds and its members' character spans; None where the walk
    leaves the common shape (the caller then reads the text plainly). Raises ValueError
    (a ``JSONDecodeError``, a non-finite number, a duplicate key) or RecursionError."""
    value: dict[str, Any] = {}
    members: list[JsonMember] = []
    head = _FIRST.match(text)  # one match per member: the time is the scanner's
    while head is not None:
        key = head.group(1)
        if key is None:  # the closing brace, then nothing
            return value, tuple(members)
        if key in value:
            raise ValueError("a duplicate key")
        value[key], end = _SCANNER.raw_decode(text, head.end())
        members.append(JsonMember(key, head.start(1) - 1, head.end(), end))
        head = _NEXT.match(text, end)
    return None


def _byte_offsets(
    text: str, size_bytes: int, members: tuple[JsonMember, ...]
) -> tuple[JsonMember, ...]:
    """``members`` with character offsets into ``text`` (``size_bytes`` long in UTF-8)
    turned into byte offsets. Each is counted from the nearer end, so that the one large
    member (the messages) is never encoded: the cost is that of the small members."""
    edge = len(text) / 2

    def byte(offset: int) -> int:
        if offset <= edge:
            return len(text[:offset].encode("utf-8"))
        return size_bytes - len(text[offset:].encode("utf-8"))

    return tuple(
        JsonMember(m.key, byte(m.start), byte(m.value_start), byte(m.end)) for m in members
    )
