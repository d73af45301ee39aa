"""The demo attester: a synthetic ARK → ASK → VCEK chain, made once in the data dir, that
signs reports in exactly the real ATTESTATION_REPORT layout.

It mirrors go-sev-guest's ``testing/fake_certs.go``: RSA-4096 ARK and ASK signing with
RSASSA-PSS SHA-384 (salt 48), an ECDSA P-384 VCEK carrying the KDS extensions. The
names say DEMO (``ARK-Genoa-DEMO-SafeRouter``) and the fingerprints are the data dir's
own, so no verifier pinned to AMD accepts these reports; the same ``verify_report``
accepts them only with :meth:`DemoAttester.trust_root`, and reports the root as DEMO.
The ARK and ASK private keys are thrown away once the chain exists: only the VCEK key
(mode 0600) remains, to sign reports.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from ..datadir import make_private_dir, write_private_file
from .abi import (
    PLATFORM_SMT_EN,
    POLICY_RESERVED_ONE,
    POLICY_SMT,
    SIGNATURE_ALGO_ECDSA_P384_SHA384,
    SIGNED_SIZE,
    Product,
    Report,
    Tcb,
    encode_report,
    encode_tcb,
)
from .kds import (
    OID_BL_SPL,
    OID_CSP_ID,
    OID_FMC_SPL,
    OID_HWID,
    OID_PRODUCT_NAME,
    OID_SNP_SPL,
    OID_STRUCT_VERSION,
    OID_TEE_SPL,
    OID_UCODE_SPL,
    load_certificate,
)
from .verify import TrustRoot, fingerprint

DEMO_SUFFIX = "-DEMO-SafeRouter"
DEMO_PRODUCT = Product.GENOA
DEMO_TCB = Tcb(bootloader=10, tee=0, snp=23, microcode=84)
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


@attrs.frozen
class DemoChain:
    ark: x509.Certificate
    ask: x509.Certificate
    vcek: x509.Certificate


class DemoAttester:
    """Signs demo reports; ``folder`` holds the chain (made on first use)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        if not (folder / "vcek.key").exists():
            _create_chain(folder)
        self.chain = DemoChain(
            ark=load_certificate((folder / "ark.pem").read_bytes()),
            ask=load_certificate((folder / "ask.pem").read_bytes()),
            vcek=load_certificate((folder / "vcek.pem").read_bytes()),
        )
        key = serialization.load_pem_private_key((folder / "vcek.key").read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self._key = key
        self.chip_id = (folder / "chip_id").read_bytes()

    def trust_root(self) -> TrustRoot:
        return TrustRoot(
            name="DEMO",
            ark={DEMO_PRODUCT: fingerprint(self.chain.ark)},
            ask={DEMO_PRODUCT: fingerprint(self.chain.ask)},
            asvk={},
            cn_suffix=DEMO_SUFFIX,
        )

    def chain_pem(self) -> bytes:
        """ASK then ARK, like KDS's ``cert_chain``."""
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.chain.ask, self.chain.ark)
        )

    def report(
        self,
        report_data: bytes,
        *,
        measurement: bytes = bytes(48),
        host_data: bytes = bytes(32),
        vmpl: int = 0,
    ) -> bytes:
        """A signed v5 report (Genoa CPUID and TCB layout) over ``report_data``."""
        if len(report_data) != 64 or len(measurement) != 48 or len(host_data) != 32:
            raise ValueError("report_data is 64 bytes, measurement 48, host_data 32")
        unsigned = demo_report_fields(
            report_data,
            chip_id=self.chip_id,
            measurement=measurement,
            host_data=host_data,
            vmpl=vmpl,
        )
        return sign_report(unsigned, self._key)


def demo_report_fields(
    report_data: bytes,
    *,
    chip_id: bytes,
    measurement: bytes = bytes(48),
    host_data: bytes = bytes(32),
    vmpl: int = 0,
) -> Report:
    """An unsigned v5 report as the demo machine makes them (Genoa CPUID and TCB)."""
    tcb = encode_tcb(DEMO_TCB)
    return Report(
        version=5,
        guest_svn=0,
        policy=POLICY_RESERVED_ONE | POLICY_SMT,
        family_id=bytes(16),
        image_id=bytes(16),
        vmpl=vmpl,
        signature_algo=SIGNATURE_ALGO_ECDSA_P384_SHA384,
        current_tcb=tcb,
        platform_info=PLATFORM_SMT_EN,
        signer_info=0,
        report_data=report_data,
        measurement=measurement,
        host_data=host_data,
        id_key_digest=bytes(48),
        author_key_digest=bytes(48),
        report_id=secrets.token_bytes(32),
        report_id_ma=b"\xff" * 32,
        reported_tcb=tcb,
        cpuid_fam_id=0x19,
        cpuid_mod_id=0x11,
        cpuid_step=1,
        chip_id=chip_id,
        committed_tcb=tcb,
        current_build=43,
        current_minor=55,
        current_major=1,
        committed_build=43,
        committed_minor=55,
        committed_major=1,
        launch_tcb=tcb,
        launch_mit_vector=0,
        current_mit_vector=0,
        signature_r=0,
        signature_s=0,
    )


