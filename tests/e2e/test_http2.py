"""Cleartext HTTP/2 is off unless ``--http2``; when on, a rapid-reset burst (a stream
opened and reset, over and over: CVE-2023-44487) closes the connection."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest

from ..processes import serving

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
UPGRADE = (
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    with serving(tmp_path_factory.mktemp("plain") / "data") as served:
        yield _address(served.url)


@pytest.fixture(scope="module")
def http2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    with serving(tmp_path_factory.mktemp("h2") / "data", "--http2") as served:
        yield _address(served.url)


def _address(url: str) -> tuple[str, int]:
    return ("127.0.0.1", int(url.rsplit(":", 1)[1]))


def _read_until_closed(sock: socket.socket, *, limit_bytes: int = 1 << 20) -> bytes:
    """All the server sends until it closes the connection (bounded)."""
    received = b""
    while len(received) < limit_bytes:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        received += data
    return received


def test_the_h2c_preface_gets_an_http1_error_when_http2_is_off(plain: tuple[str, int]) -> None:
    with socket.create_connection(plain, timeout=10) as sock:
        sock.sendall(PREFACE)
        answer = _read_until_closed(sock)  # and the server closes the connection
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 505 ")
    error = json.loads(body)["error"]
    assert error["code"] == "http2_disabled" and "--http2" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_an_h2c_upgrade_is_answered_in_http1_when_http2_is_off(plain: tuple[str, int]) -> None:
    with socket.create_connection(plain, timeout=10) as sock:
        sock.sendall(UPGRADE)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            data = sock.recv(65536)
            assert data, head
            head += data
    assert head.startswith(b"HTTP/1.1 200 ")  # not 101 Switching Protocols


def _h2_client(address: tuple[str, int]) -> tuple[socket.socket, h2.connection.H2Connection]:
    sock = socket.create_connection(address, timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def _send(sock: socket.socket, data: bytes) -> None:
    """Send, unless the server has hung up (what it said before stays readable)."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def _events_until(
    sock: socket.socket, conn: h2.connection.H2Connection, done: type[h2.events.Event]
) -> tuple[list[h2.events.Event], bool]:
    """h2 events until one of type ``done`` or the server closes (bounded), and whether
    it closed."""
    events: list[h2.events.Event] = []
    for _ in range(10_000):
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return events, True
        if not data:
            return events, True
        events += conn.receive_data(data)
        _send(sock, conn.data_to_send())
        if any(isinstance(e, done) for e in events):
            return events, False
    raise AssertionError("no end in sight")


GET_HEALTH = [(":method", "GET"), (":path", "/health"), (":scheme", "http"), (":authority", "x")]


def test_http2_prior_knowledge_works_with_the_flag(http2: tuple[str, int]) -> None:
    sock, conn = _h2_client(http2)
    with sock:
        conn.send_headers(1, GET_HEALTH, end_stream=True)
        sock.sendall(conn.data_to_send())
        events, _ = _events_until(sock, conn, h2.events.StreamEnded)
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert (b":status", b"200") in response.headers
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert json.loads(body)["status"] == "ok"


def test_a_rapid_reset_burst_closes_the_connection(http2: tuple[str, int]) -> None:
    sock, conn = _h2_client(http2)
    with sock:
        # well under hypercorn's own bound (1000 streams per connection), in one burst
        for stream_id in range(1, 1000, 2):
            conn.send_headers(stream_id, GET_HEALTH, end_stream=True)
            conn.reset_stream(stream_id)
        _send(sock, conn.data_to_send())
        events, _ = _events_until(sock, conn, h2.events.ConnectionTerminated)
        # the server hangs up (a server that keeps the connection: socket.timeout)
        _read_until_closed(sock)
    goaway = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    # a reset may beat the GOAWAY to the client; when the GOAWAY arrives, it says why
    assert all(e.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM for e in goaway)
