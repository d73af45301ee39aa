"""The report ABI on every real vector, and every way a report can be malformed."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from saferouter.tee import abi
from saferouter.tee.abi import Product, Tcb
from saferouter.tee.demo import ChainKeys

from .synthetic import demo_bytes, demo_report, older
from .vectors import SETS, VectorSet


@pytest.mark.parametrize("vector", SETS, ids=[s.name for s in SETS])
def test_every_vector_round_trips_byte_for_byte(testdata: object, vector: VectorSet) -> None:
    data = vector.report_bytes()
    report = abi.parse_report(data)
    assert abi.encode_report(report) == data
    assert report.debug is vector.debug
    assert report.signing_key == (abi.SigningKey.VLEK if vector.vlek else abi.SigningKey.VCEK)
    assert report.product() in (None, vector.product)
    r, s = abi.signature_from_der(report.signature_der())
    assert (r, s) == (report.signature_r, report.signature_s)


@pytest.mark.parametrize(
    ("name", "version", "policy", "tcb"),
    [
        ("milan-v2-gosevguest", 2, 0xB0000, Tcb(bootloader=2, tee=0, snp=5, microcode=68)),
        ("milan-v2-virtee", 2, 0x30000, Tcb(bootloader=3, tee=0, snp=8, microcode=115)),
        ("milan-v3-vlek-trustee", 3, 0x30000, Tcb(bootloader=4, tee=0, snp=24, microcode=217)),
        ("genoa-v3-azure-trustee", 3, 0x3001F, Tcb(bootloader=10, tee=0, snp=23, microcode=84)),
        ("genoa-v5-oak", 5, 0x30000, Tcb(bootloader=10, tee=0, snp=25, microcode=84)),
        ("turin-v5-oak", 5, 0x30000, Tcb(fmc=0, bootloader=1, tee=0, snp=2, microcode=71)),
    ],
)
def test_fields_match_the_testdata_readme(
    testdata: object, name: str, version: int, policy: int, tcb: Tcb
) -> None:
    vector = next(s for s in SETS if s.name == name)
    report = abi.parse_report(vector.report_bytes())
    assert (report.version, report.policy) == (version, policy)
    assert report.tcb(report.reported_tcb, vector.product) == tcb
    if name == "turin-v5-oak":
        assert report.chip_id[:8].hex() == "3b42092f69c656d3" and not any(report.chip_id[8:])
        assert (report.cpuid_fam_id, report.cpuid_mod_id, report.cpuid_step) == (0x1A, 2, 1)
        assert (report.current_major, report.current_minor, report.current_build) == (1, 55, 61)
        assert report.platform_info == 0x67
    if name == "genoa-v5-oak":
        assert report.launch_mit_vector == report.current_mit_vector == 1
        assert report.platform_info == 0x25
    if name == "milan-v3-vlek-trustee":
        assert report.vmpl == 1 and not any(report.chip_id)
    if name == "milan-v2-gosevguest":
        assert report.report_data[:5] == bytes([1, 2, 3, 4, 5])
        assert report.abi_version == (0, 0) and not report.author_key_en
        assert not report.mask_chip_key


def _with(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


# (how to break a report, what the error must say), for real and demo reports alike
MALFORMED = [
    (lambda d: d[:-1], "1184 bytes"),
    (lambda d: _with(d, 0, (6).to_bytes(4, "little")), "version 6"),
    (lambda d: _with(d, 0x04C, b"\x01"), "0x04C"),
    (lambda d: _with(d, 0x18B, b"\x01"), "0x18B"),
    (lambda d: _with(d, 0x1EB, b"\x01"), "0x1EB"),
    (lambda d: _with(d, 0x1EF, b"\x01"), "0x1EF"),
    (lambda d: _with(d, 0x208, b"\x01"), "0x208"),
    (lambda d: _with(d, 0x330, b"\x01"), "0x330"),
    (lambda d: _with(d, 0x2A0 + 48, b"\x01"), "48 bytes"),
    (lambda d: _with(d, 0x2E8 + 48, b"\x01"), "48 bytes"),
    (lambda d: _with(d, 0x008, (0x10000).to_bytes(8, "little")), "bit 17"),
    (lambda d: _with(d, 0x008, (0x30000 | 1 << 40).to_bytes(8, "little")), "63:26"),
    (lambda d: _with(d, 0x048, (1 << 5).to_bytes(4, "little")), "31:5"),
    (lambda d: _with(d, 0x034, (2).to_bytes(4, "little")), "algorithm 2"),
]


@pytest.mark.parametrize(("change", "message"), MALFORMED)
def test_malformed_reports(testdata: object, change: object, message: str) -> None:
    data = next(s for s in SETS if s.name == "genoa-v5-oak").report_bytes()
    with pytest.raises(abi.ReportFormatError, match=message):
        abi.parse_report(change(data))  # type: ignore[operator]


@pytest.mark.parametrize(("change", "message"), MALFORMED)
def test_malformed_demo_reports(demo: ChainKeys, change: object, message: str) -> None:
    with pytest.raises(abi.ReportFormatError, match=message):
        abi.parse_report(change(demo_bytes(demo)))  # type: ignore[operator]


def test_a_demo_report_round_trips_and_reads_back(demo: ChainKeys) -> None:
    data = demo_bytes(demo)
    report = abi.parse_report(data)
    assert abi.encode_report(report) == data
    assert report.product() is Product.GENOA and report.signing_key == abi.SigningKey.VCEK
    assert not (report.debug or report.author_key_en or report.mask_chip_key)
    assert report.abi_version == (0, 0)
    assert abi.signature_from_der(report.signature_der()) == (
        report.signature_r,
        report.signature_s,
    )
    flags = attrs.evolve(report, signer_info=0b11, policy=report.policy | abi.POLICY_DEBUG | 0x0137)
    assert flags.author_key_en and flags.mask_chip_key and flags.debug
    assert flags.abi_version == (1, 0x37)


def test_reserved_ranges_by_version_on_demo_reports(demo: ChainKeys) -> None:
    v2 = demo_bytes(demo, older(demo_report(demo), 2))
    assert abi.parse_report(v2).product() is None
    with pytest.raises(abi.ReportFormatError, match="0x188"):
        abi.parse_report(_with(v2, 0x188, b"\x19"))  # no CPUID before v3
    v4 = demo_bytes(demo, older(demo_report(demo), 4))
    with pytest.raises(abi.ReportFormatError, match="0x1F8"):
        abi.parse_report(_with(v4, 0x1F8, b"\x01"))  # no mitigation vector before v5


def test_v2_and_v3_reserved_ranges(testdata: object) -> None:
    v2 = next(s for s in SETS if s.name == "milan-v2-virtee").report_bytes()
    with pytest.raises(abi.ReportFormatError, match="0x188"):
        abi.parse_report(_with(v2, 0x188, b"\x19"))  # no CPUID before v3
    v3 = next(s for s in SETS if s.name == "milan-v3-oak").report_bytes()
    with pytest.raises(abi.ReportFormatError, match="0x1F8"):
        abi.parse_report(_with(v3, 0x1F8, b"\x01"))  # no mitigation vector before v5


@pytest.mark.parametrize(
    ("family", "model", "product"),
    [
        (0x19, 0x00, Product.MILAN),
        (0x19, 0x01, Product.MILAN),
        (0x19, 0x0F, Product.MILAN),
        (0x19, 0x10, Product.GENOA),
        (0x19, 0x11, Product.GENOA),
        (0x19, 0xA0, Product.GENOA),
        (0x19, 0xAF, Product.GENOA),
        (0x1A, 0x00, Product.TURIN),
        (0x1A, 0x11, Product.TURIN),
        (0x19, 0x20, None),
        (0x1A, 0x12, None),
        (0x17, 0x31, None),
    ],
)
def test_product_from_cpuid(family: int, model: int, product: Product | None) -> None:
    assert abi.product_from_cpuid(family, model) == product


def test_tcb_layouts_and_order() -> None:
    milan = Tcb(bootloader=2, tee=0, snp=5, microcode=68)
    turin = Tcb(fmc=0, bootloader=1, tee=0, snp=2, microcode=71)
    assert abi.encode_tcb(turin).to_bytes(8, "little") == bytes.fromhex("0001000200000047")
    assert abi.parse_tcb(abi.encode_tcb(milan), turin=False) == milan
    assert abi.parse_tcb(abi.encode_tcb(turin), turin=True) == turin
    assert str(turin) == "fmc0/bl1/tee0/snp2/uc71" and str(milan) == "bl2/tee0/snp5/uc68"
    assert milan <= attrs.evolve(milan, microcode=70)
    assert not attrs.evolve(milan, snp=6) <= milan
    assert not milan <= turin  # layouts do not compare
    with pytest.raises(abi.ReportFormatError):
        abi.parse_tcb(int.from_bytes(bytes([2, 0, 1, 0, 0, 0, 5, 68]), "little"), turin=False)
    with pytest.raises(abi.ReportFormatError):
        abi.parse_tcb(int.from_bytes(bytes([0, 1, 0, 2, 9, 0, 0, 71]), "little"), turin=True)


_bytes = st.binary


@given(
    st.builds(
        abi.Report,
        version=st.sampled_from([2, 3, 4, 5]),
        guest_svn=st.integers(0, 2**32 - 1),
        policy=st.integers(0, 2**26 - 1).map(lambda p: p | abi.POLICY_RESERVED_ONE),
        family_id=_bytes(min_size=16, max_size=16),
        image_id=_bytes(min_size=16, max_size=16),
        vmpl=st.integers(0, 3),
        signature_algo=st.just(1),
        current_tcb=st.integers(0, 2**64 - 1),
        platform_info=st.integers(0, 2**64 - 1),
        signer_info=st.integers(0, 31),
        report_data=_bytes(min_size=64, max_size=64),
        measurement=_bytes(min_size=48, max_size=48),
        host_data=_bytes(min_size=32, max_size=32),
        id_key_digest=_bytes(min_size=48, max_size=48),
        author_key_digest=_bytes(min_size=48, max_size=48),
        report_id=_bytes(min_size=32, max_size=32),
        report_id_ma=_bytes(min_size=32, max_size=32),
        reported_tcb=st.integers(0, 2**64 - 1),
        cpuid_fam_id=st.integers(0, 255),
        cpuid_mod_id=st.integers(0, 255),
        cpuid_step=st.integers(0, 255),
        chip_id=_bytes(min_size=64, max_size=64),
        committed_tcb=st.integers(0, 2**64 - 1),
        current_build=st.integers(0, 255),
        current_minor=st.integers(0, 255),
        current_major=st.integers(0, 255),
        committed_build=st.integers(0, 255),
        committed_minor=st.integers(0, 255),
        committed_major=st.integers(0, 255),
        launch_tcb=st.integers(0, 2**64 - 1),
        launch_mit_vector=st.integers(0, 2**64 - 1),
        current_mit_vector=st.integers(0, 2**64 - 1),
        signature_r=st.integers(0, 2**384 - 1),
        signature_s=st.integers(0, 2**384 - 1),
    )
)
def test_encode_then_parse_is_the_identity(report: abi.Report) -> None:
    if report.version < 3:
        report = attrs.evolve(report, cpuid_fam_id=0, cpuid_mod_id=0, cpuid_step=0)
    if report.version < 5:
        report = attrs.evolve(report, launch_mit_vector=0, current_mit_vector=0)
    data = abi.encode_report(report)
    assert abi.parse_report(data) == report
    assert abi.encode_report(abi.parse_report(data)) == data
