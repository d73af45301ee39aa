"""The ASGI layer between hypercorn and the Quart app: what the app cannot see of the
client connection it answers on.

:class:`ClientGuard` wraps ``app.asgi_app`` (so every way of serving the app has it) and
does four things for each HTTP request:

1. **A send timeout.** hypercorn writes a response with ``send_all`` inside a *shielded*
   cancel scope (``trio/tcp_server.py``, ``protocol_send``): a client that stops reading
   blocks the app's ``send`` forever, and cancelling that ``send`` does nothing. So one
   watchdog task per worker (:class:`SendWatch`, started with the app's lifespan — no
   task per request) notices a ``send`` that has waited ``send_timeout_s``, marks the
   request's :class:`ClientDelivery` ``stalled`` (the stream relay then records the
   attempt ``client_stalled``, closes the upstream and bills what was relayed), and
   calls hypercorn's ``send(None)`` — "the app has finished" — which closes a
   connection whose response is unfinished; closing the socket makes the blocked
   ``send_all`` fail, and the app unwinds as on a disconnect.

2. **Draining an unread body before an early answer (issue 17).** A 401, 404, 405 or
   413 is decided before the body is read. If the answer ends before the client's body
   has arrived, h11 has ``our_state DONE, their_state SEND_BODY``: the connection cannot
   be reused, and hypercorn closes it. So the response start waits until the body has
   come in (quart-trio's ``handle_messages`` keeps pulling every message while the
   handler runs, so waiting is enough) — at most ``drain_limit_bytes`` and
   ``body_timeout_s``; past either, the answer goes out with ``Connection: close``.

3. **Shielding the last ``send`` (issue 17's hang).** hypercorn finishes an exchange
   inside the app's last ``send``: it delivers ``http.disconnect`` to the app, *then*
   recycles the connection (or closes it). quart-trio cancels its handler's task as
   soon as its reader sees ``http.disconnect`` — the very task still inside that
   ``send`` — so the close was cut at its first checkpoint (``send_eof``) and the
   connection was left neither recycled nor closed: the client's next request on it
   never got an answer. Shielded, hypercorn always completes the exchange.

4. **Server-Timing.** The request's :class:`~saferouter.timing.RequestTiming` starts
   here, when hypercorn hands over the request, and every response start gets its
   ``Server-Timing`` header here — whatever route or error handler answered — before (2)
   may hold the start back for the client's body (the client's time, not ours).

5. **The request's trace.** Its :class:`~saferouter.observe.RequestTrace` (and its
   request id) is made here too, filled by whichever code answers (the route template,
   the model, the attempts …), given its status and times at the response start, and
   handed to the worker's :class:`~saferouter.observe.Observers` once the app has
   returned — after the last byte, or once the client left — exactly once, whatever
   answered (a route, an error handler, the API pipeline, Quart's 404).

(2) and (3) concern HTTP/1, where requests follow one another on one byte stream; an
HTTP/2 stream ends on its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import attrs
import trio
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

from .clock import Clock, TrioClock
from .delivery import ClientDelivery
from .observe import Observers, RequestTrace, trace_context
from .timing import HEADER as TIMING_HEADER
from .timing import RequestTiming

# the messages as this layer handles them: plain dicts (hypercorn's TypedDicts are unions)
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

EXTENSION = "saferouter.delivery"
TIMING_EXTENSION = "saferouter.timing"
TRACE_EXTENSION = "saferouter.trace"
# the route of a request no route or API path matched (a label never takes the raw path)
UNMATCHED = "unmatched"
_T = TypeVar("_T")
# hypercorn's send(None) only closes a connection; bounded anyway, since it runs shielded
_ABORT_BOUND_S = 5.0


def delivery_of(scope: Mapping[str, object]) -> ClientDelivery | None:
    """The request's :class:`ClientDelivery`; None when served without :class:`ClientGuard`."""
    return _extension(scope, EXTENSION, ClientDelivery)


def timing_of(scope: Mapping[str, object]) -> RequestTiming | None:
    """The request's :class:`RequestTiming`; None when served without :class:`ClientGuard`."""
    return _extension(scope, TIMING_EXTENSION, RequestTiming)


def trace_of(scope: Mapping[str, object]) -> RequestTrace | None:
    """The request's :class:`RequestTrace`; None when served without :class:`ClientGuard`."""
    return _extension(scope, TRACE_EXTENSION, RequestTrace)


