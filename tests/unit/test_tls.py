"""The TLS key, certificates and server context: values in, values out (real keys,
real OpenSSL handshakes in memory)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from saferouter.attestation.identity import (
    IDENTITY,
    TLS_KEY,
    KeyKind,
    load_or_create_key,
)
from saferouter.config import load_settings
from saferouter.datadir import write_private_file
from saferouter.errors import ConfigError, KeyFileError, ParseError
from saferouter.tee.seal import DemoKeySource, Sealer
from saferouter.tls.certificates import (
    TlsCredentials,
    credentials,
    parse_chain,
    parse_server_name,
    self_signed,
    signing_request,
    spki_sha256,
    subject_names,
    validate_chain,
)
from saferouter.tls.context import read_chain_file, server_context

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def _p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("host", "names"),
    [
        ("127.0.0.1", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        ("::1", [x509.IPAddress(ipaddress.ip_address("::1"))]),
        ("[::1]", [x509.IPAddress(ipaddress.ip_address("::1"))]),
        ("gw.example.org", [x509.DNSName("gw.example.org")]),
        (
            "0.0.0.0",
            [
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
                x509.DNSName("localhost"),
            ],
        ),
    ],
)
def test_subject_names_for_a_listen_host(host: str, names: list[x509.GeneralName]) -> None:
    assert subject_names(host) == names


def test_the_self_signed_certificate_is_a_leaf_for_the_key_and_host() -> None:
    key = _p256()
    cert = self_signed(key, host="gw.example.org", now=NOW)
    cert.verify_directly_issued_by(cert)  # self-signed, with this key
    assert spki_sha256(cert.public_key()) == spki_sha256(key.public_key())  # type: ignore[arg-type]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw.example.org"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_before_utc < NOW < cert.not_valid_after_utc


def test_spki_sha256_is_the_hash_of_the_der_subject_public_key_info() -> None:
    key = _p256()
    cert = self_signed(key, host="127.0.0.1", now=NOW)
    # the SPKI is the certificate's own bytes: find them in its DER encoding
    der_spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert der_spki in cert.public_bytes(serialization.Encoding.DER)
    assert len(spki_sha256(key.public_key())) == 64
    assert spki_sha256(key.public_key()) != spki_sha256(_p256().public_key())


def test_a_signing_request_is_for_the_key_and_the_name() -> None:
    key = _p256()
    csr = signing_request(key, name="10.0.0.7")
    assert csr.is_signature_valid
    assert spki_sha256(csr.public_key()) == spki_sha256(key.public_key())  # type: ignore[arg-type]
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]


def test_a_chain_is_served_only_for_the_key_and_while_valid() -> None:
    key = _p256()
    ours = self_signed(key, host="127.0.0.1", now=NOW)
    validate_chain([ours], key, now=NOW)
    with pytest.raises(ConfigError, match="not for this gateway's TLS key"):
        validate_chain([self_signed(_p256(), host="127.0.0.1", now=NOW)], key, now=NOW)
    with pytest.raises(ConfigError, match="not for this gateway's TLS key"):
        other = ed25519.Ed25519PrivateKey.generate()
        validate_chain([_signed_by(other)], key, now=NOW)
    with pytest.raises(ConfigError, match="not valid now"):
        validate_chain([ours], key, now=NOW + dt.timedelta(days=400))
    served = credentials(key, host="127.0.0.1", chain=[ours], now=NOW)
    assert served.chain_pem == ours.public_bytes(serialization.Encoding.PEM)
    assert served.spki_sha256 == spki_sha256(key.public_key())


def _signed_by(signer: ed25519.Ed25519PrivateKey) -> x509.Certificate:
    """A certificate for an Ed25519 key: a key type TLS_KEY never is."""
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "other")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(signer, None)
    )


@pytest.mark.parametrize(
    "text", [b"", b"hello", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_a_chain_that_is_not_pem_certificates_is_a_parse_error(text: bytes) -> None:
    with pytest.raises(ParseError):
        parse_chain(text)


def test_reading_a_chain_file_says_which_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*missing\.pem"):
        read_chain_file(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_bytes(b"junk")
    with pytest.raises(ConfigError, match=r"junk\.pem: not a PEM certificate"):
        read_chain_file(tmp_path / "junk.pem")
    cert = self_signed(_p256(), host="127.0.0.1", now=NOW)
    (tmp_path / "ok.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert read_chain_file(tmp_path / "ok.pem") == [cert]


def test_both_keys_share_one_load_or_create(tmp_path: Path) -> None:
    tls = load_or_create_key(TLS_KEY, tmp_path)
    identity = load_or_create_key(IDENTITY, tmp_path)
    assert spki_sha256(load_or_create_key(TLS_KEY, tmp_path).public_key()) == spki_sha256(
        tls.public_key()
    )
    assert load_or_create_key(IDENTITY, tmp_path).public_key() == identity.public_key()
    assert {p.name for p in tmp_path.iterdir()} == {"tls.key", "identity.key"}
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    assert len((tmp_path / "identity.key").read_bytes()) == 32  # as older builds wrote it


def test_a_sealed_tls_key_opens_only_under_its_measurement(tmp_path: Path) -> None:
    def sealer(measurement: bytes) -> Sealer:
        return Sealer(DemoKeySource(tmp_path / "secret", measurement), measurement=measurement)

    key = load_or_create_key(TLS_KEY, tmp_path / "data", sealer(b"A" * 48))
    sealed = (tmp_path / "data" / "tls.sealed").read_bytes()
    assert TLS_KEY.encode(key) not in sealed
    again = load_or_create_key(TLS_KEY, tmp_path / "data", sealer(b"A" * 48))
    assert spki_sha256(again.public_key()) == spki_sha256(key.public_key())
    with pytest.raises(KeyFileError, match="sealed under another measurement"):
        load_or_create_key(TLS_KEY, tmp_path / "data", sealer(b"B" * 48))


def test_a_key_made_meanwhile_by_another_process_is_the_key(tmp_path: Path) -> None:
    winner = _p256()

    def generate_too_late() -> ec.EllipticCurvePrivateKey:
        # another process writes its key while this one generates its own
        write_private_file(TLS_KEY.path(tmp_path, sealed=False), TLS_KEY.encode(winner))
        return _p256()

    racing = KeyKind(
        name="tls", generate=generate_too_late, encode=TLS_KEY.encode, decode=TLS_KEY.decode
    )
    key = load_or_create_key(racing, tmp_path)
    assert spki_sha256(key.public_key()) == spki_sha256(winner.public_key())


def test_a_tls_key_file_of_another_kind_does_not_load(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP384R1())
    write_private_file(TLS_KEY.path(tmp_path, sealed=False), TLS_KEY.encode(other))
    with pytest.raises(KeyFileError, match="P-256"):
        load_or_create_key(TLS_KEY, tmp_path)


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> ssl.SSLObject:
    """A real TLS handshake between two contexts, in memory; the client's end."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    near = client.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    far = server.wrap_bio(s_in, s_out, server_side=True)
    pending = [near, far]
    for _ in range(10):
        for end in list(pending):
            try:
                end.do_handshake()
                pending.remove(end)
            except ssl.SSLWantReadError:
                continue
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if not pending:
            return near
    raise AssertionError("no handshake")