def sign_report(report: Report, key: ec.EllipticCurvePrivateKey) -> bytes:
    """``report`` encoded and signed (ECDSA P-384, SHA-384 over bytes 0x000..0x29F)."""
    body = encode_report(report)[:SIGNED_SIZE]
    r, s = decode_dss_signature(key.sign(body, ec.ECDSA(hashes.SHA384())))
    return encode_report(attrs.evolve(report, signature_r=r, signature_s=s))


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SafeRouter DEMO, not AMD"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@attrs.frozen
class ChainKeys:
    ark: x509.Certificate
    ask: x509.Certificate
    vek: x509.Certificate
    vek_key: ec.EllipticCurvePrivateKey
    chip_id: bytes


def make_chain(
    *,
    product: Product = DEMO_PRODUCT,
    product_name: str | None = None,
    tcb: Tcb = DEMO_TCB,
    vlek: bool = False,
    issuer_cn: str | None = None,
    suffix: str = DEMO_SUFFIX,
    vek_cn: str | None = None,
) -> ChainKeys:
    """An ARK → ASK → VEK chain shaped like AMD's, with DEMO names (pure: no files).
    The keyword arguments let tests build chains that must fail a given step."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    ark_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    ask_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    vek_key = ec.generate_private_key(ec.SECP384R1())
    ark_name = _name(f"ARK-{product.value}{suffix}")
    ask_name = _name(f"SEV-{'VLEK-' if vlek else ''}{product.value}{suffix}")

    def build(
        subject: x509.Name, issuer: x509.Name, public_key: object, years: int
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=365 * years))
        )

    ark = (
        build(ark_name, ark_name, ark_key.public_key(), 25)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ark_key, hashes.SHA384(), rsa_padding=_PSS)
    )
    ask = (
        build(ask_name, ark_name, ask_key.public_key(), 25)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ark_key, hashes.SHA384(), rsa_padding=_PSS)
    )
    turin = product is Product.TURIN
    chip_id = secrets.token_bytes(8 if turin else 64)
    name = product_name or product.value
    extensions = {
        OID_STRUCT_VERSION: bytes([2, 1, 1 if turin else 0]),
        OID_PRODUCT_NAME: b"\x16" + bytes([len(name)]) + name.encode(),
        OID_BL_SPL: bytes([2, 1, tcb.bootloader]),
        OID_TEE_SPL: bytes([2, 1, tcb.tee]),
        OID_SNP_SPL: bytes([2, 1, tcb.snp]),
        OID_UCODE_SPL: bytes([2, 1, tcb.microcode]),
    }
    if tcb.fmc is not None:
        extensions[OID_FMC_SPL] = bytes([2, 1, tcb.fmc])
    if vlek:
        csp = b"CN=demo.invalid"
        extensions[OID_CSP_ID] = b"\x16" + bytes([len(csp)]) + csp
    else:
        extensions[OID_HWID] = chip_id
    issuer = _name(issuer_cn) if issuer_cn else ask_name
    subject = _name(vek_cn or ("SEV-VLEK" if vlek else "SEV-VCEK"))
    builder = build(subject, issuer, vek_key.public_key(), 7)
    for oid, value in extensions.items():
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, value), critical=False)
    vek = builder.sign(ask_key, hashes.SHA384(), rsa_padding=_PSS)
    return ChainKeys(ark=ark, ask=ask, vek=vek, vek_key=vek_key, chip_id=chip_id)


def _create_chain(folder: Path) -> None:
    make_private_dir(folder)
    chain = make_chain()
    pem = serialization.Encoding.PEM
    for name, cert in (("ark.pem", chain.ark), ("ask.pem", chain.ask), ("vcek.pem", chain.vek)):
        (folder / name).write_bytes(cert.public_bytes(pem))
    (folder / "chip_id").write_bytes(chain.chip_id)
    write_private_file(
        folder / "vcek.key",
        chain.vek_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