def new_request_id() -> str:
    """A fresh request id (``X-SafeRouter-Request-Id``)."""
    return "req_" + secrets.token_hex(12)


def _extension(scope: Mapping[str, object], name: str, kind: type[_T]) -> _T | None:
    extensions = scope.get("extensions")
    found = extensions.get(name) if isinstance(extensions, dict) else None
    return found if isinstance(found, kind) else None


@attrs.define
class BodyProgress:
    """How much of a request body has come in (sans-I/O: fed the ASGI messages the app
    receives; says whether an answer can go out on a reusable connection).

    ``expected_bytes`` is the Content-Length (None for a chunked body); a request with
    neither header has no body (RFC 9112 §6.3) and is complete from the start.
    """

    expected_bytes: int | None
    drain_limit_bytes: int
    received_bytes: int = 0
    complete: bool = False
    disconnected: bool = False

    @classmethod
    def from_headers(
        cls, headers: list[tuple[bytes, bytes]], *, drain_limit_bytes: int
    ) -> BodyProgress:
        """From the request's raw headers (as hypercorn gives them, names lower-case)."""
        length: int | None = None
        chunked = False
        for name, value in headers:
            if name == b"content-length" and value.strip().isdigit():
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        return cls(
            expected_bytes=None if chunked else length or 0,
            drain_limit_bytes=drain_limit_bytes,
            complete=not chunked and not length,
        )

    def observe(self, message: Message) -> None:
        """One message the app received."""
        if message["type"] == "http.request":
            self.received_bytes += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.complete = True
        elif message["type"] == "http.disconnect":
            self.disconnected = True

    @property
    def settled(self) -> bool:
        """Nothing more to wait for: the body is in, the client left, or draining the rest
        would cost more than the limit."""
        return self.complete or self.disconnected or not self.worth_draining

    @property
    def worth_draining(self) -> bool:
        """Whether reading the rest stays within ``drain_limit_bytes`` in all."""
        total = self.expected_bytes if self.expected_bytes is not None else self.received_bytes
        return total <= self.drain_limit_bytes


@attrs.define(eq=False)
class SendWatch:
    """The sends waiting on their clients, and the one task that cuts off any that has
    waited ``timeout_s``.

    A send registers when it starts and leaves when it returns. Sends start in time
    order, so the dict (insertion-ordered) has the oldest first: the watch sleeps until
    that one's deadline, never polls, and wakes early only when a send arrives in an
    empty dict.
    """

    timeout_s: float
    _sending: dict[_Exchange, float] = attrs.field(init=False, factory=dict)
    _arrived: trio.Event = attrs.field(init=False, factory=trio.Event)

    def started(self, exchange: _Exchange, now: float) -> None:
        if not self._sending:
            self._arrived.set()
        self._sending[exchange] = now

    def finished(self, exchange: _Exchange) -> None:
        self._sending.pop(exchange, None)

    async def run(self) -> None:
        """Until cancelled (the worker's lifespan ends)."""
        async with trio.open_nursery() as aborts:
            while True:
                if not self._sending:
                    self._arrived = trio.Event()
                    await self._arrived.wait()
                    continue
                exchange, since = next(iter(self._sending.items()))
                if trio.current_time() - since < self.timeout_s:
                    await trio.sleep_until(since + self.timeout_s)
                    continue
                del self._sending[exchange]
                aborts.start_soon(exchange.abort)


