"""The SEV-SNP ATTESTATION_REPORT, bytes in and out (pure).

Layout: AMD SEV-SNP Firmware ABI spec 56860, table "ATTESTATION_REPORT Structure", as
implemented by go-sev-guest ``abi/abi.go`` and virtee/sev ``AttestationReport`` (which
agree; ../shared/reference/sevsnp.md §1). 1184 bytes, little-endian, versions 2 to 5:
v3 adds CPUID family/model/stepping at 0x188, v5 the mitigation vectors at 0x1F8.
Every reserved range must be zero; :func:`parse_report` checks them, so
``encode_report(parse_report(b)) == b`` for every report it accepts.

The only exception raised here is :class:`ReportFormatError` (a ``ParseError``).
"""

from __future__ import annotations

import enum
import struct

import attrs
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ..errors import ParseError

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0  # the signature covers report[0x000:0x2A0]
SIGNATURE_OFFSET = 0x2A0
ECDSA_COORD_SIZE = 72  # R and S: 72-byte little-endian, only the low 48 bytes used (P-384)
P384_COORD_SIZE = 48
SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1
SUPPORTED_VERSIONS = frozenset({2, 3, 4, 5})


class ReportFormatError(ParseError):
    """The bytes are not a well-formed ATTESTATION_REPORT."""


class SigningKey(enum.IntEnum):
    """SIGNING_KEY, bits 4:2 of the signer info at 0x048."""

    VCEK = 0
    VLEK = 1
    NONE = 7


class Product(enum.StrEnum):
    MILAN = "Milan"
    GENOA = "Genoa"
    TURIN = "Turin"


# POLICY bits (§1.4)
POLICY_SMT = 1 << 16
POLICY_RESERVED_ONE = 1 << 17
POLICY_MIGRATE_MA = 1 << 18
POLICY_DEBUG = 1 << 19
POLICY_SINGLE_SOCKET = 1 << 20
POLICY_CXL_ALLOW = 1 << 21
POLICY_MEM_AES_256_XTS = 1 << 22
POLICY_RAPL_DIS = 1 << 23
POLICY_CIPHERTEXT_HIDING = 1 << 24
POLICY_PAGE_SWAP_DISABLE = 1 << 25
POLICY_MBZ = ~((1 << 26) - 1) & 0xFFFF_FFFF_FFFF_FFFF

# PLATFORM_INFO bits
PLATFORM_SMT_EN = 1 << 0
PLATFORM_TSME_EN = 1 << 1
PLATFORM_ECC_EN = 1 << 2
PLATFORM_RAPL_DIS = 1 << 3
PLATFORM_CIPHERTEXT_HIDING_EN = 1 << 4
PLATFORM_ALIAS_CHECK_COMPLETE = 1 << 5
PLATFORM_TIO_EN = 1 << 7


@attrs.frozen
class Tcb:
    """A TCB_VERSION in one of its two layouts (§1.5): Milan/Genoa, or Turin with FMC."""

    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None  # Turin and later only

    @property
    def turin(self) -> bool:
        return self.fmc is not None

    def __le__(self, other: Tcb) -> bool:
        """Component-wise ≤ (go-sev-guest ``TCBPartsLE``); layouts must match."""
        return (
            self.turin == other.turin
            and (self.fmc or 0) <= (other.fmc or 0)
            and self.bootloader <= other.bootloader
            and self.tee <= other.tee
            and self.snp <= other.snp
            and self.microcode <= other.microcode
        )

    def __str__(self) -> str:
        head = f"fmc{self.fmc}/" if self.fmc is not None else ""
        return f"{head}bl{self.bootloader}/tee{self.tee}/snp{self.snp}/uc{self.microcode}"


def parse_tcb(raw: int, *, turin: bool) -> Tcb:
    b = raw.to_bytes(8, "little")
    if turin:
        if any(b[4:7]):
            raise ReportFormatError("reserved bytes of a Turin TCB_VERSION are not zero")
        return Tcb(fmc=b[0], bootloader=b[1], tee=b[2], snp=b[3], microcode=b[7])
    if any(b[2:6]):
        raise ReportFormatError("reserved bytes of a TCB_VERSION are not zero")
    return Tcb(bootloader=b[0], tee=b[1], snp=b[6], microcode=b[7])


