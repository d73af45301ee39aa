"""The API paths served straight from ASGI: the request pipeline's HTTP adapter.

The gateway's hottest paths do not go through Quart: building Quart's request and
response objects, its context locals, hooks and URL map cost more per request than the
whole pipeline (issue 11's profile). :class:`ApiEndpoint` sits in front of the Quart
app (inside :class:`~saferouter.asgi.ClientGuard`, so the send timeout, body draining,
the shielded last send and ``Server-Timing`` hold here as everywhere) and answers every
path a dialect is registered for (:data:`~saferouter.gateway.dialects.DIALECTS`:
``/v1/chat/completions``, ``/v1/responses``, ``/v1/messages``) itself; every other
request goes on to Quart unchanged. The query string plays no part (Claude Code posts
``/v1/messages?beta=true``).

It does what Quart did for the route, no more: a request id on every answer, the key
from ``Authorization`` or ``x-api-key``, the body read up to the size limit (413)
within the body timeout (408), the client's departure noticed at once (the handler is
cancelled; a stream's ``aclose`` settles what was relayed), every error in the shape of
the path's API (``dialect.error_reply``), and a 500 naming the request id for anything
unexpected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import attrs
import trio
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

from .asgi import BodyProgress, delivery_of, new_request_id, timing_of, trace_of
from .errors import (
    ApiError,
    InvalidRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    unexpected_error,
)
from .gateway.dialect import Dialect
from .gateway.dialects import DIALECTS
from .gateway.pipeline import ApiCall, Ports, Reply, serve

REQUEST_ID_HEADER = "X-SafeRouter-Request-Id"
Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]


def _by_bare_path() -> dict[str, Dialect]:
    return {path.lstrip("/"): dialect for path, dialect in DIALECTS.items()}


@attrs.frozen
class ApiEndpoint:
    """ASGI middleware: the dialects' paths to the pipeline, the rest to ``app``."""

    app: ASGIFramework
    ports: Callable[[], Ports | None]  # the pipeline's ports, once the app is serving
    max_body_bytes: int
    body_timeout_s: float
    # the dialect of each path, leading slashes stripped
    dialects: dict[str, Dialect] = attrs.field(factory=_by_bare_path, repr=False)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        ports = self.ports()
        # leading slashes collapsed, as Quart's routing does for every other path
        # (werkzeug: "/" + path.lstrip("/")): "//v1/models" and the API paths alike
        if (
            scope["type"] != "http"
            or (dialect := self.dialects.get(scope["path"].lstrip("/"))) is None
            or ports is None
        ):
            await self.app(scope, receive, send)
            return
        trace = trace_of(scope)
        if trace is not None:
            trace.route = dialect.path  # the template: the query string plays no part
        request_id = trace.request_id if trace is not None else new_request_id()
        headers = list(scope["headers"])
        declared = BodyProgress.from_headers(headers, drain_limit_bytes=0).expected_bytes
        body = _Body(self.max_body_bytes, declared)
        out = cast(Send, send)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(body.receive_all, receive, nursery.cancel_scope)
            call = ApiCall(
                dialect=dialect,
                authorization=_header(headers, b"authorization"),
                x_api_key=_header(headers, b"x-api-key"),
                headers=headers,
                read_body=lambda: body.read(self.body_timeout_s),
                request_id=request_id,
                started_s=trio.current_time(),
                timing=timing_of(scope),
                delivery=delivery_of(scope),
                trace=trace,
            )
            await _answer(ports, scope["method"], call, out)
            nursery.cancel_scope.cancel()


async def _answer(ports: Ports, method: str, call: ApiCall, send: Send) -> None:
    """Run the pipeline and send its reply; an error goes out in the API's error shape."""
    id_header = (REQUEST_ID_HEADER.lower().encode(), call.request_id.encode())
    dialect = call.dialect
    try:
        if method != "POST":
            raise MethodNotAllowed(
                f"Method {method} is not allowed for {dialect.path}. Allowed: POST.",
                headers={"Allow": "POST"},
            )
        reply = await serve(ports, call)
    except ApiError as error:
        reply = _error_reply(error, call)
    except Exception as error:  # a bug: the client gets a 500, the log where it happened
        internal = unexpected_error(
            error, method=method, path=dialect.path, request_id=call.request_id
        )
        reply = _error_reply(internal, call)
    if reply.stream is None:
        headers = [*_encoded(reply.headers), id_header]
        headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body, "more_body": False})
        return
    ports.open_streams.opened()
    try:  # from here on, whatever happens, the stream is closed and so settled
        headers = [*_encoded(reply.headers), id_header]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        async for chunk in reply.stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        ports.open_streams.closed()
        await reply.stream.aclose()  # settles a stream the client left (shielded inside)


def _error_reply(error: ApiError, call: ApiCall) -> Reply:
    if call.trace is not None:
        call.trace.error_type = error.code or error.error_type
    return Reply.of_error(error, call.dialect)


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]


@attrs.define
class _Body:
    """The request body as it arrives (the trio shell reading ``receive``)."""

    limit_bytes: int
    declared_bytes: int | None  # Content-Length
    parts: list[bytes] = attrs.Factory(list)
    size_bytes: int = 0
    complete: bool = False
    # the body is whole, or already over the limit: a 413 need not wait for the rest
    decided: trio.Event = attrs.Factory(trio.Event)

    async def receive_all(self, receive: ASGIReceiveCallable, handler: trio.CancelScope) -> None:
        """Take the body in, then wait for the client to leave: that cancels the handler."""
        while True:
            message = cast(Message, await receive())
            if message["type"] == "http.disconnect":
                handler.cancel()
                return
            if message["type"] == "http.request" and not self.complete:
                chunk = message.get("body", b"")
                self.size_bytes += len(chunk)
                if self.size_bytes <= self.limit_bytes:
                    self.parts.append(chunk)
                else:
                    self.decided.set()
                if not message.get("more_body", False):
                    self.complete = True
                    self.decided.set()

    async def read(self, timeout_s: float) -> bytes:
        """The whole body; 413 past the limit (before reading, given Content-Length; as
        soon as a chunked body passes it), 408 when it does not arrive in time."""
        if (self.declared_bytes or 0) > self.limit_bytes:
            raise _too_large(self.limit_bytes)
        with trio.move_on_after(timeout_s):
            await self.decided.wait()
        if self.size_bytes > self.limit_bytes:  # a chunked body: as soon as it is over
            raise _too_large(self.limit_bytes)
        if not self.complete:
            raise InvalidRequest(
                f"The request body did not arrive within {timeout_s:g} s.",
                status=408,
                code="request_timeout",
            )
        return b"".join(self.parts)


def _too_large(limit_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than this gateway accepts ({limit_bytes} bytes)."
    )


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
