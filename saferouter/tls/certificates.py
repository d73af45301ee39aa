"""The certificate ``serve --tls`` presents, from the process's TLS key (pure: the key,
the host and the time are parameters; nothing here touches a file or the clock).

What a client checks is the key, not the certificate: the SHA-256 of the certificate's
SubjectPublicKeyInfo is a claim of every quote (``tls_spki_sha256``), so a verifier
pins the key the attested process holds. So the default certificate is self-signed and
made afresh at every start from the persistent key (its SPKI never changes while the
key lives); an operator who wants browsers to trust it gets a CA to sign a request for
that same key (:func:`signing_request`, ``saferouter tls csr``) and serves the result
(``--tls-cert``), which is refused unless it is for the process's key
(:func:`validate_chain`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import ConfigError, ParseError

SELF_SIGNED_VALIDITY = dt.timedelta(days=365)
# a client whose clock is a little behind must not see a certificate "not yet valid"
CLOCK_SKEW = dt.timedelta(hours=1)
WILDCARD_HOSTS = ("", "0.0.0.0", "::")  # noqa: S104 (names to recognise, not to bind)
LOOPBACK_NAMES: tuple[x509.GeneralName, ...] = (
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
    x509.DNSName("localhost"),
)


def encode_pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    """An EC private key as unencrypted PKCS #8 DER (RFC 5208)."""
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def decode_p256(der: bytes) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PKCS #8 DER; ``ValueError`` for any other key."""
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 private key")
    return key


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def parse_server_name(text: str) -> str:
    """A name a certificate can certify: an IP address, or a DNS name of letter-digit-
    hyphen labels (RFC 1123 §2.1; an IDN in its ASCII form, RFC 5890); ``ParseError``
    for anything else."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    labels = text.removesuffix(".").split(".")
    if len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ParseError(f"{text!r} is neither an IP address nor a DNS name (ASCII, LDH)")
    return text.removesuffix(".")


def spki_sha256(public_key: ec.EllipticCurvePublicKey) -> str:
    """Hex SHA-256 of the DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) of ``public_key``:
    the ``tls_spki_sha256`` claim, and what a pinning client compares."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def subject_names(host: str) -> list[x509.GeneralName]:
    """The SAN entries (RFC 5280 §4.2.1.6) for a server listening on ``host``: its IP
    address or DNS name; the loopback names when it listens on every address."""
    if host in WILDCARD_HOSTS:
        return list(LOOPBACK_NAMES)
    try:
        return [x509.IPAddress(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        return [x509.DNSName(host)]


def self_signed(
    key: ec.EllipticCurvePrivateKey, *, host: str, now: dt.datetime
) -> x509.Certificate:
    """A self-signed leaf certificate for ``key``, naming ``host`` (see
    :func:`subject_names`), valid from a little before ``now`` for a year. It is not a
    CA (``cA`` false): the key signs TLS handshakes, never other certificates."""
    names = subject_names(host)
    common_name = host if host not in WILDCARD_HOSTS else "localhost"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + SELF_SIGNED_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SERVER_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


_SERVER_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def signing_request(
    key: ec.EllipticCurvePrivateKey, *, name: str
) -> x509.CertificateSigningRequest:
    """A PKCS #10 request (RFC 2986) for ``key``, naming ``name`` (a DNS name or an IP
    address) in its subject and SAN, as ACME CAs expect (RFC 8555 §7.4)."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName(subject_names(name)), critical=False)
        .sign(key, hashes.SHA256())
    )


def parse_chain(pem: bytes) -> list[x509.Certificate]:
    """Certificates from PEM text, leaf first; ``ParseError`` if there are none or any
    block does not parse."""
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ParseError(f"not a PEM certificate chain ({exc})") from None
    return chain


def validate_chain(
    chain: list[x509.Certificate], key: ec.EllipticCurvePrivateKey, *, now: dt.datetime
) -> None:
    """``ConfigError`` unless the leaf (``chain[0]``) is for ``key`` and valid at ``now``:
    a certificate for another key would make every quote's ``tls_spki_sha256`` a lie
    (or, served anyway, a handshake no client completes)."""
    leaf_key = chain[0].public_key()
    ours = spki_sha256(key.public_key())
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey) or spki_sha256(leaf_key) != ours:
        raise ConfigError(
            "the certificate is not for this gateway's TLS key (SPKI SHA-256 "
            f"{ours}); get one for a request made by `saferouter tls csr`"
        )
    if not chain[0].not_valid_before_utc <= now <= chain[0].not_valid_after_utc:
        raise ConfigError(
            "the certificate is not valid now (valid "
            f"{chain[0].not_valid_before_utc:%Y-%m-%d} to {chain[0].not_valid_after_utc:%Y-%m-%d})"
        )


@attrs.frozen
class TlsCredentials:
    """The TLS key and the chain served for it, as plain bytes: a worker process is
    handed them over its spawn pipe (in memory, never a file)."""

    key_pkcs8: bytes = attrs.field(repr=False)
    chain_pem: bytes

    @classmethod
    def of(cls, key: ec.EllipticCurvePrivateKey, chain: list[x509.Certificate]) -> TlsCredentials:
        """Credentials for ``key`` serving ``chain`` (leaf first)."""
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        return cls(key_pkcs8=encode_pkcs8(key), chain_pem=pem)

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The TLS key."""
        return decode_p256(self.key_pkcs8)

    @property
    def spki_sha256(self) -> str:
        """The served key's ``tls_spki_sha256``."""
        return spki_sha256(self.private_key().public_key())


def credentials(
    key: ec.EllipticCurvePrivateKey,
    *,
    host: str,
    chain: list[x509.Certificate] | None,
    now: dt.datetime,
) -> TlsCredentials:
    """What ``serve --tls`` presents: ``chain`` (an operator's ``--tls-cert``) once it is
    validated for ``key``, or else a self-signed certificate for ``host``."""
    if chain is None:
        return TlsCredentials.of(key, [self_signed(key, host=host, now=now)])
    validate_chain(chain, key, now=now)
    return TlsCredentials.of(key, chain)
