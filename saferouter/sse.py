"""Sans-I/O Server-Sent Events decoding for relayed LLM streams.

The gateway never re-encodes what it relays: :class:`SSEDecoder` is a *tap*. It is fed
the same bytes that go to the client, in whatever pieces the network delivers, and
reports each complete event together with the exact raw bytes it spanned, so that a
caller can pass an event on byte for byte, or drop one (the usage-only event) without
touching its neighbours.

Framing follows the WHATWG HTML "server-sent events" parsing rules: lines end in CRLF,
LF or CR; a blank line ends an event; a line starting with ``:`` is a comment; a field
line is ``name[: value]``. Unlike a browser, comments and ``event:`` names are kept so
that a proxy can see them.

Every byte fed comes back in exactly one event's ``raw`` (stray blank lines become
events with no fields), so joining the ``raw`` of all events, plus :meth:`close`'s
remainder, gives the input back unchanged.

A CR that is the last byte fed may be half of a CRLF: the line it ends is read only
once the next byte (or :meth:`close`) says whether an LF follows, so that the LF stays
in the event it ends, however the network cut the bytes. The cost falls on streams that
end lines with a lone CR (no provider does): their last line waits for the next piece.

Memory is bounded twice: one line may hold at most ``max_line_bytes`` and one event
being assembled (all its lines, until the blank line) at most ``max_event_bytes``; the
buffer never holds more than the current event plus the last piece fed.

The only exception the decoder raises is :class:`~saferouter.errors.ParseError`, when
a line or an event exceeds its limit; anything else is a bug.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import attrs

from .errors import ParseError

DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024
# One event is one chat chunk: no provider sends one near this; 20,000 data lines with
# no blank line between them must not hold 10 MB per stream.
DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024


@attrs.frozen
class SSEEvent:
    """One event: its raw bytes (including the blank line that ended it) and fields."""

    raw: bytes
    data: str | None
    event: str | None = None
    comments: tuple[str, ...] = ()

    def json(self) -> Any:
        """The ``data`` parsed as JSON, or None when there is none or it is not JSON."""
        if self.data is None or self.data == "[DONE]":
            return None
        try:
            return json.loads(self.data)
        except ValueError:
            return None


class SSEDecoder:
    """Incremental SSE decoder: ``feed(bytes)`` then iterate :meth:`events`."""

    def __init__(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._buf = bytearray()
        self._scan = 0  # where the next line starts in _buf
        self._event_start = 0  # start of the event being built, in _buf
        self._max_line_bytes = max_line_bytes
        self._max_event_bytes = max_event_bytes
        self._data: list[str] = []
        self._event: str | None = None
        self._comments: list[str] = []

    def feed(self, chunk: bytes) -> None:
        self._buf += chunk

    def events(self) -> Iterator[SSEEvent]:
        """Yield every event completed by the bytes fed so far.

        Raises :class:`ParseError` when a line or the event being built is over its limit.
        """
        buf = self._buf
        while True:
            line_start = self._scan
            end, sep_len = _find_line_end(buf, line_start)
            if end < 0:  # no complete line: wait for more bytes
                if len(buf) - line_start > self._max_line_bytes:
                    raise ParseError("SSE line longer than the limit")
                self._check_event_size(len(buf))
                break
            self._scan = end + sep_len
            self._check_event_size(self._scan)
            line = bytes(buf[line_start:end])
            if line:
                self._field(line)
                continue
            event = self._finish(bytes(buf[self._event_start : self._scan]))
            self._event_start = self._scan
            yield event
        # Forget what has been consumed so the buffer stays bounded.
        if self._event_start:
            del buf[: self._event_start]
            self._scan -= self._event_start
            self._event_start = 0

    def close(self) -> SSEEvent | None:
        """End of stream: whatever was fed after the last complete event (a cut stream).

        A trailing line without its line end is read as a field, so a cut
        ``data: {...}`` still shows its data; the event is returned even though a
        browser would discard it, because a biller wants to see it. A CR held back as
        the last byte now ends its line: no LF can follow.
        """
        rest = bytes(self._buf[self._event_start :])
        if self._scan < len(self._buf):
            # at most one line is left, possibly ended by that held-back CR
            self._field(bytes(self._buf[self._scan :]).removesuffix(b"\r"))
        self._buf.clear()
        self._scan = self._event_start = 0
        if not rest:
            return None
        return self._finish(rest)

    def _check_event_size(self, end: int) -> None:
        if end - self._event_start > self._max_event_bytes:
            raise ParseError("SSE event longer than the limit")

    def _field(self, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace")
        if text.startswith(":"):
            self._comments.append(text[1:].removeprefix(" "))
            return
        name, colon, value = text.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value

    def _finish(self, raw: bytes) -> SSEEvent:
        event = SSEEvent(
            raw=raw,
            data="\n".join(self._data) if self._data else None,
            event=self._event,
            comments=tuple(self._comments),
        )
        self._data = []
        self._event = None
        self._comments = []
        return event


def _find_line_end(buf: bytearray, start: int) -> tuple[int, int]:
    """Where the first line at ``start`` ends, and the length of its end (CRLF: 2, LF or
    CR: 1); (-1, 0) while unknown: no line end yet, or a CR that is the last byte (an LF
    may be next)."""
    lf = buf.find(b"\n", start)
    cr = buf.find(b"\r", start, lf if lf >= 0 else len(buf))
    if cr < 0:
        return (lf, 1) if lf >= 0 else (-1, 0)
    if cr + 1 == len(buf):
        return -1, 0
    return cr, 2 if cr + 1 == lf else 1
