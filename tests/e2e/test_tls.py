"""``saferouter serve --tls``: HTTPS from inside the process, with its own key.

Real gateway processes; clients are the real openai SDK and httpx, trusting only what a
test hands them (the served self-signed certificate, or a test CA): never CA defaults,
never verification turned off for a request that matters.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import signal
import socket
import sqlite3
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..processes import (
    CHAT,
    Served,
    cli,
    free_port,
    new_key,
    peer_certificate,
    serving,
    spki_sha256,
    trusting,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls") / "data"


@pytest.fixture(scope="module")
def api_key(data_dir: Path) -> str:
    return new_key(data_dir, "--name", "tls-user")


@pytest.fixture(scope="module")
def https(data_dir: Path, api_key: str) -> Iterator[Served]:
    with serving(data_dir, "--tls", "--http2") as served:
        yield served
    # none of what the tests threw at it (plain HTTP, junk, cut handshakes) crashed a task
    assert "Traceback" not in served.output and "Running on https://" in served.output


def _quote(client: httpx.Client) -> tuple[dict[str, object], str]:
    """A quote, and the SPKI hash of the certificate on the connection it came over."""
    response = client.post("/attestation/quote", json={"nonce": secrets.token_hex(32)})
    assert response.status_code == 200, response.text
    tls = response.extensions["network_stream"].get_extra_info("ssl_object")
    assert tls is not None, "the quote did not come over TLS"
    seen = x509.load_der_x509_certificate(tls.getpeercert(True))
    return response.json()["claims"], spki_sha256(seen)


def test_the_openai_sdk_chats_over_https_trusting_the_served_certificate(
    https: Served, api_key: str
) -> None:
    assert https.url.startswith("https://")
    with httpx.Client(verify=https.trust(), timeout=30) as http:
        sdk = openai.OpenAI(base_url=https.url + "/v1", api_key=api_key, http_client=http)
        answer = sdk.chat.completions.create(model="demo-mini", messages=CHAT["messages"])
        assert answer.choices[0].message.content
        chunks = list(
            sdk.chat.completions.create(model="demo-mini", messages=CHAT["messages"], stream=True)
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 2 and text  # streamed in pieces, over TLS


def test_a_client_trusting_nothing_refuses_the_self_signed_certificate(https: Served) -> None:
    # the other side of the test above: trust is what the test gave, not a default
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(https.url + "/health", verify=ssl.create_default_context(), timeout=10)


def test_the_quote_attests_the_key_on_its_own_connection(https: Served) -> None:
    with httpx.Client(base_url=https.url, verify=https.trust(), timeout=30) as client:
        claims, seen = _quote(client)
        status = client.get("/attestation").json()
    assert claims["tls_spki_sha256"] == seen == spki_sha256(https.certificate)
    assert status["tls_spki_sha256"] == seen
    assert status["latest_startup"]["tls_spki_sha256"] == seen  # the startup entry's spec


def test_http2_is_negotiated_by_alpn_with_http2_on(https: Served) -> None:
    with httpx.Client(verify=https.trust(), http2=True, timeout=30) as client:
        response = client.get(https.url + "/health")
    assert response.status_code == 200 and response.http_version == "HTTP/2"


def _alive(served: Served) -> None:
    assert served.process.poll() is None
    response = httpx.get(served.url + "/health", verify=served.trust(), timeout=10)
    assert response.status_code == 200


def _read_all(sock: socket.socket) -> bytes:
    received = b""
    while len(received) < 1 << 16:
        try:
            data = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        received += data
    return received


def test_plain_http_is_told_to_use_https(https: Served) -> None:
    response = httpx.get(https.url.replace("https://", "http://") + "/health", timeout=10)
    assert response.status_code == 400 and response.headers["connection"] == "close"
    error = response.json()["error"]
    assert error["code"] == "https_required" and "https://" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    _alive(https)


def test_broken_and_abandoned_handshakes_cost_nothing(https: Served) -> None:
    address = _address(https)
    with socket.create_connection(address, timeout=10) as sock:  # neither HTTP nor TLS
        sock.sendall(b"\x00" + secrets.token_bytes(600))
        assert _read_all(sock) == b""
    with socket.create_connection(address, timeout=10) as sock:  # a TLS record of junk
        sock.sendall(b"\x16\x03\x01\x00\x10" + secrets.token_bytes(16))
        _read_all(sock)
    hello = _client_hello()
    for cut in (1, 5, len(hello) // 2):  # a ClientHello cut short, then the client leaves
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(hello[:cut])
    _alive(https)
    with socket.create_connection(address, timeout=10) as sock:  # the whole handshake's
        sock.sendall(hello)  # first flight, then gone
        sock.recv(4096)
    _alive(https)


def _address(served: Served) -> tuple[str, int]:
    return ("127.0.0.1", int(served.url.rsplit(":", 1)[1]))


def _client_hello() -> bytes:
    """The first flight of a real TLS client (Python's), captured from a memory BIO."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="x")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def _stop(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    served.process.wait(timeout=20)


def test_restarts_keep_the_key_and_a_deleted_key_is_replaced(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serving(data_dir, "--tls") as first:
        spki = spki_sha256(first.certificate)
    assert oct((data_dir / "tls.key").stat().st_mode & 0o777) == "0o600"
    assert b"PRIVATE KEY" not in (data_dir / "tls.key").read_bytes()  # DER, and only there
    with serving(data_dir, "--tls") as second:
        assert spki_sha256(second.certificate) == spki
        with httpx.Client(base_url=second.url, verify=second.trust(), timeout=30) as client:
            assert _quote(client)[0]["tls_spki_sha256"] == spki
    (data_dir / "tls.key").unlink()
    with serving(data_dir, "--tls") as third:
        renewed = spki_sha256(third.certificate)
        with httpx.Client(base_url=third.url, verify=third.trust(), timeout=30) as client:
            claims, seen = _quote(client)
    assert renewed != spki and claims["tls_spki_sha256"] == seen == renewed


def _issue(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    extension: x509.ExtensionType,
    *,
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Name] | None = None,
    signing_key: ec.EllipticCurvePrivateKey | None = None,
) -> x509.Certificate:
    """A certificate for ``public_key``, signed by ``issuer`` (its key and name), or
    self-signed with ``signing_key``; valid from yesterday for a week."""
    signer, issuer_name = issuer or (signing_key, subject)
    assert signer is not None
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder(
            subject_name=subject,
            issuer_name=issuer_name,
            public_key=public_key,
            serial_number=x509.random_serial_number(),
            not_valid_before=now - dt.timedelta(days=1),
            not_valid_after=now + dt.timedelta(days=7),
        )
        .add_extension(extension, critical=False)
        .sign(signer, hashes.SHA256())
    )


