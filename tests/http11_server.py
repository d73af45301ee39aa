"""A small real HTTP/1.1 keep-alive server (h11 on trio sockets, plain TCP or TLS) that
counts connections, for the upstream connection pool's tests.

hypercorn hides its connections; this one reports what a pool's behaviour is made of:
how many connections were accepted and closed, and which request went on which
connection. What it answers is chosen by the request target:

* ``/ok?…`` — a small JSON body;
* ``/hold?…`` — the same, once the test sets ``release``;
* ``/slow`` — a chunked response: one chunk, then nothing until the client hangs up;
* ``/drop-if-reused`` — on a connection that already answered, close it without an
  answer (the server's keep-alive timeout firing just as the request arrives); else ok;
* ``/drop`` — close without an answer, always;
* ``/partial-if-reused`` — on a reused connection, half a status line, then close;
* ``/reset-if-reused`` — on a reused connection, reset it once the request head is in,
  its body unread (the client's writes of a large body then fail).

With ``close_when_idle`` the server closes every connection once its response is sent,
without ``Connection: close`` (an idle timeout of zero).
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import h11
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .servers import tcp_server

BODY = b'{"ok": true}'


@attrs.define
class Http11Server:
    url: str = ""
    accepted: int = 0
    closed: int = 0
    # (connection number, request target), in the order requests arrived
    requests: list[tuple[int, str]] = attrs.Factory(list)
    release: trio.Event = attrs.Factory(trio.Event)
    close_when_idle: bool = False

    def targets(self) -> list[str]:
        return [target for _, target in self.requests]


@asynccontextmanager
async def http11_server(
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Http11Server]:
    """Serve on 127.0.0.1:0 (TLS with ``ssl_context``); yields the server's record."""
    server = Http11Server()

    async def handle(tcp: trio.SocketStream) -> None:
        server.accepted += 1
        number = server.accepted
        stream: trio.abc.Stream = tcp
        if ssl_context is not None:
            stream = trio.SSLStream(tcp, ssl_context, server_side=True)
        try:
            await _serve(server, number, stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            pass  # the client went away
        finally:
            server.closed += 1
            await stream.aclose()

    async with tcp_server(handle) as port:
        server.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
        yield server


async def _serve(server: Http11Server, number: int, stream: trio.abc.Stream) -> None:
    conn = h11.Connection(h11.SERVER)
    answered = 0
    while True:
        request = await _next(conn, stream)
        if not isinstance(request, h11.Request):
            return  # the client closed an idle connection
        target = request.target.decode()
        if target == "/reset-if-reused" and answered:
            server.requests.append((number, target + " (head only)"))
            sock = getattr(stream, "socket", None)
            if sock is not None:  # close with unread data and no linger: an RST
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        while not isinstance(await _next(conn, stream), h11.EndOfMessage):
            pass
        server.requests.append((number, target))
        if target == "/drop" or (target == "/drop-if-reused" and answered):
            return
        if target == "/partial-if-reused" and answered:
            await stream.send_all(b"HTTP/1.1 20")
            return
        if target.startswith("/hold"):
            await server.release.wait()
        if target == "/slow":
            await stream.send_all(conn.send(h11.Response(status_code=200, headers=[])) or b"")
            await stream.send_all(conn.send(h11.Data(data=b"data: first\n\n")) or b"")
            while await stream.receive_some(65536):
                pass  # nothing more, until the client hangs up
            return
        headers = [("content-type", "application/json"), ("content-length", str(len(BODY)))]
        await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)) or b"")
        await stream.send_all(conn.send(h11.Data(data=BODY)) or b"")
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
        answered += 1
        if server.close_when_idle:
            return
        conn.start_next_cycle()


async def _next(conn: h11.Connection, stream: trio.abc.Stream) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(bytes(await stream.receive_some(65536)))


def tls_contexts(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and a
    client context that trusts only that certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client
