"""The demo provider's HTTP side (the thin shell): a reply's events or body as the
httpcore response a real provider's connection would give, and its error bodies.

Every API's demo builds its events purely (lists of bytes); only :class:`DemoStream`
waits, ``chunk_delay_s`` between one item and the next, as a provider's tokens trickle
in. An item may hold several SSE events (one delta of each of ``n`` choices): they
arrive together, as a provider's do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import httpcore
import trio

_JSON = [(b"content-type", b"application/json")]


def demo_stream(items: Sequence[bytes], chunk_delay_s: float) -> httpcore.Response:
    """A 200 SSE response sending ``items`` (whole SSE events) one by one."""
    return httpcore.Response(
        200,
        headers=[(b"content-type", b"text/event-stream; charset=utf-8")],
        content=DemoStream(list(items), chunk_delay_s),
    )


def demo_json(value: object) -> httpcore.Response:
    """A 200 JSON response."""
    return httpcore.Response(200, headers=_JSON, content=encode_compact(value))


def openai_error(status: int, message: str, *, param: str | None = None) -> httpcore.Response:
    """An error as OpenAI (and DeepSeek) write it."""
    body = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": "invalid_value" if param is not None else None,
        }
    }
    return httpcore.Response(status, headers=_JSON, content=json.dumps(body).encode())


def encode_compact(value: object) -> bytes:
    """JSON without spaces between tokens, as providers send it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class DemoStream:
    """The SSE body: an async iterator with ``aclose``, as httpcore expects of a stream."""

    def __init__(self, items: list[bytes], delay_s: float) -> None:
        self._items = items
        self._index = 0
        self._delay_s = delay_s

    def __aiter__(self) -> DemoStream:
        return self

    async def __anext__(self) -> bytes:
        if self._index >= len(self._items):
            raise StopAsyncIteration
        if self._index and self._delay_s:
            await trio.sleep(self._delay_s)
        self._index += 1
        return self._items[self._index - 1]

    async def aclose(self) -> None:
        self._index = len(self._items)
