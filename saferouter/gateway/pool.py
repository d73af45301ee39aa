"""The upstream connection pool: HTTP/1.1 keep-alive connections to the providers,
checked out in O(1). The decisions are ``checkout.py``'s (no I/O); this is its trio shell.

Why not httpcore's ``AsyncConnectionPool``: on every request and every response close it
walks all its connections and asks each idle one ``has_expired()``, which polls the
socket (one ``poll(2)`` per idle connection), and it matches queued requests to
connections in O(requests × connections): about half the CPU of a pool-only harness at
50 concurrent requests, 3–7 % of the gateway's (``bench/PROFILE.md``; the ~35 % once
quoted counted the whole upstream exchange). Here a checkout looks only at the
connection it takes (see ``checkout.py``), and a request finding every connection busy
waits in a FIFO queue without polling, bounded by the caller's trio deadline and the
request's ``pool`` timeout (``httpcore.PoolTimeout``, as with httpcore's pool).

The exchange itself is httpcore's ``AsyncHTTP11Connection`` on httpcore's trio network
backend, so h11, TLS and the error mapping are unchanged. A connection goes back to the
pool only if h11 says both messages are complete: httpcore closes a connection whose
response was not read to its end or whose request was cancelled, so a half-used
connection can never be checked out again.

A request on a reused connection whose sending failed (the server had closed it: the
write hits its reset) is sent again, once, on a fresh connection — the request never
reached a live server, so it cannot have been acted on, and without the retry a
provider's keep-alive timeout would trigger a fallback (and count against its breaker)
for nothing. A request that was sent whole is never sent again, whatever happens next:
a POST is not idempotent, and a provider that received it may bill for it even if it
dies before answering (Go's net/http makes the same call: it replays a request on a
closed idle connection only when it is idempotent). The common case — a connection the
server closed while it sat idle — is caught before any byte is sent, by the readability
check at checkout (``checkout.py``).
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterable, AsyncIterator

import attrs
import httpcore
import trio
from httpcore._models import ByteStream  # the one body type that can be sent twice

from .checkout import Checkout, Claim

# How a failed exchange shows (httpcore swallows a failed write of the request and reads
# on, hoping for an early answer, so a reset connection surfaces as a read failure); the
# pool's own count of what was written tells whether the request went out whole.
_STALE_ERRORS = (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError)


# (scheme, host, port): httpcore's Origin compares by value but cannot be hashed
OriginKey = tuple[bytes, bytes, int]


@attrs.define(eq=False)
class _Connection:
    origin: OriginKey
    exchange: httpcore.AsyncHTTP11Connection
    stream: WatchedStream
    idle_since_s: float = 0.0


class ConnectionPool:
    """HTTP/1.1 connections to any number of origins, at most ``max_connections`` open."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_keepalive_connections: int,
        keepalive_expiry_s: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        # httpcore's pool built this default (system trust + certifi) for every new
        # connection; one context, built once, verifies the same way
        self._ssl_context = ssl_context or httpcore.default_ssl_context()
        self._ssl_context.set_alpn_protocols(["http/1.1"])
        self._backend = httpcore.TrioBackend()
        self._checkout: Checkout[_Connection] = Checkout(
            max_connections=max_connections,
            max_idle=max_keepalive_connections,
            keepalive_expiry_s=keepalive_expiry_s,
            # an idle HTTP/1.1 socket is readable only at EOF (or with junk): the server
            # closed it while it sat in the pool
            is_dead=lambda connection: bool(connection.stream.get_extra_info("is_readable")),
        )
        self._closed = False

    def connection_counts(self) -> tuple[int, int]:
        """(serving a request or being opened for one, idle)."""
        return self._checkout.counts()

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send ``request`` and return once the response head arrived; its body streams,
        and closing the response gives the connection back (closed if not read to the
        end)."""
        origin = request.url.origin
        if origin.scheme not in (b"http", b"https"):
            raise httpcore.UnsupportedProtocol(f"Unsupported URL scheme {origin.scheme!r}")
        timeouts = request.extensions.get("timeout", {})
        key = (origin.scheme, origin.host, origin.port)
        connection = await self._claim(key, timeouts.get("pool"))
        try:
            if connection is None:
                connection = await self._connect(origin, request)
                response = await connection.exchange.handle_async_request(request)
            else:
                received_bytes = connection.stream.received_bytes
                try:
                    response = await connection.exchange.handle_async_request(request)
                except _STALE_ERRORS:
                    replayable = isinstance(request.stream, ByteStream)
                    answered = connection.stream.received_bytes != received_bytes
                    if not replayable or answered or not connection.stream.write_failed:
                        raise  # it may have been acted on: never sent twice
                    # httpcore closed it; its slot carries the one retry
                    self._checkout.lost(connection)
                    connection = None
                    connection = await self._connect(origin, request)
                    response = await connection.exchange.handle_async_request(request)
        except BaseException:
            await self._give_back(connection)
            raise
        assert isinstance(response.stream, AsyncIterable)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_PooledBody(response.stream, self, connection),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close every connection, idle or in use; the pool opens no new one."""
        self._closed = True
        await _close_all(self._checkout.drain())

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _claim(self, origin: OriginKey, pool_timeout_s: float | None) -> _Connection | None:
        """An idle connection to ``origin``, or ``None`` for a slot to open one."""
        granted = trio.Event()
        claim: Claim[_Connection] = Claim(origin, granted.set)
        await _close_all(self._checkout.admit(claim, trio.current_time()))
        if claim.granted:
            return claim.connection
        try:
            with trio.fail_after(math.inf if pool_timeout_s is None else pool_timeout_s):
                await granted.wait()
        except BaseException as exc:
            claim.gone = True
            if claim.granted:  # handed over as we were cancelled: pass it on
                await self._give_back(claim.connection)
            if isinstance(exc, trio.TooSlowError):
                raise httpcore.PoolTimeout("no upstream connection became free") from None
            raise
        return claim.connection

    async def _give_back(self, connection: _Connection | None) -> None:
        """Return a request's slot and connection (``None``: it never connected)."""
        # h11 is back to IDLE only if both messages were complete; a cancelled or
        # half-read exchange was closed by httpcore
        reusable = connection is not None and connection.exchange.is_idle() and not self._closed
        closing = self._checkout.release(connection, reusable=reusable, now_s=trio.current_time())
        await _close_all(closing)

    async def _connect(self, origin: httpcore.Origin, request: httpcore.Request) -> _Connection:
        if self._closed:  # (a closed pool has no idle connection left to hand out)
            raise httpcore.ConnectError("the upstream connection pool is closed")
        timeout_s = request.extensions.get("timeout", {}).get("connect")
        host = origin.host.decode("ascii")
        stream = await self._backend.connect_tcp(host, origin.port, timeout=timeout_s)
        try:
            if origin.scheme == b"https":
                server_hostname = request.extensions.get("sni_hostname") or host
                stream = await stream.start_tls(
                    self._ssl_context, server_hostname=server_hostname, timeout=timeout_s
                )
        except BaseException:
            with trio.CancelScope(shield=True):
                await stream.aclose()
            raise
        watched = WatchedStream(stream)
        exchange = httpcore.AsyncHTTP11Connection(origin, watched)
        connection = _Connection((origin.scheme, origin.host, origin.port), exchange, watched)
        self._checkout.opened(connection)
        return connection


class WatchedStream(httpcore.AsyncNetworkStream):
    """A network stream that counts the bytes it received and notes a failed write:
    whether a failed request went out whole, and got any answer, decides whether it may
    be sent again."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self.received_bytes = 0
        self.write_failed = False  # a request on it did not go out whole

    # httpcore's stream interface passes its timeouts as arguments
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        data = await self._stream.read(max_bytes, timeout)
        self.received_bytes += len(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        try:
            await self._stream.write(buffer, timeout)
        except httpcore.WriteError:
            self.write_failed = True
            raise

    async def aclose(self) -> None:
        await self._stream.aclose()

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class _PooledBody:
    """A response body that gives its connection back to the pool when closed."""

    def __init__(
        self, body: AsyncIterable[bytes], pool: ConnectionPool, connection: _Connection
    ) -> None:
        self._body = body
        self._pool = pool
        self._connection = connection
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._body:
                yield chunk
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            aclose = getattr(self._body, "aclose", None)
            if aclose is not None:
                await aclose()
            await self._pool._give_back(self._connection)


async def _close_all(connections: list[_Connection]) -> None:
    if connections:
        with trio.CancelScope(shield=True):
            for connection in connections:
                await connection.exchange.aclose()
