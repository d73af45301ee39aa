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

The only exception the decoder raises is :class:`~saferouter.errors.ParseError`, when
one line exceeds ``max_line_bytes``; anything else is a bug.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import attrs

from .errors import ParseError

DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024


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

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        self._scan = 0  # where to resume searching for a line end in _buf
        self._event_start = 0  # start of the event being built, in _buf
        self._max_line_bytes = max_line_bytes
        self._data: list[str] = []
        self._event: str | None = None
        self._comments: list[str] = []
        self._pending_cr = False  # a CR ended the last line; a following LF belongs to it

    def feed(self, chunk: bytes) -> None:
        self._buf += chunk

    def events(self) -> Iterator[SSEEvent]:
        """Yield every event completed by the bytes fed so far."""
        buf = self._buf
        while True:
            if self._pending_cr and self._scan < len(buf):
                if buf[self._scan] == 0x0A:
                    self._scan += 1
                self._pending_cr = False
            line_start = self._scan
            end, sep_len = _find_line_end(buf, line_start)
            if end < 0:
                if len(buf) - line_start > self._max_line_bytes:
                    raise ParseError("SSE line longer than the limit")
                break
            if sep_len == 1 and buf[end] == 0x0D:
                if end + 1 < len(buf):
                    sep_len = 2 if buf[end + 1] == 0x0A else 1
                else:
                    self._pending_cr = True
            line = bytes(buf[line_start:end])
            self._scan = end + sep_len
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
        browser would discard it, because a biller wants to see it.
        """
        rest = bytes(self._buf[self._event_start :])
        if self._scan < len(self._buf):
            self._field(bytes(self._buf[self._scan :]))
        self._buf.clear()
        self._scan = self._event_start = 0
        self._pending_cr = False
        if not rest:
            return None
        return self._finish(rest)

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
    """Index of the first CR or LF at or after ``start`` and its length (1), or (-1, 0)."""
    lf = buf.find(b"\n", start)
    cr = buf.find(b"\r", start, lf if lf >= 0 else len(buf))
    if cr >= 0:
        return cr, 1
    if lf >= 0:
        return lf, 1
    return -1, 0
