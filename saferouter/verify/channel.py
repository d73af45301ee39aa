"""The TLS channel a verifier talks over: the attested key's hash, and connections pinned
to it.

A quote's ``tls_spki_sha256`` claim is the SHA-256 of the DER SubjectPublicKeyInfo of the
certificate the gateway serves. ``saferouter verify`` reads the peer certificate of the
very connection the quote came over (:func:`peer_spki_sha256`); the client of
:mod:`saferouter.client` then only ever talks to that key. The trust is the pin, not a
CA: the first connection does not validate the chain (a self-signed certificate is
accepted *because* its key is attested), unless a CA file is asked for as well.

The pin sits in the connection setup, not at a call site: :class:`PinnedBackend` is an
httpcore network backend whose streams check the peer's key right after the TLS
handshake and refuse every write before that check passed — so a connection to any
other key (a TLS-terminating proxy, a restarted gateway with a new key) is closed before
one byte of a request leaves, and a plain-TCP stream from it can carry nothing at all.
"""

from __future__ import annotations

import hashlib
import ssl
import typing
from collections.abc import Iterable

import httpcore
import httpx
import sniffio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..errors import VerificationError

_Options = Iterable[typing.Any]  # httpcore's SOCKET_OPTION, passed through


class TLSKeyMismatch(VerificationError):
    """The server presented a TLS key other than the attested one (or no TLS at all)."""


def spki_sha256(certificate_der: bytes) -> str:
    """Hex SHA-256 of a DER certificate's SubjectPublicKeyInfo (what quotes attest)."""
    certificate = x509.load_der_x509_certificate(certificate_der)
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def peer_spki_sha256(ssl_object: typing.Any) -> str:
    """The SPKI hash of the certificate the peer of this TLS connection presented.

    ``ssl_object`` is what an httpcore stream answers to ``get_extra_info("ssl_object")``
    (an ``ssl.SSLObject``, or the C object under an ``ssl.SSLSocket``: both take the
    binary flag positionally, and both give the certificate even when the chain was not
    validated)."""
    if ssl_object is None:
        raise TLSKeyMismatch("the connection is not TLS")
    der = ssl_object.getpeercert(True)
    if not der:
        raise TLSKeyMismatch("the server presented no certificate")
    return spki_sha256(der)


def tls_context(cafile: str | None = None) -> ssl.SSLContext:
    """The client context: with ``cafile``, the chain and host name are validated too;
    without, any certificate is read and the pin (or the quote) decides."""
    if cafile is not None:
        return ssl.create_default_context(cafile=cafile)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _check(stream: httpcore.NetworkStream | httpcore.AsyncNetworkStream, pin: str) -> None:
    presented = peer_spki_sha256(stream.get_extra_info("ssl_object"))
    if presented != pin:
        raise TLSKeyMismatch(
            f"the server's TLS key {presented[:16]}… is not the attested key {pin[:16]}… "
            "(a TLS-terminating proxy, or a gateway restarted with a new key): "
            "nothing was sent; verify the gateway again"
        )


class _PinnedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, pin: str, *, checked: bool) -> None:
        self._inner, self._pin, self._checked = inner, pin, checked

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not self._checked:  # a plain-TCP stream never reached a pinned handshake
            raise TLSKeyMismatch("a pinned client sends only over TLS to the attested key")
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, timeout)
        try:
            _check(tls, self._pin)
        except BaseException:
            tls.close()
            raise
        return _PinnedStream(tls, self._pin, checked=True)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _AsyncPinnedStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, pin: str, *, checked: bool) -> None:
        self._inner, self._pin, self._checked = inner, pin, checked

    # httpcore's interface takes `timeout` as a parameter, so ours do too
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not self._checked:
            raise TLSKeyMismatch("a pinned client sends only over TLS to the attested key")
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        try:
            _check(tls, self._pin)
        except BaseException:
            await tls.aclose()
            raise
        return _AsyncPinnedStream(tls, self._pin, checked=True)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend whose every stream is pinned to ``spki_sha256``."""

    def __init__(self, spki_sha256: str) -> None:
        self._pin = spki_sha256
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: _Options | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _PinnedStream(stream, self._pin, checked=False)


class AsyncPinnedBackend(httpcore.AsyncNetworkBackend):
    """The async twin: trio's backend under trio, anyio's otherwise (as httpcore picks)."""

    def __init__(self, spki_sha256: str) -> None:
        self._pin = spki_sha256

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: _Options | None = None,
    ) -> httpcore.AsyncNetworkStream:
        inner: httpcore.AsyncNetworkBackend = (
            httpcore.TrioBackend()
            if sniffio.current_async_library() == "trio"
            else httpcore.AnyIOBackend()
        )
        stream = await inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _AsyncPinnedStream(stream, self._pin, checked=False)

    async def sleep(self, seconds: float) -> None:
        if sniffio.current_async_library() == "trio":
            await httpcore.TrioBackend().sleep(seconds)
        else:
            await httpcore.AnyIOBackend().sleep(seconds)


# httpx's own default limits (httpx._config.DEFAULT_LIMITS), for the pools below
POOL_LIMITS: dict[str, typing.Any] = {
    "max_connections": 100,
    "max_keepalive_connections": 20,
    "keepalive_expiry": 5.0,
}


# httpx takes no network backend, so the transports below keep httpx's request and
# error handling and swap in a pool built on the pinned backend (same limits as httpx's).
def pinned_transport(spki_sha256: str, *, cafile: str | None = None) -> httpx.HTTPTransport:
    """An httpx transport that talks only TLS, only to the key ``spki_sha256``."""
    context = tls_context(cafile)
    transport = httpx.HTTPTransport(verify=context)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=context, network_backend=PinnedBackend(spki_sha256), **POOL_LIMITS
    )
    return transport


def async_pinned_transport(
    spki_sha256: str, *, cafile: str | None = None
) -> httpx.AsyncHTTPTransport:
    """The async twin of :func:`pinned_transport`."""
    context = tls_context(cafile)
    transport = httpx.AsyncHTTPTransport(verify=context)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=context, network_backend=AsyncPinnedBackend(spki_sha256), **POOL_LIMITS
    )
    return transport
