"""The gateway as a separate process, as a user runs it (`python -m saferouter.cli`)."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

CLI = [sys.executable, "-m", "saferouter.cli"]
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )


def new_key(data_dir: Path, *args: str) -> str:
    """`keys create` with these arguments; returns the secret."""
    result = cli(data_dir, "keys", "create", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_BASE_URL")) and not k.startswith("SAFEROUTER_")
    }


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    output: str = ""
    # with --tls: the certificate the gateway presented once it was up
    certificate: x509.Certificate | None = None

    def trust(self) -> ssl.SSLContext:
        """A client context trusting exactly the certificate served at start (a
        self-signed one; CA trust plays no part)."""
        assert self.certificate is not None, "not served with --tls"
        return trusting(self.certificate)


def peer_certificate(url: str) -> x509.Certificate:
    """The leaf certificate an https:// gateway presents (fetched unverified: the
    caller decides whether to trust it, e.g. against the quote's claim)."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, int(port)), timeout=10) as sock,
        context.wrap_socket(sock) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def trusting(*certificates: x509.Certificate) -> ssl.SSLContext:
    """A client context whose only trust anchors are ``certificates``."""
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)
    return ssl.create_default_context(cadata=pem)


def spki_sha256(certificate: x509.Certificate | x509.CertificateSigningRequest | None) -> str:
    """Hex SHA-256 of a certificate's (or request's) DER SubjectPublicKeyInfo, computed
    here, not by the gateway's code: what ``tls_spki_sha256`` must equal."""
    assert certificate is not None
    return hashlib.sha256(
        certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).hexdigest()


@contextmanager
def serving(
    data_dir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    port: int | None = None,
    command: Sequence[str] = CLI,
    cwd: Path | None = None,
) -> Iterator[Served]:
    """`saferouter serve` in a child process until the block ends (then SIGTERM);
    ``preexec_fn`` runs in the child before it starts (e.g. to set resource limits);
    ``port`` to serve again at the same URL (default: a free one); ``command``: the
    ``saferouter`` to run (default: this interpreter's, by module), in ``cwd``.
    With ``--tls`` or ``--tls-cert`` among ``extra``, the URL is https:// and
    ``Served.certificate`` is what the gateway presented."""
    tls = "--tls" in extra or "--tls-cert" in extra
    port = port or free_port()
    process = subprocess.Popen(
        [*command, "serve", "--data-dir", str(data_dir), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**clean_env(), **(env or {})},
        preexec_fn=preexec_fn,
        cwd=cwd,
    )
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                # up is all this asks; whom to trust is each test's business
                if httpx.get(url + "/ready", timeout=1, verify=not tls).status_code == 200:
                    break
            except httpx.TransportError:
                if process.poll() is not None:  # it exited: no use waiting
                    raise AssertionError(process.communicate()[0]) from None
                time.sleep(0.1)
        else:
            process.kill()
            raise AssertionError(process.communicate()[0])
        served = Served(url, process, certificate=peer_certificate(url) if tls else None)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            output = process.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    served.output = output
