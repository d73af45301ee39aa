"""A real HTTP reverse proxy that notes every exchange a client has with the gateway.

The gateway keeps no access log, and its activity lists only the requests it routed to
a model; a client such as Claude Code also calls ``/v1/models``, ``count_tokens`` or
paths we do not know about. Put this proxy between the client and the gateway and
``RecordingProxy.exchanges`` says what the client asked (method, path and query) and
what it got (status, and the start of any error body), while the bytes pass through
unchanged: the request body whole, the response streamed chunk by chunk as it arrives
(an SSE stream is not buffered).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx

from .servers import running_server

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# connection-level headers: each hop sets its own (hypercorn frames the body again)
_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"host"}
ERROR_BODY_BYTES = 2048


@attrs.frozen
class Exchange:
    method: str
    target: str  # path and query, as the client sent them
    status: int
    error_body: bytes = b""  # the first ERROR_BODY_BYTES of a 4xx/5xx body

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


@attrs.define
class RecordingProxy:
    url: str
    exchanges: list[Exchange] = attrs.Factory(list)


@attrs.define
class _ProxyApp:
    """Raw ASGI: forwards each HTTP request to ``client`` (based at the gateway)."""

    client: httpx.AsyncClient
    exchanges: list[Exchange]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]
        upstream = self.client.build_request(scope["method"], target, headers=headers, content=body)
        response = await self.client.send(upstream, stream=True)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP
                    ],
                }
            )
            error_body = b""
            async for chunk in response.aiter_raw():
                if response.status_code >= 400 and len(error_body) < ERROR_BODY_BYTES:
                    error_body += chunk[: ERROR_BODY_BYTES - len(error_body)]
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()
            self.exchanges.append(
                Exchange(scope["method"], target, response.status_code, error_body)
            )


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """ASGI lifespan for an app with nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@asynccontextmanager
async def recording_proxy(gateway_url: str) -> AsyncIterator[RecordingProxy]:
    """A proxy on 127.0.0.1:<ephemeral> in front of ``gateway_url`` until the block ends."""
    exchanges: list[Exchange] = []
    timeout = httpx.Timeout(120.0, connect=10.0)
    async with (
        httpx.AsyncClient(base_url=gateway_url, timeout=timeout) as client,
        running_server(_ProxyApp(client, exchanges)) as url,
    ):
        yield RecordingProxy(url, exchanges)
