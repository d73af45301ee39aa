"""The worker shell's TLS layer in process (``http_worker.serve_worker`` with a TLS
context), against a minimal ASGI app that reports the scope it was given."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app

from saferouter.http_worker import ServeOptions, serve_worker
from saferouter.tls.certificates import TlsCredentials, self_signed
from saferouter.tls.context import server_context

from ..recording_proxy import serve_lifespan


async def scope_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every request with its scope's scheme and HTTP version."""
    if scope["type"] == "lifespan":  # hypercorn's lifespan must be answered
        await serve_lifespan(receive, send)
        return
    body = json.dumps({"scheme": scope["scheme"], "http_version": scope["http_version"]})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body.encode()})


@asynccontextmanager
async def tls_worker(*, http2: bool, handshake_timeout_s: float) -> AsyncIterator[tuple[int, str]]:
    """The worker serving ``scope_app`` over TLS on 127.0.0.1; yields its port and the
    PEM of the certificate it presents."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, host="127.0.0.1", now=dt.datetime.now(dt.UTC))
    context = server_context(TlsCredentials.of(key, [cert]), http2=http2)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = Config()
    config.accesslog = None
    config.graceful_timeout = 1.0
    options = ServeOptions(
        max_connections=16, http2=http2, tls=context, handshake_timeout_s=handshake_timeout_s
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(
                serve_worker,
                wrap_app(scope_app, config.wsgi_max_body_size, None),  # type: ignore[arg-type]
                config,
                Sockets([], [sock], []),
                options,
                shutdown_trigger=shutdown.wait,
            )
        )
        try:
            yield sock.getsockname()[1], cert.public_bytes(serialization.Encoding.PEM).decode()
        finally:
            shutdown.set()
    sock.close()


async def test_the_scope_says_https_and_alpn_picks_the_protocol() -> None:
    for http2, version in ((True, "2"), (False, "1.1")):
        async with tls_worker(http2=http2, handshake_timeout_s=10) as (port, pem):
            trust = ssl.create_default_context(cadata=pem)
            async with httpx.AsyncClient(verify=trust, http2=True, timeout=30) as client:
                response = await client.get(f"https://127.0.0.1:{port}/")
        assert response.json() == {"scheme": "https", "http_version": version}


async def test_a_handshake_that_stalls_is_cut_at_its_deadline() -> None:
    async with tls_worker(http2=False, handshake_timeout_s=0.5) as (port, pem):
        stalled = await trio.open_tcp_stream("127.0.0.1", port)
        await stalled.send_all(b"\x16\x03\x01\x02\x00")  # a ClientHello's header, no body
        started = trio.current_time()
        with trio.fail_after(30):  # generous: the bound is 0.5 s, the machine is shared
            assert await stalled.receive_some(1024) == b""  # closed by the server
        # not the keep-alive timeout (75 s in serve) nor hypercorn's 60 s handshake one
        assert trio.current_time() - started < 20
        await stalled.aclose()
        trust = ssl.create_default_context(cadata=pem)
        async with httpx.AsyncClient(verify=trust, timeout=30) as client:
            assert (await client.get(f"https://127.0.0.1:{port}/")).status_code == 200
