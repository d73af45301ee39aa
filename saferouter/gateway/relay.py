"""Relaying an upstream SSE body to the client, byte for byte, event by event.

:class:`StreamRelay` is the response body handed to Quart. It is an async iterator
(not a generator) so that:

* no ``yield`` ever sits inside a cancel scope (trio#638: a deadline firing while a
  generator is parked at ``yield`` silently truncates the stream);
* ``aclose`` closes the upstream even when iteration never started;
* a client disconnect makes Quart call ``aclose``, which closes the upstream socket at
  once (shielded, so the close itself cannot be cancelled half-way) and bills what was
  relayed.

Bytes go to the client as whole events: what the decoder completed from the bytes read
so far. Joined, they are exactly the upstream's bytes — except the usage-only event
(``choices: []``), dropped when the client did not ask for usage, since the gateway
asked the upstream for it to bill the stream. The request is settled before
``data: [DONE]`` goes out (or, with no ``[DONE]``, before the body ends), so a client
that saw the end of its stream is always in the books. If the upstream fails or stalls
mid-stream, the client gets an OpenAI-shaped error event and no ``[DONE]``.
"""

from __future__ import annotations

import json
import time

import httpcore
import trio

from ..accounting import StreamUsage
from ..sse import SSEDecoder
from .books import RequestBooks


class StreamRelay:
    def __init__(
        self,
        response: httpcore.Response,
        *,
        books: RequestBooks,
        idle_timeout_s: float,
        provider_name: str,
        client_wants_usage: bool,
    ) -> None:
        self._response = response
        self._chunks = response.aiter_stream().__aiter__()
        self._books = books
        self._idle_timeout_s = idle_timeout_s
        self._provider_name = provider_name
        self._client_wants_usage = client_wants_usage
        self._decoder = SSEDecoder()
        self._usage = StreamUsage()
        self._finished = False
        self._first_byte_at: float | None = None
        self.error: str | None = None

    def __aiter__(self) -> StreamRelay:
        return self

    async def __anext__(self) -> bytes:
        while not self._finished:
            chunk = await self._next_upstream_chunk()
            if chunk is None:
                break
            self._decoder.feed(chunk)
            out = await self._relay_events()
            if out:
                if self._first_byte_at is None:
                    self._first_byte_at = time.perf_counter()
                return out
        if self._finished:
            raise StopAsyncIteration
        self._finished = True
        await self._close_upstream()
        if self.error is not None:
            await self._settle(status=502, outcome="error", error_type="upstream_stream_failed")
            return self._error_event()
        rest = self._decoder.close()
        if rest is not None:
            self._usage.observe(rest.data, rest.event)
        await self._settle_end()
        if rest is not None:
            return rest.raw
        raise StopAsyncIteration

    async def _relay_events(self) -> bytes:
        parts = []
        for event in self._decoder.events():
            usage_only = self._usage.observe(event.data, event.event)
            if usage_only and not self._client_wants_usage:
                continue
            if event.data == "[DONE]":
                await self._settle_end()
            parts.append(event.raw)
        return b"".join(parts)

    async def _next_upstream_chunk(self) -> bytes | None:
        """The next piece of the upstream body; None at its end or on failure."""
        with trio.move_on_after(self._idle_timeout_s) as scope:
            try:
                return await self._chunks.__anext__()
            except StopAsyncIteration:
                return None
            except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException):
                self.error = f"{self._provider_name} broke off the stream"
                return None
        if scope.cancelled_caught:
            self.error = (
                f"{self._provider_name} sent nothing for {self._idle_timeout_s:g} s; "
                "the stream was abandoned"
            )
        return None

    async def _settle_end(self) -> None:
        """The upstream finished its stream; an error event it sent makes it a failure."""
        if self._usage.error_event:
            await self._settle(status=200, outcome="error", error_type="upstream_error_event")
        else:
            await self._settle(status=200, outcome="ok")

    async def _settle(self, *, status: int, outcome: str, error_type: str | None = None) -> None:
        await self._books.settle(
            status=status,
            outcome=outcome,
            usage=self._usage.usage,
            estimated_text_bytes=self._usage.text_bytes,
            ttfb_s=self._first_byte_at,
            error_type=error_type,
        )

    def _error_event(self) -> bytes:
        body = {
            "error": {
                "message": self.error,
                "type": "upstream_error",
                "param": None,
                "code": "upstream_stream_failed",
            }
        }
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    async def _close_upstream(self) -> None:
        with trio.CancelScope(shield=True):
            await self._response.aclose()

    async def aclose(self) -> None:
        """Quart's cleanup: after the end, or when the client went away mid-stream."""
        if not self._finished:
            self._finished = True
            await self._close_upstream()
            with trio.CancelScope(shield=True):
                await self._settle(
                    status=499, outcome="client_closed", error_type="client_disconnected"
                )
        await self._close_upstream()
