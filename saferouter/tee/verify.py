"""Cryptographic verification of an SEV-SNP report against its certificate chain (pure).

The steps follow ../shared/reference/sevsnp.md §6.3 (go-sev-guest ``verify`` and
snpguest ``verify attestation``), numbered as the code runs them:

  (1) the report is well formed                           MalformedReport
  (2) its product is known (CPUID, or given for a v2)     UnknownProduct
  (3) the ARK signs itself and is the pinned root         ArkInvalid
  (4) the ASK (ASVK for a VLEK) is signed by the ARK, pinned  AskInvalid
  (5) the VCEK (VLEK) is signed by the ASK (ASVK)         VekInvalid
  (6) every certificate is valid at ``now``               CertificateExpired
  (7) the report's signature verifies with the VEK        ReportSignatureInvalid
  (8) REPORTED_TCB equals the VEK's SPLs                  TcbMismatch
  (9) CHIP_ID equals the VCEK's hwID                      ChipIdMismatch
  (10) SIGNING_KEY matches the certificate kind           SigningKeyMismatch
  (11) the product matches the chain                      ProductMismatch

Certificates are RSA-4096 with RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48 (ARK, ASK,
ASVK) and ECDSA P-384 (VCEK, VLEK). ``cryptography``'s path validator rejects AMD's
certificates (no AKI, PSS with trailerField), so each signature is checked directly and
names, validity and extensions by hand, as go-sev-guest does. The current time is a
parameter. A :class:`TrustRoot` pins ARK/ASK/ASVK by SHA-256 of their DER; the result
says which root it chained to — ``AMD`` or ``DEMO``, never confused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from .. import errors
from ..errors import ParseError
from .abi import SIGNED_SIZE, Product, Report, SigningKey, parse_report, parse_tcb
from .kds import VekExtensions, parse_vek_extensions

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


class ReportVerificationError(errors.VerificationError):
    """A report failed a verification step; ``step`` names it."""

    step = "verification"


class MalformedReport(ReportVerificationError):
    step = "(1) report format"


class UnknownProduct(ReportVerificationError):
    step = "(2) product"


class ArkInvalid(ReportVerificationError):
    step = "(3) ARK self-signature and pin"


class AskInvalid(ReportVerificationError):
    step = "(4) ASK/ASVK signed by ARK"


class VekInvalid(ReportVerificationError):
    step = "(5) VCEK/VLEK signed by ASK/ASVK"


class CertificateExpired(ReportVerificationError):
    step = "(6) certificate validity"


class ReportSignatureInvalid(ReportVerificationError):
    step = "(7) report signature"


class TcbMismatch(ReportVerificationError):
    step = "(8) REPORTED_TCB against the VEK's SPLs"


class ChipIdMismatch(ReportVerificationError):
    step = "(9) CHIP_ID against the VCEK's hwID"


class SigningKeyMismatch(ReportVerificationError):
    step = "(10) signing key against the certificate kind"


class ProductMismatch(ReportVerificationError):
    step = "(11) product against the chain"


@attrs.frozen
class TrustRoot:
    """Pinned SHA-256 fingerprints (hex, of the DER) per product, and the CN the root
    and intermediates carry (``ARK-Milan`` for AMD)."""

    name: str
    ark: Mapping[Product, str]
    ask: Mapping[Product, str]
    asvk: Mapping[Product, str]
    cn_suffix: str = ""

    def ark_cn(self, product: Product) -> str:
        return f"ARK-{product.value}{self.cn_suffix}"


# AMD's roots: facts from ../shared/testdata/sev-snp/README.md (and go-sev-guest's
# embedded trust store). The certificates themselves come from KDS or its cache.
AMD_ROOT = TrustRoot(
    name="AMD",
    ark={
        Product.MILAN: "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
        Product.GENOA: "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
        Product.TURIN: "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
    },
    ask={
        Product.MILAN: "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b",
        Product.GENOA: "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521",
        Product.TURIN: "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185",
    },
    asvk={
        Product.MILAN: "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5",
        Product.GENOA: "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372",
        Product.TURIN: "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c",
    },
)


@attrs.frozen
class Verified:
    report: Report
    product: Product
    root: str  # the TrustRoot's name: "AMD" or "DEMO"
    signing_key: SigningKey
    extensions: VekExtensions
    steps: tuple[str, ...]


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def verify_report(
    data: bytes,
    *,
    vek: x509.Certificate,
    ask: x509.Certificate,
    ark: x509.Certificate,
    now: dt.datetime,
    product: Product | None = None,
    root: TrustRoot = AMD_ROOT,
    on_step: Callable[[str], None] | None = None,
) -> Verified:
    """Run every step; return what was verified, or raise the failing step's error.
    ``product`` is needed for a v2 report (no CPUID) and must agree with a v3+ one."""
    steps: list[str] = []

    def passed(error: type[ReportVerificationError]) -> None:
        steps.append(error.step)
        if on_step is not None:
            on_step(error.step)

    # (1) format
    try:
        report = parse_report(data)
    except ParseError as exc:
        raise MalformedReport(str(exc)) from exc
    passed(MalformedReport)
    # (2) product
    from_cpuid = report.product()
    if report.version >= 3 and from_cpuid is None:
        raise UnknownProduct(
            f"CPUID family 0x{report.cpuid_fam_id:02X} model "
            f"0x{report.cpuid_mod_id:02X} is no known SEV-SNP product"
        )
    if from_cpuid is not None and product is not None and product is not from_cpuid:
        raise UnknownProduct(f"the report is from a {from_cpuid.value}, not a {product.value}")
    chosen = from_cpuid or product
    if chosen is None:
        raise UnknownProduct("a v2 report carries no CPUID: give the product (Milan, Genoa, Turin)")
    passed(UnknownProduct)
    signing_key = report.signing_key
    if signing_key not in (SigningKey.VCEK, SigningKey.VLEK) or report.mask_chip_key:
        raise SigningKeyMismatch(
            f"SIGNING_KEY {signing_key} (mask chip key {report.mask_chip_key}) cannot be verified"
        )
    vlek = signing_key == SigningKey.VLEK
    # (3) ARK
    _check_signed(ark, ark, ArkInvalid, "the ARK is not self-signed")
    _check_pinned(
        ark, root.ark.get(chosen), ArkInvalid, f"the ARK is not {root.name}'s {chosen.value} root"
    )
    passed(ArkInvalid)
    # (4) ASK or ASVK
    _check_signed(ask, ark, AskInvalid, "the ASK/ASVK is not signed by the ARK")
    pins = root.asvk if vlek else root.ask
    _check_pinned(
        ask,
        pins.get(chosen),
        AskInvalid,
        f"the {'ASVK' if vlek else 'ASK'} is not "
        f"{root.name}'s {chosen.value} {'ASVK' if vlek else 'ASK'}",
    )
    passed(AskInvalid)
    # (5) VEK
    _check_signed(vek, ask, VekInvalid, "the VCEK/VLEK is not signed by the ASK/ASVK")
    vek_key = vek.public_key()
    if not isinstance(vek_key, ec.EllipticCurvePublicKey) or not isinstance(
        vek_key.curve, ec.SECP384R1
    ):
        raise VekInvalid("the VCEK/VLEK key is not ECDSA P-384")
    if _cn(vek.issuer) != _cn(ask.subject):
        raise VekInvalid(f"the VEK's issuer {_cn(vek.issuer)} is not {_cn(ask.subject)}")
    passed(VekInvalid)
    # (6) validity
    for name, cert in (("ARK", ark), ("ASK", ask), ("VEK", vek)):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise CertificateExpired(
                f"the {name} is valid {cert.not_valid_before_utc:%Y-%m-%d}.."
                f"{cert.not_valid_after_utc:%Y-%m-%d}, not at {now:%Y-%m-%d %H:%M}"
            )
    passed(CertificateExpired)
    # (7) report signature
    try:
        vek_key.verify(report.signature_der(), data[:SIGNED_SIZE], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise ReportSignatureInvalid(
            "the report's signature does not verify with the VCEK/VLEK"
        ) from None
    passed(ReportSignatureInvalid)
    # (8) TCB
    turin = chosen is Product.TURIN
    try:
        extensions = parse_vek_extensions(vek, turin=turin)
        reported = parse_tcb(report.reported_tcb, turin=turin)
    except ParseError as exc:
        raise TcbMismatch(str(exc)) from exc
    if reported != extensions.tcb:
        raise TcbMismatch(f"REPORTED_TCB {reported} is not the VEK's {extensions.tcb}")
    passed(TcbMismatch)
    # (9) CHIP_ID
    if not vlek and any(report.chip_id):
        hwid = extensions.hwid
        expected = report.chip_id[:8] if turin else report.chip_id
        if turin and any(report.chip_id[8:]):
            raise ChipIdMismatch("a Turin CHIP_ID uses only its first 8 bytes")
        if hwid != expected:
            raise ChipIdMismatch("CHIP_ID is not the VCEK's hwID")
    passed(ChipIdMismatch)
    # (10) signing key against the certificate kind
    if (
        vlek != extensions.is_vlek
        or (vlek and extensions.hwid is not None)
        or (not vlek and extensions.hwid is None)
    ):
        raise SigningKeyMismatch(
            f"the report is {'VLEK' if vlek else 'VCEK'}-signed but the "
            "certificate is not a "
            f"{'VLEK (cspID, no hwID)' if vlek else 'VCEK (hwID)'}"
        )
    if _cn(vek.subject) != ("SEV-VLEK" if vlek else "SEV-VCEK"):
        raise SigningKeyMismatch(f"the certificate's CN is {_cn(vek.subject)}")
    passed(SigningKeyMismatch)
    # (11) product against the chain
    if _cn(ark.subject) != root.ark_cn(chosen):
        raise ProductMismatch(f"the chain's root is {_cn(ark.subject)}, not {root.ark_cn(chosen)}")
    if not extensions.product_name.startswith(chosen.value):
        raise ProductMismatch(f"the VEK is for {extensions.product_name}, not {chosen.value}")
    passed(ProductMismatch)
    return Verified(
        report=report,
        product=chosen,
        root=root.name,
        signing_key=SigningKey(signing_key),
        extensions=extensions,
        steps=tuple(steps),
    )


def _check_signed(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    error: type[ReportVerificationError],
    message: str,
) -> None:
    key = issuer.public_key()
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.RSASSA_PSS or not isinstance(
        key, rsa.RSAPublicKey
    ):
        raise error(f"{message}: not an RSASSA-PSS signature by an RSA key")
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, _PSS, hashes.SHA384())
    except InvalidSignature:
        raise error(message) from None


def _check_pinned(
    cert: x509.Certificate, pin: str | None, error: type[ReportVerificationError], message: str
) -> None:
    if pin is None or fingerprint(cert) != pin:
        raise error(message)


def _cn(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""