def encode_tcb(tcb: Tcb) -> int:
    if tcb.fmc is not None:
        b = bytes([tcb.fmc, tcb.bootloader, tcb.tee, tcb.snp, 0, 0, 0, tcb.microcode])
    else:
        b = bytes([tcb.bootloader, tcb.tee, 0, 0, 0, 0, tcb.snp, tcb.microcode])
    return int.from_bytes(b, "little")


@attrs.frozen
class Report:
    """Every field of an ATTESTATION_REPORT. TCBs are kept as their raw u64; use
    :meth:`tcb` to read one in the layout of the report's product."""

    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: int
    platform_info: int
    signer_info: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: int
    cpuid_fam_id: int  # v3+ (0 in v2)
    cpuid_mod_id: int
    cpuid_step: int
    chip_id: bytes
    committed_tcb: int
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb: int
    launch_mit_vector: int  # v5+ (0 before)
    current_mit_vector: int
    signature_r: int
    signature_s: int

    @property
    def signing_key(self) -> int:
        return (self.signer_info >> 2) & 0b111

    @property
    def author_key_en(self) -> bool:
        return bool(self.signer_info & 1)

    @property
    def mask_chip_key(self) -> bool:
        return bool(self.signer_info & 2)

    @property
    def debug(self) -> bool:
        return bool(self.policy & POLICY_DEBUG)

    @property
    def abi_version(self) -> tuple[int, int]:
        return (self.policy >> 8) & 0xFF, self.policy & 0xFF

    def product(self) -> Product | None:
        """The product from CPUID (v3+): None for v2, or an unknown family/model."""
        return (
            product_from_cpuid(self.cpuid_fam_id, self.cpuid_mod_id) if self.version >= 3 else None
        )

    def tcb(self, raw: int, product: Product) -> Tcb:
        return parse_tcb(raw, turin=product is Product.TURIN)

    def signature_der(self) -> bytes:
        return encode_dss_signature(self.signature_r, self.signature_s)


def product_from_cpuid(family: int, model: int) -> Product | None:
    """§1.3: family 0x19 models 0x00–0x0F Milan, 0x10–0x1F and 0xA0–0xAF Genoa; family
    0x1A models 0x00–0x11 Turin."""
    if family == 0x19 and model <= 0x0F:
        return Product.MILAN
    if family == 0x19 and (0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF):
        return Product.GENOA
    if family == 0x1A and model <= 0x11:
        return Product.TURIN
    return None


# (offset, struct format or byte count, field) in report order; bytes fields by length.
_FIELDS: tuple[tuple[int, str, str], ...] = (
    (0x000, "<I", "version"),
    (0x004, "<I", "guest_svn"),
    (0x008, "<Q", "policy"),
    (0x010, "16s", "family_id"),
    (0x020, "16s", "image_id"),
    (0x030, "<I", "vmpl"),
    (0x034, "<I", "signature_algo"),
    (0x038, "<Q", "current_tcb"),
    (0x040, "<Q", "platform_info"),
    (0x048, "<I", "signer_info"),
    (0x050, "64s", "report_data"),
    (0x090, "48s", "measurement"),
    (0x0C0, "32s", "host_data"),
    (0x0E0, "48s", "id_key_digest"),
    (0x110, "48s", "author_key_digest"),
    (0x140, "32s", "report_id"),
    (0x160, "32s", "report_id_ma"),
    (0x180, "<Q", "reported_tcb"),
    (0x188, "B", "cpuid_fam_id"),
    (0x189, "B", "cpuid_mod_id"),
    (0x18A, "B", "cpuid_step"),
    (0x1A0, "64s", "chip_id"),
    (0x1E0, "<Q", "committed_tcb"),
    (0x1E8, "B", "current_build"),
    (0x1E9, "B", "current_minor"),
    (0x1EA, "B", "current_major"),
    (0x1EC, "B", "committed_build"),
    (0x1ED, "B", "committed_minor"),
    (0x1EE, "B", "committed_major"),
    (0x1F0, "<Q", "launch_tcb"),
    (0x1F8, "<Q", "launch_mit_vector"),
    (0x200, "<Q", "current_mit_vector"),
)
# Reserved ranges that must be zero, by version (§1.1): v2 has no CPUID, v2–v4 no
# mitigation vectors. The signature's unused tail is reserved too.
_RESERVED_COMMON = ((0x04C, 0x050), (0x1EB, 0x1EC), (0x1EF, 0x1F0), (0x330, 0x4A0))