@attrs.frozen
class ClientGuard:
    """ASGI middleware: a send timeout, early answers that keep keep-alive working, the
    ``Server-Timing`` header, and each request's trace handed to ``observers()``."""

    app: ASGIFramework
    send_timeout_s: float = attrs.field(kw_only=True)
    drain_limit_bytes: int = attrs.field(kw_only=True)
    body_timeout_s: float = attrs.field(kw_only=True)
    # the worker's observers, read when a request ends (the app may set them up late)
    observers: Callable[[], Observers] = attrs.field(kw_only=True, default=Observers)
    clock: Clock = attrs.field(kw_only=True, factory=TrioClock)
    watch: SendWatch = attrs.field(init=False)

    @watch.default
    def _watch(self) -> SendWatch:
        return SendWatch(self.send_timeout_s)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":  # the worker's life: its send watch runs as long
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.watch.run)
                await self.app(scope, receive, send)
                nursery.cancel_scope.cancel()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_s = self.clock.now()
        timing = RequestTiming(started_s=started_s)
        delivery = ClientDelivery()
        headers = list(scope.get("headers") or [])
        traceparent, tracestate = trace_context(headers)
        trace = RequestTrace(
            request_id=new_request_id(),
            method=scope["method"],
            route=UNMATCHED,  # until a route or an API path claims the request
            started_s=started_s,
            started_wall_s=self.clock.wall(),
            traceparent=traceparent,
            tracestate=tracestate,
        )
        # hypercorn types extensions as dicts of dicts; these are objects the app reads
        extensions: dict[str, Any] = {
            **(scope.get("extensions") or {}),
            EXTENSION: delivery,
            TIMING_EXTENSION: timing,
            TRACE_EXTENSION: trace,
        }
        scope["extensions"] = extensions
        exchange = _Exchange(
            self,
            delivery,
            timing,
            trace,
            BodyProgress.from_headers(headers, drain_limit_bytes=self.drain_limit_bytes),
            cast(Receive, receive),
            cast(Send, send),
            # (2) and (3) are about h11's single byte stream: HTTP/2 and /3 end a stream on
            # its own, and there a shielded last send could wait on flow control forever
            http1=scope.get("http_version", "1.1").startswith("1"),
        )
        try:
            await self.app(
                scope,
                cast(ASGIReceiveCallable, exchange.receive),
                cast(ASGISendCallable, exchange.send),
            )
        finally:
            self.watch.finished(exchange)
            # no checkpoint from here on: observed even when the app was cancelled
            trace.ended_s = self.clock.now()
            self.observers().request_done(trace)


@attrs.define(eq=False)
class _Exchange:
    """One request's receive/send, as the app sees them (the trio shell around
    :class:`BodyProgress` and the send watchdog)."""

    _guard: ClientGuard
    _delivery: ClientDelivery
    _timing: RequestTiming
    _trace: RequestTrace
    _body: BodyProgress
    _receive: Receive
    _send: Send
    _http1: bool = attrs.field(kw_only=True)
    _body_changed: trio.Event = attrs.field(init=False, factory=trio.Event)

    async def receive(self) -> Message:
        message = await self._receive()
        self._body.observe(message)
        self._body_changed.set()
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            # (4) read before (2) waits: that wait is the client's time, not ours
            now_s = self._guard.clock.now()
            timing = (TIMING_HEADER, self._timing.encode_header(now_s))
            trace = self._trace  # (5)
            trace.status, trace.first_byte_s = message["status"], now_s
            trace.gateway_overhead_s = self._timing.gateway_s(now_s)
            message = {**message, "headers": [*message.get("headers", []), timing]}
            if self._http1 and not self._body.complete:
                message = await self._after_body(message)
        last = message["type"] == "http.response.body" and not message.get("more_body", False)
        watch = self._guard.watch
        watch.started(self, trio.current_time())
        try:
            if last and self._http1:
                # (3) let hypercorn finish the exchange even though the app cancels itself
                with trio.CancelScope(shield=True):
                    await self._send(message)
            else:
                await self._send(message)
        finally:
            watch.finished(self)

    async def _after_body(self, start: Message) -> Message:
        """(2) Wait for the rest of the body; if it is too big or too slow to wait for,
        the response says the connection closes."""
        with trio.move_on_after(self._guard.body_timeout_s):
            while not self._body.settled:
                self._body_changed = trio.Event()
                await self._body_changed.wait()
        if self._body.complete or self._body.disconnected:
            return start
        headers = [(n, v) for n, v in start.get("headers", []) if n.lower() != b"connection"]
        return {**start, "headers": [*headers, (b"connection", b"close")]}

    async def abort(self) -> None:
        """(1) This exchange's send has waited ``send_timeout_s``: cut the client off."""
        self._delivery.stalled = True
        with trio.CancelScope(shield=True), trio.move_on_after(_ABORT_BOUND_S):
            # hypercorn's "the app has finished" (HTTPStream.app_send(None)); not in the
            # ASGI spec's message types, hence the cast
            finish: Callable[[None], Awaitable[None]] = self._send  # type: ignore[assignment]
            await finish(None)
