"""The server side of one TLS connection's start: what ``http_worker`` runs on each
accepted socket of a ``--tls`` server before any HTTP.

Everything that can go wrong here is the client's doing and ends the connection
quietly, within ``timeout_s``: a failed or abandoned handshake, bytes that are not TLS,
or a connection closed meanwhile to make room under the cap. One case gets an answer:
a client speaking plain HTTP to the TLS port (``curl http://`` on an https:// gateway)
is told, in its own protocol and in OpenAI's error shape, to use https:// — the way
web servers answer it, rather than a bare reset that reads like a crash.
"""

from __future__ import annotations

import socket
import ssl

import trio

from ..connections import TrackedStream
from ..errors import InvalidRequest

TLS_HANDSHAKE_RECORD = 0x16  # the first byte of every ClientHello (RFC 8446 §5.1)
MAX_PLAIN_REQUEST_BYTES = 1 << 16


async def start_tls(
    stream: TrackedStream, context: ssl.SSLContext, *, timeout_s: float
) -> trio.SSLStream[TrackedStream] | None:
    """``stream`` (which has bytes to read) after a completed server handshake; ``None``
    if it did not complete within ``timeout_s`` (the caller closes ``stream``)."""
    with trio.move_on_after(timeout_s):
        try:
            first = await stream.socket.recv(1, socket.MSG_PEEK)
        except (OSError, trio.ClosedResourceError):
            return None  # reset, or closed to make room
        if first[:1].isupper():  # an HTTP method: plain HTTP to the TLS port
            await _answer_plain_http(stream)
            return None
        if first != bytes([TLS_HANDSHAKE_RECORD]):
            return None  # the client left (b""), or it speaks something else
        # https_compatible: closing sends no close_notify (RFC 9110 §9.8 lets HTTPS do
        # without), so a close never waits on a client that has stopped reading.
        secure = trio.SSLStream(stream, context, server_side=True, https_compatible=True)
        try:
            await secure.do_handshake()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None  # a failed handshake, the client left, or closed to make room
        return secure
    return None


async def _answer_plain_http(stream: TrackedStream) -> None:
    error = InvalidRequest(
        "This server speaks HTTPS only: use an https:// URL.",
        code="https_required",
    )
    body = error.body()
    head = (
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    )
    try:
        # read what the request sent so far: closing a socket with unread bytes resets
        # the connection, and a reset can discard the answer before the client reads it
        await stream.receive_some(MAX_PLAIN_REQUEST_BYTES)
        await stream.send_all(head + body)
        await stream.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
