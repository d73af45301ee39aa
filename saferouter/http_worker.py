"""hypercorn's trio worker, narrowed to what SafeRouter serves: TCP sockets, plain or
TLS, a cap on connections (``connections.py``), and HTTP/2 only when asked for.

Why not ``hypercorn.trio.worker_serve``: in hypercorn 0.18 it builds its listeners and
``TCPServer`` itself, and ``TCPServer`` picks the protocol classes by name. Every
HTTP/1.1 connection then switches to HTTP/2 on a ``PRI * HTTP/2.0`` preface or an
``Upgrade: h2c`` header, with no setting to turn that off; and nothing outside
``TCPServer`` learns whether a connection has a request in flight. So this module
keeps hypercorn's sans-I/O ``protocol/`` classes and its lifespan handling, and owns
the thin shell around them (the part of ``worker_serve`` used for plain sockets).

TLS (``serve --tls``) is a layer this shell puts on each accepted stream: the
connection cap and the idle first-byte wait see the raw socket (a ClientHello is a
first byte like any other), then the handshake runs under its own deadline
(``tls/handshake.py``), and only a connection that completed one gets a protocol and a
task group. A client failing the handshake or leaving in the middle of it costs its
socket for the handshake timeout at most. ALPN picks HTTP/2 only when ``http2`` is on
(it is offered only then: ``tls/context.py``).

With ``http2`` on, a client may open a stream and reset it at once, over and over
(CVE-2023-44487, "rapid reset"): each stream costs a request task, the resets cost the
client nothing. h2 caps the streams open at once (``h2_max_concurrent_streams``) and
hypercorn closes a connection after ``keep_alive_max_requests`` streams; on top of
that a connection whose client resets more than ``RESETS_PER_S`` streams in a second
(after a burst of as many) is sent GOAWAY (ENHANCE_YOUR_CALM) and closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from ssl import SSLContext
from typing import Any

import attrs
import h2.errors
import h2.events
import h2.exceptions
import h11
import trio
from hypercorn.config import Config, Sockets
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H2CProtocolRequiredError, H2ProtocolAssumedError, H11Protocol
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState, LifespanState
from hypercorn.utils import ShutdownError, parse_socket_addr, raise_shutdown, repr_socket_addr

from .connections import CappedListener, ConnectionTable, TrackedStream
from .errors import InvalidRequest, SafeRouterError
from .tls.handshake import start_tls

RESETS_PER_S = 100.0


@attrs.frozen
class ServeOptions:
    """What this worker adds to hypercorn's ``Config``: with ``tls``, every socket is
    served over TLS with that context, and a handshake has ``handshake_timeout_s``."""

    max_connections: int
    http2: bool
    tls: SSLContext | None = None
    handshake_timeout_s: float = 10.0


async def serve_worker(
    app: AppWrapper,
    config: Config,
    sockets: Sockets,
    options: ServeOptions,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
) -> None:
    """Serve ``app`` on the (bound, listening) sockets until ``shutdown_trigger``
    returns, then let requests in flight finish for ``config.graceful_timeout``."""
    config.set_statsd_logger_class(StatsdLogger)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(app, config, lifespan_state)
    context = WorkerContext(None)
    table: ConnectionTable[TrackedStream] = ConnectionTable(max_connections=options.max_connections)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            listeners = []
            for sock in sockets.insecure_sockets:
                listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
                listeners.append(CappedListener(listener, table))
                bind = repr_socket_addr(sock.family, sock.getsockname())
                # the line scripts (and the browser tests) wait for, as hypercorn's
                scheme = "https" if options.tls else "http"
                await config.log.info(f"Running on {scheme}://{bind} (CTRL + C to quit)")
            connection = partial(
                _serve_connection,
                partial(
                    _Connection,
                    app,
                    config,
                    context,
                    ConnectionState(lifespan_state.copy()),
                    options,
                ),
                idle_timeout_s=config.keep_alive_timeout,
                options=options,
            )
            try:
                async with trio.open_nursery(strict_exception_groups=True) as nursery:
                    nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(raise_shutdown, context.terminate.wait)
                    nursery.start_soon(
                        partial(
                            trio.serve_listeners,
                            connection,
                            listeners,
                            handler_nursery=server_nursery,
                        )
                    )
                    await trio.sleep_forever()
            except BaseExceptionGroup as error:
                _, other_errors = error.split((ShutdownError, KeyboardInterrupt))
                if other_errors is not None:
                    raise other_errors from None
            finally:
                await context.terminated.set()
                _close_idle(table)
                server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


async def _serve_connection(
    connection: Callable[[TrackedStream, trio.abc.Stream], _Connection],
    stream: TrackedStream,
    *,
    idle_timeout_s: float,
    options: ServeOptions,
) -> None:
    # hypercorn gives each connection a task group, protocol state and an idle timer;
    # one that has not sent a byte yet (all of a flood) gets none of that, only this
    # wait, so the worker gets through a backlog of them quickly.
    with trio.move_on_after(idle_timeout_s) as waiting:
        try:
            await stream.wait_readable()
        except trio.ClosedResourceError:
            return  # closed to make room, or at shutdown
    if waiting.cancelled_caught:  # silent for a whole keep-alive timeout
        return  # (trio.serve_listeners closes the stream)
    if options.tls is None:
        await connection(stream, stream).run()
        return
    secure = await start_tls(stream, options.tls, timeout_s=options.handshake_timeout_s)
    if secure is None:
        return  # not a TLS client, or not within the time (the stream is closed for us)
    await connection(stream, secure).run()


def _close_idle(table: ConnectionTable[TrackedStream]) -> None:
    """At shutdown: connections with no request in flight have nothing to finish
    (hypercorn closes those it serves; this also reaches those that never spoke)."""
    for stream in table.idle():
        stream.close_now()


class _Connection(TCPServer):
    """hypercorn's ``TCPServer`` for a socket (``tracked``) and the stream HTTP is spoken
    on (the socket itself, or TLS over it, handshake done), with our protocol choice,
    and the HTTP layer's idle/busy events passed on to the connection table."""

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        state: LifespanState,
        options: ServeOptions,
        tracked: TrackedStream,
        stream: trio.abc.Stream,
    ) -> None:
        super().__init__(app, config, context, state, stream)  # type: ignore[arg-type]
        self.tracked = tracked
        self.options = options
        self.secure = isinstance(stream, trio.SSLStream)

    async def run(self) -> None:
        try:
            client = parse_socket_addr(
                self.tracked.socket.family, self.tracked.socket.getpeername()
            )
            server = parse_socket_addr(
                self.tracked.socket.family, self.tracked.socket.getsockname()
            )
            async with TaskGroup() as task_group:
                self._task_group = task_group
                self.protocol = _Protocol(
                    self.app,
                    self.config,
                    self.context,
                    task_group,
                    ConnectionState(self.state),
                    self.secure,  # the ASGI scope's scheme: https or http
                    client,
                    server,
                    self.protocol_send,
                    http2=self.options.http2,
                    alpn=self.stream.selected_alpn_protocol() if self.secure else None,
                )
                self.tracked.awaiting_body = self._awaiting_body
                await self.protocol.initiate()
                await self.idle_task.restart(self._task_group, self._idle_timeout)
                await self._read_data()
                # the client left: free its socket now, not at the keep-alive timeout
                await self.idle_task.stop()
        except OSError:
            pass
        finally:
            await self._close()

    def _awaiting_body(self) -> bool:
        """An HTTP/1.1 request whose body has not all arrived (h11: the client is in
        SEND_BODY); HTTP/2 streams are left alone."""
        inner = self.protocol.protocol
        return isinstance(inner, H11Protocol) and inner.connection.their_state is h11.SEND_BODY

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated):
            self.tracked.mark_idle(event.idle)
        if isinstance(event, Closed):
            # The close (send EOF, then close the socket) often runs inside the app's
            # task, from its last ``send``, which quart-trio cancels once the response
            # is out: cut at its first checkpoint, it left the socket open. Then
            # ``Connection: close`` was not honoured, and a connection answered early
            # (a 408 on a body that never came) stayed open and busy under the cap.
            with trio.CancelScope(shield=True):
                await super().protocol_send(event)
            return
        await super().protocol_send(event)


