"""AMD Key Distribution Service: URLs and the VCEK/VLEK certificate extensions (pure).

URLs: AMD spec 57230 "VCEK Certificate and KDS Interface Specification"; go-sev-guest
``kds/kds.go``; snpguest ``fetch.rs`` for Turin (``fmcSPL``, 8-byte hwid)
(../shared/reference/sevsnp.md §4). Extensions under 1.3.6.1.4.1.3704.1 (§5.2): SPLs are
DER INTEGERs (a byte ≥ 128 carries a leading 0x00), hwID is raw bytes without an OCTET
STRING tag, productName and cspID are IA5Strings.
"""

from __future__ import annotations

import warnings

import attrs
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from ..errors import ParseError
from .abi import Product, Tcb

KDS_BASE = "https://kdsintf.amd.com"
_ARC = "1.3.6.1.4.1.3704.1"
OID_STRUCT_VERSION = x509.ObjectIdentifier(f"{_ARC}.1")
OID_PRODUCT_NAME = x509.ObjectIdentifier(f"{_ARC}.2")
OID_BL_SPL = x509.ObjectIdentifier(f"{_ARC}.3.1")
OID_TEE_SPL = x509.ObjectIdentifier(f"{_ARC}.3.2")
OID_SNP_SPL = x509.ObjectIdentifier(f"{_ARC}.3.3")
OID_UCODE_SPL = x509.ObjectIdentifier(f"{_ARC}.3.8")
OID_FMC_SPL = x509.ObjectIdentifier(f"{_ARC}.3.9")
OID_HWID = x509.ObjectIdentifier(f"{_ARC}.4")
OID_CSP_ID = x509.ObjectIdentifier(f"{_ARC}.5")


class ExtensionError(ParseError):
    """A VCEK/VLEK extension is missing or malformed."""


@attrs.frozen
class VekExtensions:
    struct_version: int
    product_name: str
    tcb: Tcb
    hwid: bytes | None  # VCEK only
    csp_id: str | None  # VLEK only

    @property
    def is_vlek(self) -> bool:
        return self.csp_id is not None


def load_certificate(data: bytes) -> x509.Certificate:
    """A DER or PEM certificate. AMD's VCEKs have serial number 0, which ``cryptography``
    still parses but warns about (pyca/cryptography#12969); the warning is expected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                return x509.load_pem_x509_certificate(data)
            return x509.load_der_x509_certificate(data)
        except ValueError as exc:
            raise ParseError(f"not a certificate: {exc}") from None


def load_cert_chain(pem: bytes) -> tuple[x509.Certificate, x509.Certificate]:
    """A KDS ``cert_chain`` body: (ASK or ASVK, ARK), in that order."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ParseError(f"not a PEM certificate chain: {exc}") from None
    if len(certs) != 2:
        raise ParseError(f"a cert_chain holds 2 certificates (ASK, ARK), not {len(certs)}")
    return certs[0], certs[1]


def vcek_url(product: Product, chip_id: bytes, tcb: Tcb) -> str:
    """The KDS URL of the VCEK for a chip at a TCB (use the report's REPORTED_TCB)."""
    if product is Product.TURIN:
        if tcb.fmc is None:
            raise ValueError("a Turin VCEK URL needs the FMC SPL")
        return (
            f"{KDS_BASE}/vcek/v1/Turin/{chip_id[:8].hex()}?fmcSPL={tcb.fmc}"
            f"&blSPL={tcb.bootloader}&teeSPL={tcb.tee}&snpSPL={tcb.snp}"
            f"&ucodeSPL={tcb.microcode}"
        )
    return (
        f"{KDS_BASE}/vcek/v1/{product.value}/{chip_id.hex()}?blSPL={tcb.bootloader}"
        f"&teeSPL={tcb.tee}&snpSPL={tcb.snp}&ucodeSPL={tcb.microcode}"
    )


def cert_chain_url(product: Product, *, vlek: bool = False) -> str:
    """ASK (or ASVK) then ARK, as PEM."""
    return f"{KDS_BASE}/{'vlek' if vlek else 'vcek'}/v1/{product.value}/cert_chain"


def crl_url(product: Product, *, vlek: bool = False) -> str:
    return f"{KDS_BASE}/{'vlek' if vlek else 'vcek'}/v1/{product.value}/crl"


def parse_vek_extensions(cert: x509.Certificate, *, turin: bool) -> VekExtensions:
    """The AMD extensions of a VCEK or VLEK. Raises :class:`ExtensionError`."""
    raw = {
        e.oid: e.value.value
        for e in cert.extensions
        if isinstance(e.value, x509.UnrecognizedExtension)
        and e.oid.dotted_string.startswith(_ARC + ".")
    }
    hwid = raw.get(OID_HWID)
    csp = raw.get(OID_CSP_ID)
    if hwid is not None and len(hwid) != (8 if turin else 64):
        raise ExtensionError(f"hwID is {len(hwid)} bytes, not {8 if turin else 64}")
    fmc = _integer(raw, OID_FMC_SPL) if turin else None
    tcb = Tcb(
        bootloader=_integer(raw, OID_BL_SPL),
        tee=_integer(raw, OID_TEE_SPL),
        snp=_integer(raw, OID_SNP_SPL),
        microcode=_integer(raw, OID_UCODE_SPL),
        fmc=fmc,
    )
    return VekExtensions(
        struct_version=_integer(raw, OID_STRUCT_VERSION),
        product_name=_ia5(raw, OID_PRODUCT_NAME),
        tcb=tcb,
        hwid=hwid,
        csp_id=_ia5(raw, OID_CSP_ID) if csp is not None else None,
    )


def _integer(raw: dict[x509.ObjectIdentifier, bytes], oid: x509.ObjectIdentifier) -> int:
    """A DER INTEGER (tag 0x02, short length, non-negative)."""
    value = _required(raw, oid)
    if len(value) < 3 or value[0] != 0x02 or value[1] != len(value) - 2 or value[2] & 0x80:
        raise ExtensionError(f"{oid.dotted_string} is not a non-negative DER INTEGER")
    return int.from_bytes(value[2:], "big")


def _ia5(raw: dict[x509.ObjectIdentifier, bytes], oid: x509.ObjectIdentifier) -> str:
    value = _required(raw, oid)
    if len(value) < 2 or value[0] != 0x16 or value[1] != len(value) - 2:
        raise ExtensionError(f"{oid.dotted_string} is not a DER IA5String")
    try:
        return value[2:].decode("ascii")
    except UnicodeDecodeError:
        raise ExtensionError(f"{oid.dotted_string} is not ASCII") from None


def _required(raw: dict[x509.ObjectIdentifier, bytes], oid: x509.ObjectIdentifier) -> bytes:
    value = raw.get(oid)
    if value is None:
        raise ExtensionError(f"extension {oid.dotted_string} is missing")
    return value
