"""Relaying an upstream SSE body to the client, byte for byte, event by event.

:class:`StreamRelay` is the response body handed to Quart. It is an async iterator
(not a generator) so that:

* no ``yield`` ever sits inside a cancel scope (trio#638: a deadline firing while a
  generator is parked at ``yield`` silently truncates the stream);
* ``aclose`` closes the upstream even when iteration never started;
* a client disconnect makes Quart call ``aclose``, which closes the upstream socket at
  once (shielded, so the close itself cannot be cancelled half-way).

Bytes go to the client as whole events: what the decoder completed from the bytes read
so far. Joined, they are exactly the upstream's bytes. If the upstream fails or stalls
mid-stream, the client gets an OpenAI-shaped error event and no ``[DONE]``, never a
stream that looks complete.
"""

from __future__ import annotations

import json

import httpcore
import trio

from ..sse import SSEDecoder


class StreamRelay:
    def __init__(
        self, response: httpcore.Response, *, idle_timeout_s: float, provider_name: str
    ) -> None:
        self._response = response
        self._chunks = response.aiter_stream().__aiter__()
        self._idle_timeout_s = idle_timeout_s
        self._provider_name = provider_name
        self._decoder = SSEDecoder()
        self._finished = False
        self.bytes_relayed = 0
        self.error: str | None = None

    def __aiter__(self) -> StreamRelay:
        return self

    async def __anext__(self) -> bytes:
        while not self._finished:
            chunk = await self._next_upstream_chunk()
            if chunk is None:
                break
            self._decoder.feed(chunk)
            out = b"".join(event.raw for event in self._decoder.events())
            if out:
                self.bytes_relayed += len(out)
                return out
        if self._finished:
            raise StopAsyncIteration
        self._finished = True
        await self.aclose()
        if self.error is not None:
            return self._error_event()
        rest = self._decoder.close()
        if rest is not None:
            self.bytes_relayed += len(rest.raw)
            return rest.raw
        raise StopAsyncIteration

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

    async def aclose(self) -> None:
        self._finished = True
        with trio.CancelScope(shield=True):
            await self._response.aclose()
