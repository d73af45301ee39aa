"""HTTP/2 flow control under ``--http2``: a client whose window stays shut is cut off by
the send timeout like an HTTP/1 client that stops reading (test_slow_reader.py), and a
client that opens its window as it reads gets a stream far larger than the window.

hypercorn 0.18 alone failed the first: with the window shut its send task popped the
stream's buffer empty-handed, which let every ``send`` of the app through, so the
response piled up in memory, a core spun, and the send timeout never fired.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import trio

from ..processes import Served, new_key, serving
from ..servers import FakeUpstream, fake_upstream, write_catalog

SEND_TIMEOUT_S = 1
WITHIN_S = 60  # generous: a loaded 2-core machine


@contextmanager
def _gateway(upstream: FakeUpstream, tmp_path: Path) -> Iterator[tuple[Served, str]]:
    catalog = write_catalog(tmp_path / "catalog.toml", upstream.url)
    data = tmp_path / "data"
    key = new_key(data, "--name", "h2", "--credits", "50")
    env = {"FAKE_API_KEY": "k", "SAFEROUTER_SEND_TIMEOUT_S": str(SEND_TIMEOUT_S)}
    with serving(data, "--config", str(catalog), "--http2", env=env) as served:
        yield served, key


def _open_stream(
    served: Served, key: str, model: str
) -> tuple[socket.socket, h2.connection.H2Connection]:
    """A prior-knowledge HTTP/2 connection with one streamed chat request sent on it."""
    sock = socket.create_connection(("127.0.0.1", int(served.url.rsplit(":", 1)[1])))
    sock.settimeout(WITHIN_S)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    body = json.dumps(
        {"model": model, "stream": True, "messages": [{"role": "user", "content": "h2"}]}
    ).encode()
    headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":scheme", "http"),
        (":authority", "gateway"),
        ("authorization", f"Bearer {key}"),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
    ]
    conn.send_headers(1, headers)
    conn.send_data(1, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    return sock, conn


def _read_without_window_updates(sock: socket.socket) -> None:
    """Take every byte off the socket (TCP never backs up) but acknowledge none of it."""
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, TimeoutError):
        pass


def _read_stream(sock: socket.socket, conn: h2.connection.H2Connection) -> bytes:
    """Stream 1's body, opening the window for every byte read."""
    body = b""
    while True:
        data = sock.recv(65536)
        assert data, "the gateway closed the connection mid-stream"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                return body
        sock.sendall(conn.data_to_send())


def _last_activity(data_dir: Path) -> sqlite3.Row:
    db = sqlite3.connect(data_dir / "saferouter.db")
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM activity ORDER BY rowid DESC LIMIT 1").fetchone()
    finally:
        db.close()


async def test_a_client_whose_window_stays_shut_is_cut_off_and_billed(tmp_path: Path) -> None:
    async with fake_upstream() as upstream:
        with _gateway(upstream, tmp_path) as (served, key):
            # streams as fast as it is taken, ~forever: only the gateway can end it
            sock, _ = _open_stream(served, key, "fake/slow:100000000:0")
            with sock:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trio.to_thread.run_sync, _read_without_window_updates, sock)
                    with trio.fail_after(WITHIN_S):
                        while "cancelled" not in upstream.events:
                            await trio.sleep(0.05)
                    sock.shutdown(socket.SHUT_RDWR)
    activity = _last_activity(tmp_path / "data")
    assert (activity["status"], activity["outcome"]) == (499, "client_stalled")
    assert activity["error_type"] == "client_send_timeout"


async def test_a_stream_larger_than_the_window_arrives_whole(tmp_path: Path) -> None:
    async with fake_upstream() as upstream:
        with _gateway(upstream, tmp_path) as (served, key):
            sock, conn = _open_stream(served, key, "fake/slow:3000:0")
            with sock:
                body = await trio.to_thread.run_sync(_read_stream, sock, conn)
    assert len(body) > 65_535  # past the initial window: parked and woken many times
    assert body.endswith(b"data: [DONE]\n\n")
    assert body.count(b'"content": "2999 "') == 1