def _reserved(version: int) -> tuple[tuple[int, int], ...]:
    cpuid = ((0x18B, 0x1A0),) if version >= 3 else ((0x188, 0x1A0),)
    tail = ((0x208, 0x2A0),) if version >= 5 else ((0x1F8, 0x2A0),)
    return _RESERVED_COMMON + cpuid + tail


def parse_report(data: bytes) -> Report:
    """Parse and check the format of a report (go-sev-guest ``ReportToProto`` and
    ``ValidateReportFormat``): size, version 2–5, POLICY bit 17 set and bits 63:26 zero,
    signer-info bits 31:5 zero, ECDSA P-384 signature algorithm, reserved ranges zero,
    and only the low 48 bytes of R and S used."""
    if len(data) != REPORT_SIZE:
        raise ReportFormatError(f"a report is {REPORT_SIZE} bytes, not {len(data)}")
    version = struct.unpack_from("<I", data, 0)[0]
    if version not in SUPPORTED_VERSIONS:
        raise ReportFormatError(f"report version {version} is not supported (2–5)")
    for start, end in _reserved(version):
        if any(data[start:end]):
            raise ReportFormatError(f"reserved bytes 0x{start:03X}..0x{end - 1:03X} are not zero")
    values = {name: struct.unpack_from(fmt, data, offset)[0] for offset, fmt, name in _FIELDS}
    r_raw = data[SIGNATURE_OFFSET : SIGNATURE_OFFSET + ECDSA_COORD_SIZE]
    s_raw = data[SIGNATURE_OFFSET + ECDSA_COORD_SIZE : SIGNATURE_OFFSET + 2 * ECDSA_COORD_SIZE]
    if any(r_raw[P384_COORD_SIZE:]) or any(s_raw[P384_COORD_SIZE:]):
        raise ReportFormatError("signature R or S uses more than 48 bytes")
    report = Report(
        **values,
        signature_r=int.from_bytes(r_raw, "little"),
        signature_s=int.from_bytes(s_raw, "little"),
    )
    if not report.policy & POLICY_RESERVED_ONE:
        raise ReportFormatError("POLICY bit 17 must be set")
    if report.policy & POLICY_MBZ:
        raise ReportFormatError("POLICY bits 63:26 must be zero")
    if report.signer_info >> 5:
        raise ReportFormatError("signer info bits 31:5 must be zero")
    if report.signature_algo != SIGNATURE_ALGO_ECDSA_P384_SHA384:
        raise ReportFormatError(
            f"signature algorithm {report.signature_algo} is not ECDSA P-384 with SHA-384"
        )
    return report


def encode_report(report: Report) -> bytes:
    """The 1184 bytes of ``report`` (reserved ranges zero)."""
    out = bytearray(REPORT_SIZE)
    for offset, fmt, name in _FIELDS:
        struct.pack_into(fmt, out, offset, getattr(report, name))
    out[SIGNATURE_OFFSET : SIGNATURE_OFFSET + ECDSA_COORD_SIZE] = report.signature_r.to_bytes(
        ECDSA_COORD_SIZE, "little"
    )
    out[SIGNATURE_OFFSET + ECDSA_COORD_SIZE : SIGNATURE_OFFSET + 2 * ECDSA_COORD_SIZE] = (
        report.signature_s.to_bytes(ECDSA_COORD_SIZE, "little")
    )
    return bytes(out)


def signature_from_der(der: bytes) -> tuple[int, int]:
    """(r, s) of a DER ECDSA signature, for :class:`Report`'s signature fields."""
    r, s = decode_dss_signature(der)
    return r, s