@pytest.mark.parametrize(("http2", "alpn"), [(True, "h2"), (False, "http/1.1")])
def test_the_server_context_serves_the_key_from_memory(http2: bool, alpn: str) -> None:
    key = _p256()
    cert = self_signed(key, host="127.0.0.1", now=dt.datetime.now(dt.UTC))
    fds = set(os.listdir("/proc/self/fd"))
    context = server_context(TlsCredentials.of(key, [cert]), http2=http2)
    assert set(os.listdir("/proc/self/fd")) == fds  # the memory file is closed
    client = ssl.create_default_context(
        cadata=cert.public_bytes(serialization.Encoding.PEM).decode()
    )
    client.set_alpn_protocols(["h2", "http/1.1"])
    near = _handshake(context, client)
    assert near.selected_alpn_protocol() == alpn
    peer = x509.load_der_x509_certificate(near.getpeercert(binary_form=True) or b"")
    assert spki_sha256(peer.public_key()) == spki_sha256(key.public_key())  # type: ignore[arg-type]


def test_openssl_refusing_a_chain_is_a_config_error() -> None:
    cert = self_signed(_p256(), host="127.0.0.1", now=NOW)
    mismatched = TlsCredentials(
        key_pkcs8=TLS_KEY.encode(_p256()),
        chain_pem=cert.public_bytes(serialization.Encoding.PEM),
    )
    with pytest.raises(ConfigError, match="cannot be served"):
        server_context(mismatched, http2=False)


def test_the_credentials_repr_holds_no_key() -> None:
    key = _p256()
    served = TlsCredentials.of(key, [self_signed(key, host="127.0.0.1", now=NOW)])
    assert TLS_KEY.encode(key).hex() not in repr(served) and "key_pkcs8" not in repr(served)


def test_tls_settings_from_flags_and_environment(tmp_path: Path) -> None:
    assert load_settings({}).tls is False and load_settings({}).tls_cert is None
    assert load_settings({"SAFEROUTER_TLS": "1"}).tls is True
    assert load_settings({"SAFEROUTER_TLS": "1"}, tls=False).tls is False  # the flag wins
    # a certificate to serve means TLS
    cert = load_settings({"SAFEROUTER_TLS_CERT": str(tmp_path / "c.pem")})
    assert cert.tls is True and cert.tls_cert == tmp_path / "c.pem"
    assert load_settings({}, tls_cert="~/c.pem").tls_cert == Path.home() / "c.pem"
    with pytest.raises(ConfigError, match="SAFEROUTER_TLS must be on or off"):
        load_settings({"SAFEROUTER_TLS": "sometimes"})


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("gw.example.org", "gw.example.org"),
        ("gw.example.org.", "gw.example.org"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("10.0.0.7", "10.0.0.7"),
        ("::1", "::1"),
        ("localhost", "localhost"),
    ],
)
def test_a_server_name_is_an_ip_address_or_an_ldh_dns_name(text: str, name: str) -> None:
    assert parse_server_name(text) == name


@pytest.mark.parametrize(
    "text", ["", "bad name", "bücher.example", "-a.example", "a..example", "a" * 64 + ".org"]
)
def test_anything_else_is_not_a_server_name(text: str) -> None:
    with pytest.raises(ParseError):
        parse_server_name(text)
