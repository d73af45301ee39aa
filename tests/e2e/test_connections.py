"""Connections as an attacker or a careless operator makes them: a flood of idle
sockets, a low open-file limit, a port already taken (issue 10, findings 8 and 15)."""

from __future__ import annotations

import resource
import selectors
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import openai
import pytest
import trio
import trio.testing

from saferouter.connections import CappedListener, ConnectionTable, TrackedStream

from ..processes import CLI, clean_env, cli, new_key, serving
from ..servers import write_catalog

FLOOD = 1000
CAP = 200


def _own_file_limit_at_least(files: int) -> None:
    """The flood needs more sockets than a default soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= files:
        return
    assert hard == resource.RLIM_INFINITY or hard >= files, f"hard open-file limit {hard}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, hard))


def _closed_by_peer(socks: list[socket.socket], *, at_least: int, within_s: float) -> int:
    """How many of ``socks`` the other end has closed, waiting up to ``within_s`` for
    ``at_least`` of them."""
    closed = 0
    deadline = time.monotonic() + within_s
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while closed < at_least and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(1024)
                except ConnectionResetError:
                    data = b""
                if not data:
                    selector.unregister(sock)
                    closed += 1
    return closed


def test_a_flood_of_idle_connections_leaves_health_answering(tmp_path: Path) -> None:
    _own_file_limit_at_least(FLOOD + 256)
    # slow demo chunks, so a stream is still in flight while the flood comes in
    catalog = write_catalog(tmp_path / "catalog.toml", "http://127.0.0.1:9", demo_delay_ms=150)
    data = tmp_path / "data"
    secret = new_key(data, "--name", "streamer", "--config", str(catalog))
    with serving(data, "--config", str(catalog), "--max-connections", str(CAP)) as served:
        address = ("127.0.0.1", int(served.url.rsplit(":", 1)[1]))
        client = openai.OpenAI(base_url=served.url + "/v1", api_key=secret, max_retries=0)
        prompt = " ".join(["word"] * 40)
        stream = client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": prompt}], stream=True
        )
        with stream:
            chunks = iter(stream)
            next(chunks)  # the request is in flight
            flood: list[socket.socket] = []
            try:
                for _ in range(FLOOD):
                    flood.append(socket.create_connection(address, timeout=10))
                # the worker works through the backlog of the flood, then answers
                assert httpx.get(served.url + "/health", timeout=30).status_code == 200
                # it holds at most CAP connections: the rest were closed to make room
                closed = _closed_by_peer(flood, at_least=FLOOD - CAP, within_s=15)
                assert closed >= FLOOD - CAP
                # with the flood's sockets still open, /health answers within the second
                started = time.monotonic()
                health = httpx.get(served.url + "/health", timeout=30)
                elapsed_s = time.monotonic() - started
                assert health.status_code == 200
                assert elapsed_s <= 1.0, f"/health took {elapsed_s:.2f} s under the flood"
                # the stream in flight was not one of those closed to make room
                last = list(chunks)[-1]
                assert last.choices[0].finish_reason == "stop"
            finally:
                for sock in flood:
                    sock.close()
        assert httpx.get(served.url + "/health", timeout=10).status_code == 200


def _soft_file_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-file limit in /proc")


def _file_limits(soft: int, hard: int) -> Callable[[], None]:
    def set_limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return set_limits


def test_serve_raises_its_file_limit_to_what_the_cap_needs(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with serving(
        tmp_path / "data", "--max-connections", "500", preexec_fn=_file_limits(256, hard)
    ) as served:
        # 500 client sockets and the upstream pool (1000) fit, with room to spare
        assert _soft_file_limit(served.process.pid) >= 1500
    assert "open-file limit" not in served.output


def test_a_hard_file_limit_too_low_lowers_the_cap_and_says_so(tmp_path: Path) -> None:
    with serving(
        tmp_path / "data", "--max-connections", "1000", preexec_fn=_file_limits(256, 640)
    ) as served:
        assert httpx.get(served.url + "/health", timeout=10).status_code == 200
        assert _soft_file_limit(served.process.pid) <= 640
    said = [line for line in served.output.splitlines() if "open-file limit" in line]
    assert len(said) == 1, served.output
    assert "(640)" in said[0] and "not 1000" in said[0]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_port_exits_2_before_creating_anything(tmp_path: Path, workers: str) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*CLI, "serve", "--data-dir", str(data), "--port", str(port), "--workers", workers],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"saferouter: cannot listen on 127.0.0.1:{port}: address already in use"
    ]
    assert result.stdout == ""  # no admin key shown (and so lost)
    listing = cli(data, "keys", "list")
    assert listing.returncode == 0 and len(listing.stdout.splitlines()) == 1  # the header
    with serving(data) as served:
        pass
    # the first real start creates the first key and the first log entry
    assert sum(line.startswith("sk-sr-") for line in served.output.splitlines()) == 1
    assert "startup log entry 0 " in served.output


async def test_at_the_cap_with_every_connection_busy_accept_waits() -> None:
    table: ConnectionTable[TrackedStream] = ConnectionTable(max_connections=1)
    raw = trio.socket.socket()
    await raw.bind(("127.0.0.1", 0))
    raw.listen(8)
    listener = CappedListener(trio.SocketListener(raw), table)
    host, port = raw.getsockname()
    async with await trio.open_tcp_stream(host, port) as first_client:
        first = await listener.accept()
        first.mark_idle(False)  # a request in flight
        async with await trio.open_tcp_stream(host, port), trio.open_nursery() as nursery:
            accepted: list[TrackedStream] = []

            async def accept() -> None:
                accepted.append(await listener.accept())

            nursery.start_soon(accept)
            await trio.testing.wait_all_tasks_blocked()
            assert accepted == [] and len(table) == 1  # the busy one stays, the new one waits
            first.mark_idle(True)  # its request finished: now it can make room
        assert len(accepted) == 1 and len(table) == 1
        assert await first_client.receive_some() == b""  # closed to make room
        await accepted[0].aclose()
    await listener.aclose()


@asynccontextmanager
async def capped(max_connections: int) -> AsyncIterator[tuple[CappedListener, int]]:
    """A capped listener on 127.0.0.1 and its port."""
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    table: ConnectionTable[TrackedStream] = ConnectionTable(max_connections=max_connections)
    capped_listener = CappedListener(listener, table)
    try:
        yield capped_listener, listener.socket.getsockname()[1]
    finally:
        await capped_listener.aclose()


async def test_a_full_table_closes_nobody_until_a_new_client_comes() -> None:
    """At the cap, the accept loop waits for a new client before it makes room: closing
    the longest-idle connection up front would leave one place always empty, and close
    a connection whose task has not even started."""
    async with capped(2) as (listener, port):
        clients = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
        accepted = [await listener.accept() for _ in range(2)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(listener.accept)  # the accept loop's next turn
            await trio.testing.wait_all_tasks_blocked()
            assert [s.socket.fileno() != -1 for s in accepted] == [True, True]
            nursery.cancel_scope.cancel()
        for stream in (*accepted, *clients):
            await stream.aclose()


async def test_a_third_client_at_a_cap_of_two_closes_the_quietest() -> None:
    async with capped(2) as (listener, port):
        clients = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(3)]
        first, second = [await listener.accept() for _ in range(2)]
        third = await listener.accept()
        assert first.socket.fileno() == -1
        assert second.socket.fileno() != -1 and third.socket.fileno() != -1
        for stream in (second, third, *clients):
            await stream.aclose()


async def test_waiting_on_a_connection_closed_before_its_task_ran_says_closed() -> None:
    """The accept loop can close a connection to make room before that connection's
    task first waits on it: the wait must say "closed" (which the worker treats as the
    client leaving), not raise ValueError on fd -1, which ended the whole worker."""
    async with capped(1) as (listener, port):
        client = await trio.open_tcp_stream("127.0.0.1", port)
        stream = await listener.accept()
        stream.close_now()
        with pytest.raises(trio.ClosedResourceError):
            await stream.wait_readable()
        with pytest.raises(trio.ClosedResourceError):
            await stream.receive_some(10)
        await client.aclose()


def _until_eof(sock: socket.socket, within_s: float) -> bytes | None:
    """Everything the server sends until it closes, or None if it has not closed
    within ``within_s``."""
    sock.settimeout(within_s)
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except TimeoutError:
        return None
    return received


def test_a_response_that_says_connection_close_closes_the_connection(tmp_path: Path) -> None:
    """RFC 9112 §9.6: a server that sends ``Connection: close`` closes after the
    response. The close ran inside the app's task, which quart-trio cancels once the
    response is out, so it was cut at its first checkpoint: the socket stayed open
    (a client reading to EOF hung, and the connection held its place under the cap)."""
    with serving(tmp_path / "data") as served:
        address = ("127.0.0.1", int(served.url.rsplit(":", 1)[1]))
        for _ in range(5):
            with socket.create_connection(address, timeout=10) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                received = _until_eof(sock, within_s=10)
                assert received is not None, "the server did not close the connection"
                assert received.startswith(b"HTTP/1.1 200")


def test_uploads_that_stall_do_not_hold_the_cap(tmp_path: Path) -> None:
    """A client that sends a request head and then no more of its body keeps its
    connection busy (a request is in flight), so at the cap it was never closed to make
    room: two such sockets at ``--max-connections 2`` kept ``/health`` waiting for
    Quart's 60 s body timeout, and anyone could repeat that forever. A connection the
    server is waiting on — its body unfinished, quiet for a while — is the client's
    stall, not the server's work: at the cap it goes before a new client waits."""
    with serving(tmp_path / "data", "--max-connections", "2") as served:
        address = ("127.0.0.1", int(served.url.rsplit(":", 1)[1]))
        stalled = [socket.create_connection(address, timeout=10) for _ in range(2)]
        try:
            for sock in stalled:
                sock.sendall(
                    b"POST /attestation/quote HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                )
            started = time.monotonic()
            health = httpx.get(served.url + "/health", timeout=45)
            elapsed_s = time.monotonic() - started
            assert health.status_code == 200
            # quiet for UPLOAD_QUIET_S (5 s), then closed for the new client: far less
            # than the 60 s body timeout it waited for before
            assert elapsed_s < 30, f"/health waited {elapsed_s:.1f} s behind stalled uploads"
            closed = _closed_by_peer(stalled, at_least=1, within_s=10)
            assert closed >= 1
        finally:
            for sock in stalled:
                sock.close()