class _Protocol(ProtocolWrapper):
    """hypercorn's protocol switch, with HTTP/2 refused unless ``http2`` is on, and a
    bound on stream resets when it is; ``alpn`` is what a TLS handshake agreed on."""

    def __init__(self, *args: Any, http2: bool, alpn: str | None) -> None:
        super().__init__(*args)
        self._args = args
        if not http2:
            self.protocol = _HTTP1Only(*args)
        elif alpn == "h2":  # offered only with http2 on (tls/context.py)
            self.protocol = _BoundedResets(*args)

    async def handle(self, event: Event) -> None:
        try:
            await self.protocol.handle(event)
        except _HTTP2Refused:
            await self.send(Closed())
        except H2ProtocolAssumedError as error:  # raised only with http2 on
            self.protocol = _BoundedResets(*self._args)
            await self.protocol.initiate()
            if error.data:
                await self.protocol.handle(RawData(data=error.data))
        except H2CProtocolRequiredError as error:  # raised only with http2 on
            self.protocol = _BoundedResets(*self._args)
            await self.protocol.initiate(error.headers, error.settings)
            if error.data:
                await self.protocol.handle(RawData(data=error.data))


class _HTTP2Refused(SafeRouterError):
    """A client sent the HTTP/2 preface to a server with HTTP/2 off (caught in this
    module: it ends the connection after the 505 is sent)."""