def _test_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SafeRouter test CA")])
    ca = x509.BasicConstraints(ca=True, path_length=0)
    return key, _issue(name, key.public_key(), ca, signing_key=key)


def _sign(
    csr: x509.CertificateSigningRequest, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
) -> x509.Certificate:
    """What an ACME CA does with a request: certify its key for the names it asks for."""
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    return _issue(csr.subject, public_key, names, issuer=(ca[0], ca[1].subject))


def _pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def test_a_ca_certificate_for_the_csr_is_served_with_the_same_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    made = cli(data_dir, "tls", "csr", "--name", "127.0.0.1")
    assert made.returncode == 0, made.stderr
    csr = x509.load_pem_x509_csr(made.stdout.encode())
    assert csr.is_signature_valid
    spki = made.stderr.split("tls_spki_sha256 ", 1)[1].split()[0]
    assert spki == spki_sha256(csr)
    again = cli(data_dir, "tls", "csr", "--name", "127.0.0.1")  # the same key, not a new one
    assert spki_sha256(x509.load_pem_x509_csr(again.stdout.encode())) == spki
    ca = _test_ca()
    chain = tmp_path / "chain.pem"
    chain.write_bytes(_pem(_sign(csr, ca), ca[1]))
    with serving(data_dir, "--tls-cert", str(chain)) as served:
        assert served.certificate is not None and served.certificate.issuer == ca[1].subject
        with httpx.Client(base_url=served.url, verify=trusting(ca[1]), timeout=30) as client:
            claims, seen = _quote(client)  # trusting the CA alone, with hostname checks
    assert claims["tls_spki_sha256"] == seen == spki
    assert "SafeRouter on https://" in served.output


