"""A real TLS-terminating proxy with a certificate of its own: the attack channel
binding must catch (a CDN, a corporate middlebox, an operator's load balancer).

It accepts TLS on 127.0.0.1 with its own self-signed key, and only once a client has sent
a byte opens a connection to the target (TLS, unverified, when the target is https) and
relays both ways. It counts what clients sent and how often it reached the target, so a
test can show that a refused client sent nothing and nothing reached the gateway.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import trio
from cryptography import x509

from .http11_server import tls_contexts
from .processes import spki_sha256

_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


@attrs.define
class Proxy:
    url: str = ""
    spki_sha256: str = ""  # of the proxy's own certificate
    handshakes: int = 0
    bytes_from_clients: int = 0
    target_connections: int = 0


@asynccontextmanager
async def tls_terminating_proxy(target: str) -> AsyncIterator[Proxy]:
    """Serve https://127.0.0.1:<port> in front of ``target`` (an http or https URL)."""
    scheme, _, rest = target.partition("://")
    host, _, port = rest.rstrip("/").rpartition(":")
    state = Proxy()
    with tempfile.TemporaryDirectory() as folder:
        server_context, _ = tls_contexts(Path(folder))
        cert = x509.load_pem_x509_certificate((Path(folder) / "cert.pem").read_bytes())
    state.spki_sha256 = spki_sha256(cert)
    client_context = ssl.create_default_context()
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE

    async def relay(source: trio.abc.Stream, sink: trio.abc.Stream, *, inbound: bool) -> None:
        try:
            while data := await source.receive_some(65536):
                if inbound:
                    state.bytes_from_clients += len(data)
                await sink.send_all(data)
        except _ERRORS:
            pass

    async def handle(raw: trio.SocketStream) -> None:
        client = trio.SSLStream(raw, server_context, server_side=True)
        try:
            await client.do_handshake()
            state.handshakes += 1
            first = await client.receive_some(65536)
            if not first:
                return
            state.bytes_from_clients += len(first)
            upstream: trio.abc.Stream = await trio.open_tcp_stream(host, int(port))
            if scheme == "https":
                upstream = trio.SSLStream(upstream, client_context, server_hostname=host)
            state.target_connections += 1
            async with upstream:
                await upstream.send_all(first)
                async with trio.open_nursery() as nursery:

                    async def one_way(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
                        await relay(source, sink, inbound=source is client)
                        nursery.cancel_scope.cancel()  # either side done: the connection is

                    nursery.start_soon(one_way, client, upstream)
                    nursery.start_soon(one_way, upstream, client)
        except _ERRORS:
            pass
        finally:
            await trio.aclose_forcefully(client)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        state.url = f"https://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        try:
            yield state
        finally:
            nursery.cancel_scope.cancel()