class _HTTP1Only(H11Protocol):
    async def _check_protocol(self, event: h11.Request) -> None:
        # ``Upgrade: h2c`` is ignored: a server may answer in the protocol asked in
        # (RFC 9110 §7.8). The h2c preface has no HTTP/1.1 answer but an error.
        if event.method == b"PRI" and event.target == b"*" and event.http_version == b"2.0":
            error = InvalidRequest(
                "HTTP/2 is off on this server (start it with --http2); use HTTP/1.1",
                code="http2_disabled",
                status=505,
            )
            body = error.body()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                (b"connection", b"close"),
            ]
            await self._send_h11_event(h11.Response(status_code=error.status, headers=headers))
            await self._send_h11_event(h11.Data(data=body))
            await self._send_h11_event(h11.EndOfMessage())
            raise _HTTP2Refused


class ResetBudget:
    """A token bucket of stream resets: ``per_s`` a second, bursts of as many. Pure:
    the caller passes the time."""

    def __init__(self, per_s: float) -> None:
        self.per_s = per_s
        self._tokens = per_s
        self._at_s: float | None = None

    def spend(self, resets: int, now_s: float) -> bool:
        """Take ``resets`` tokens at ``now_s``; ``False`` once the bucket runs dry."""
        if self._at_s is not None:
            self._tokens = min(self.per_s, self._tokens + (now_s - self._at_s) * self.per_s)
        self._at_s = now_s
        self._tokens -= resets
        return self._tokens >= 0


class _BoundedResets(H2Protocol):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.reset_budget = ResetBudget(RESETS_PER_S)

    async def _handle_events(self, events: list[h2.events.Event]) -> None:
        resets = sum(isinstance(e, h2.events.StreamReset) and e.remote_reset for e in events)
        if resets and not self.reset_budget.spend(resets, trio.current_time()):
            self.connection.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            await self._flush()
            await self.send(Closed())
            return
        await super()._handle_events(events)

    async def _send_data(self, stream_id: int) -> None:
        # hypercorn 0.18 pops a stream's buffer even when the client's flow-control window
        # is shut: the empty pop reopens the buffer's high-water gate, so the app's sends
        # never wait, the response piles up in memory and this send task spins. A client
        # that never sends WINDOW_UPDATE then escapes the send timeout (asgi.SendWatch
        # only sees a send that waits). So a stream with data and no window is parked
        # until a WINDOW_UPDATE unblocks it (hypercorn's ``_window_updated``).
        buffer = self.stream_buffers.get(stream_id)
        if buffer is not None and buffer.buffer:
            try:
                window = self.connection.local_flow_control_window(stream_id)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                window = 1  # a closed stream: hypercorn's own path cleans it up
            if window <= 0:
                self.priority.block(stream_id)
                return
        await super()._send_data(stream_id)