def _refused(data_dir: Path, *args: str) -> str:
    """`serve` with ``args`` must exit 2 before serving; returns what it said."""
    result = cli(data_dir, "serve", "--port", str(free_port()), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Running on" not in result.stdout + result.stderr
    assert "admin key" not in result.stdout  # refused before anything was written
    return result.stderr


def test_a_certificate_for_another_key_or_no_certificate_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    other = ec.generate_private_key(ec.SECP256R1())
    foreign = tmp_path / "foreign.pem"
    ca = _test_ca()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    foreign.write_bytes(_pem(_issue(name, other.public_key(), san, issuer=(ca[0], ca[1].subject))))
    said = _refused(data_dir, "--tls-cert", str(foreign))
    assert "not for this gateway's TLS key" in said and "tls csr" in said
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    assert "not a PEM certificate" in _refused(data_dir, "--tls-cert", str(garbage))
    assert "cannot read" in _refused(data_dir, "--tls-cert", str(tmp_path / "missing.pem"))
    assert _startup_entries(data_dir) == 0


def _startup_entries(data_dir: Path) -> int:
    if not (data_dir / "saferouter.db").exists():
        return 0
    with sqlite3.connect(data_dir / "saferouter.db") as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        if "log_entries" not in tables:
            return 0
        return int(db.execute("select count(*) from log_entries where log='startup'").fetchone()[0])


def test_two_workers_serve_the_same_certificate(tmp_path: Path) -> None:
    with serving(tmp_path / "data", "--tls", "--workers", "2") as served:
        context = served.trust()
        workers = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            # a new connection each time (the kernel spreads them over the workers);
            # each is verified against the one certificate fetched at start
            with httpx.Client(verify=context, http2=True, timeout=10) as client:
                response = client.get(served.url + "/health")
            assert response.http_version == "HTTP/1.1"  # no --http2: ALPN offers no h2
            workers.add(response.json()["worker"])
        assert len(workers) == 2, workers
        assert spki_sha256(peer_certificate(served.url)) == spki_sha256(served.certificate)
    assert os.getpid() not in workers


def test_the_connection_cap_makes_room_over_tls(tmp_path: Path) -> None:
    with serving(tmp_path / "data", "--tls", "--max-connections", "4") as served:
        address, context = _address(served), served.trust()
        hello = _client_hello()
        held: list[socket.socket] = []
        try:
            for _ in range(4):
                held.append(socket.create_connection(address, timeout=10))  # silent
                stuck = socket.create_connection(address, timeout=10)
                stuck.sendall(hello[: len(hello) // 2])  # mid-handshake
                held.append(stuck)
                idle = context.wrap_socket(  # handshake done, no request
                    socket.create_connection(address, timeout=10), server_hostname="127.0.0.1"
                )
                held.append(idle)
            # twelve connections at a cap of four: the quietest made room, and a new
            # client (handshake and all) is answered
            assert httpx.get(served.url + "/health", verify=context, timeout=30).status_code == 200
            assert _closed_by_peer(held, at_least=8, within_s=15) >= 8
        finally:
            for sock in held:
                sock.close()
        _alive(served)
    assert "Traceback" not in served.output


def _closed_by_peer(socks: list[socket.socket], *, at_least: int, within_s: float) -> int:
    closed: set[int] = set()
    deadline = time.monotonic() + within_s
    while len(closed) < at_least and time.monotonic() < deadline:
        for index, sock in enumerate(socks):
            if index in closed:
                continue
            sock.settimeout(0.05)
            try:
                if sock.recv(1024) == b"":
                    closed.add(index)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                closed.add(index)
    return len(closed)
