"""The upstream connection pool against real HTTP/1.1 servers on 127.0.0.1: reuse, the
connection cap and its FIFO queue, cancellation, stale and expired connections, the one
retry, TLS, closing, and the counts /metrics shows."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpcore
import pytest
import trio
import trio.testing

from saferouter.gateway.pool import ConnectionPool

from ..http11_server import BODY, http11_server, tls_contexts


def pool(**options: object) -> ConnectionPool:
    limits = {"max_connections": 10, "max_keepalive_connections": 10, "keepalive_expiry_s": 30.0}
    return ConnectionPool(**{**limits, **options})  # type: ignore[arg-type]


def request(url: str, target: str, body: bytes | AsyncIterator[bytes] = b"{}") -> httpcore.Request:
    host = url.split("//")[1].encode()
    length = str(len(body) if isinstance(body, bytes) else 2).encode()
    headers = [(b"host", host), (b"content-length", length)]
    return httpcore.Request(
        b"POST", url + target, headers=headers, content=body, extensions={"timeout": {}}
    )


async def fetch(pool: ConnectionPool, url: str, target: str = "/ok", **kw: object) -> bytes:
    response = await pool.handle_async_request(request(url, target, **kw))  # type: ignore[arg-type]
    try:
        return b"".join([chunk async for chunk in response.aiter_stream()])
    finally:
        await response.aclose()


async def wait_for(condition: object) -> None:
    """Until ``condition()`` holds; generous bound, no fixed sleep."""
    with trio.fail_after(10):
        while not condition():  # type: ignore[operator]
            await trio.sleep(0.001)


async def test_sequential_requests_reuse_one_connection() -> None:
    async with http11_server() as server:
        async with pool() as upstream:
            for _ in range(5):
                assert await fetch(upstream, server.url) == BODY
            assert server.accepted == 1
            assert upstream.connection_counts() == (0, 1)


async def test_at_most_max_connections_open_and_the_rest_wait() -> None:
    async with http11_server() as server, pool(max_connections=2) as upstream:
        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(fetch, upstream, server.url, f"/hold?{i}")
            await trio.testing.wait_all_tasks_blocked()
            assert server.accepted == 2 and len(server.requests) == 2
            assert upstream.connection_counts() == (2, 0)
            server.release.set()
        assert server.accepted == 2 and len(server.requests) == 5
        assert upstream.connection_counts() == (0, 2)


async def test_waiters_are_served_in_arrival_order() -> None:
    async with http11_server() as server, pool(max_connections=1) as upstream:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fetch, upstream, server.url, "/hold")
            for i in range(4):
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(fetch, upstream, server.url, f"/ok?{i}")
            await trio.testing.wait_all_tasks_blocked()
            server.release.set()
        assert server.targets() == ["/hold", "/ok?0", "/ok?1", "/ok?2", "/ok?3"]
        assert server.accepted == 1  # handed from one request to the next


async def test_the_most_recently_returned_connection_is_reused_first() -> None:
    async with http11_server() as server, pool() as upstream:
        await fetch(upstream, server.url, "/ok?a")  # connection 1, now idle
        held = await upstream.handle_async_request(request(server.url, "/ok?b"))  # takes 1
        await fetch(upstream, server.url, "/ok?c")  # opens 2, now idle
        await held.aread()
        await held.aclose()  # 1 is idle again, and the most recent
        await fetch(upstream, server.url, "/ok?d")
        assert server.requests == [(1, "/ok?a"), (1, "/ok?b"), (2, "/ok?c"), (1, "/ok?d")]


async def test_a_waiter_gives_up_at_the_pool_timeout(mock_clock: trio.testing.MockClock) -> None:
    async with http11_server() as server, pool(max_connections=1) as upstream:
        timed_out: list[bool] = []

        async def wait_for_a_connection() -> None:
            waiting = request(server.url, "/ok")
            waiting.extensions["timeout"] = {"pool": 5.0}
            with pytest.raises(httpcore.PoolTimeout):
                await upstream.handle_async_request(waiting)
            timed_out.append(True)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fetch, upstream, server.url, "/hold")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(wait_for_a_connection)
            await trio.testing.wait_all_tasks_blocked()
            mock_clock.jump(5.1)
            await trio.testing.wait_all_tasks_blocked()
            assert timed_out == [True]
            server.release.set()
        # the waiter that gave up was skipped: the connection came back, no slot lost
        assert upstream.connection_counts() == (0, 1)
        assert await fetch(upstream, server.url) == BODY
        assert server.accepted == 1


async def test_a_cancelled_body_read_closes_that_connection() -> None:
    async with http11_server() as server:
        async with pool() as upstream:
            response = await upstream.handle_async_request(request(server.url, "/slow"))
            with trio.CancelScope() as scope:
                async for _ in response.aiter_stream():
                    scope.cancel()  # mid-body, as a client hanging up cancels its relay
            await response.aclose()
            await wait_for(lambda: server.closed == 1)
            assert upstream.connection_counts() == (0, 0)
            assert await fetch(upstream, server.url) == BODY
            assert server.accepted == 2


async def test_a_request_cancelled_before_its_answer_closes_that_connection() -> None:
    async with http11_server() as server:
        async with pool() as upstream:
            with trio.move_on_after(0):  # cancelled at its first checkpoint after connecting
                await fetch(upstream, server.url, "/hold")
            assert upstream.connection_counts() == (0, 0)
            server.release.set()
            assert await fetch(upstream, server.url) == BODY
            assert upstream.connection_counts() == (0, 1)


async def test_a_body_not_read_to_its_end_is_not_reused() -> None:
    async with http11_server() as server:
        async with pool() as upstream:
            response = await upstream.handle_async_request(request(server.url, "/slow"))
            await response.aclose()  # the head only
            assert await fetch(upstream, server.url) == BODY
            assert server.accepted == 2


async def test_an_idle_connection_the_server_closed_is_skipped_at_checkout() -> None:
    async with http11_server() as server:
        server.close_when_idle = True
        async with pool() as upstream:
            assert await fetch(upstream, server.url) == BODY
            await wait_for(lambda: server.closed == 1)

            async def body() -> AsyncIterator[bytes]:  # not replayable: no retry could hide it
                yield b"{}"

            assert await fetch(upstream, server.url, body=body()) == BODY
            assert server.accepted == 2 and len(server.requests) == 2


async def test_a_request_that_reached_the_server_whole_is_never_sent_again() -> None:
    """The server took the whole request in, then dropped the connection: it may have
    acted (and billed); a POST is not sent twice."""
    async with http11_server() as server:
        async with pool() as upstream:
            assert await fetch(upstream, server.url, "/drop-if-reused") == BODY
            with pytest.raises(httpcore.RemoteProtocolError):
                await fetch(upstream, server.url, "/drop-if-reused")
            assert [n for n, _ in server.requests] == [1, 1]
            assert upstream.connection_counts() == (0, 0)


async def test_a_request_the_server_reset_before_taking_it_in_is_sent_again_once() -> None:
    """The server reset a reused connection with the request's body unread: the body's
    writes fail, nothing was acted on, and the request goes again on a new connection."""
    large = b"x" * (16 * 1024 * 1024)  # beyond the socket buffers: the writes meet the reset
    async with http11_server() as server:
        async with pool() as upstream:
            assert await fetch(upstream, server.url, "/reset-if-reused") == BODY
            assert await fetch(upstream, server.url, "/reset-if-reused", body=large) == BODY
            assert server.requests == [
                (1, "/reset-if-reused"),
                (1, "/reset-if-reused (head only)"),
                (2, "/reset-if-reused"),
            ]
            assert upstream.connection_counts() == (0, 1)


async def test_a_fresh_connection_dropped_is_not_retried() -> None:
    async with http11_server() as server:
        async with pool() as upstream:
            with pytest.raises(httpcore.RemoteProtocolError):
                await fetch(upstream, server.url, "/drop")
            assert len(server.requests) == 1
            assert upstream.connection_counts() == (0, 0)


async def test_no_retry_once_a_response_byte_arrived() -> None:
    async with http11_server() as server:
        async with pool() as upstream:
            await fetch(upstream, server.url, "/partial-if-reused")
            with pytest.raises(httpcore.RemoteProtocolError):
                await fetch(upstream, server.url, "/partial-if-reused")
            assert len(server.requests) == 2 and server.accepted == 1
            assert upstream.connection_counts() == (0, 0)


async def test_an_idle_connection_expires(mock_clock: trio.testing.MockClock) -> None:
    async with http11_server() as server:
        async with pool(keepalive_expiry_s=30.0) as upstream:
            await fetch(upstream, server.url)
            mock_clock.jump(29)
            await fetch(upstream, server.url)
            assert server.accepted == 1
            mock_clock.jump(31)
            await fetch(upstream, server.url)
            assert server.accepted == 2
            await trio.testing.wait_all_tasks_blocked()  # (the clock stands still: no sleeps)
            assert server.closed == 1


async def test_idle_connections_beyond_the_keepalive_limit_are_closed() -> None:
    async with http11_server() as server:
        async with pool(max_keepalive_connections=1) as upstream:
            async with trio.open_nursery() as nursery:
                for i in range(3):
                    nursery.start_soon(fetch, upstream, server.url, f"/hold?{i}")
                await trio.testing.wait_all_tasks_blocked()
                server.release.set()
            assert server.accepted == 3
            assert upstream.connection_counts() == (0, 1)
            await wait_for(lambda: server.closed == 2)


async def test_a_full_pool_closes_another_origins_idle_connection() -> None:
    async with http11_server() as first, http11_server() as second:
        async with pool(max_connections=1) as upstream:
            await fetch(upstream, first.url)
            with trio.fail_after(10):  # rather than wait for a slot that never frees
                await fetch(upstream, second.url)
            await wait_for(lambda: first.closed == 1)
            assert upstream.connection_counts() == (0, 1)


async def test_aclose_closes_idle_and_busy_connections() -> None:
    async with http11_server() as server:
        async with pool() as upstream:
            streaming = await upstream.handle_async_request(request(server.url, "/slow"))
            await fetch(upstream, server.url)
            assert upstream.connection_counts() == (1, 1)
            await upstream.aclose()
            await wait_for(lambda: server.closed == 2)
            await streaming.aclose()
            assert upstream.connection_counts() == (0, 0)
            with pytest.raises(httpcore.ConnectError):
                await fetch(upstream, server.url)


async def test_https_connections_are_verified_and_reused(tmp_path: Path) -> None:
    server_context, client_context = tls_contexts(tmp_path)
    async with http11_server(server_context) as server:
        async with pool(ssl_context=client_context) as upstream:
            for _ in range(3):
                assert await fetch(upstream, server.url) == BODY
            assert server.accepted == 1
        async with pool() as upstream:  # the default: system and certifi roots only
            with pytest.raises(httpcore.ConnectError) as refused:
                await fetch(upstream, server.url)
            broken = refused.value.__cause__  # trio.BrokenResourceError, from the handshake
            assert isinstance(broken and broken.__cause__, ssl.SSLCertVerificationError)
