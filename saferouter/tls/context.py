"""The server's ``ssl.SSLContext``, loaded without a plaintext key file on disk; and
the operator's ``--tls-cert`` file, read.

``ssl.SSLContext.load_cert_chain`` reads only from paths. The key is unsealed in
memory, so it is written to an anonymous memory file (``memfd_create(2)``: no name in
any filesystem, gone when its last descriptor closes) and read through
``/proc/self/fd/N``, and the descriptor is closed as soon as OpenSSL has parsed it.
Chosen over a temporary file (even on tmpfs, a name another process of the same user
could open, and left behind by a crash) and over a key encrypted to disk with a
password (the password would sit next to it in the same memory anyway).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..errors import ConfigError, ParseError
from .certificates import TlsCredentials, parse_chain

# TLS 1.2 suites with forward secrecy and an AEAD, as HTTP/2 requires (RFC 9113 §9.2.2);
# TLS 1.3's suites are all of that kind and are not affected by this list.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def alpn_protocols(*, http2: bool) -> list[str]:
    """What the server offers in ALPN (RFC 7301): HTTP/2 only when it is switched on."""
    return ["h2", "http/1.1"] if http2 else ["http/1.1"]


def server_context(credentials: TlsCredentials, *, http2: bool) -> ssl.SSLContext:
    """A server context presenting ``credentials`` (TLS 1.2 or later, no compression, as
    HTTP/2 requires: RFC 9113 §9.2). ``ConfigError`` if OpenSSL refuses the chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_ciphers(TLS12_CIPHERS)
    context.set_alpn_protocols(alpn_protocols(http2=http2))
    key_pem = credentials.private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.memfd_create("saferouter-tls", os.MFD_CLOEXEC)
    try:
        # one file holding the chain, then the key: load_cert_chain reads both from it
        with os.fdopen(descriptor, "wb", closefd=False) as memory:
            memory.write(credentials.chain_pem + key_pem)
        context.load_cert_chain(f"/proc/self/fd/{descriptor}")
    except ssl.SSLError as exc:
        raise ConfigError(f"the TLS certificate chain cannot be served: {exc}") from None
    finally:
        os.close(descriptor)
    return context


def read_chain_file(path: Path) -> list[x509.Certificate]:
    """The chain in ``--tls-cert`` (PEM, leaf first); ``ConfigError`` naming the file if
    it cannot be read or holds no certificate."""
    try:
        return parse_chain(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS certificate {path}: {exc.strerror}") from None
    except ParseError as exc:
        raise ConfigError(f"the TLS certificate {path}: {exc}") from None
