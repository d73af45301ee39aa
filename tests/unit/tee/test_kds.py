"""KDS URLs and the VCEK/VLEK extensions, on the real certificates."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from saferouter.errors import ParseError
from saferouter.tee import abi, kds
from saferouter.tee.abi import Product, Tcb
from saferouter.tee.demo import DEMO_TCB, ChainKeys, make_chain

from .vectors import SETS, SEV


def vek(relative: str) -> x509.Certificate:
    assert SEV is not None
    return kds.load_certificate((SEV / relative).read_bytes())


def test_turin_url_is_the_one_oak_fetched(testdata: object) -> None:
    turin = next(s for s in SETS if s.name == "turin-v5-oak")
    report = abi.parse_report(turin.report_bytes())
    url = kds.vcek_url(
        Product.TURIN, report.chip_id, report.tcb(report.reported_tcb, Product.TURIN)
    )
    # the same parameters as the URL in Oak's endorsements comment, in KDS's own order
    assert url == (
        "https://kdsintf.amd.com/vcek/v1/Turin/3b42092f69c656d3?fmcSPL=0&blSPL=1"
        "&teeSPL=0&snpSPL=2&ucodeSPL=71"
    )


def test_milan_url_uses_the_whole_chip_id(testdata: object) -> None:
    milan = next(s for s in SETS if s.name == "milan-v2-gosevguest")
    report = abi.parse_report(milan.report_bytes())
    url = kds.vcek_url(
        Product.MILAN, report.chip_id, report.tcb(report.reported_tcb, Product.MILAN)
    )
    assert url.startswith("https://kdsintf.amd.com/vcek/v1/Milan/3ac3fe21")
    assert url.endswith("?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68")
    assert len(url.split("/")[-1].split("?")[0]) == 128


def test_chain_and_crl_urls() -> None:
    assert kds.cert_chain_url(Product.GENOA) == "https://kdsintf.amd.com/vcek/v1/Genoa/cert_chain"
    assert (
        kds.cert_chain_url(Product.MILAN, vlek=True)
        == "https://kdsintf.amd.com/vlek/v1/Milan/cert_chain"
    )
    assert kds.crl_url(Product.TURIN) == "https://kdsintf.amd.com/vcek/v1/Turin/crl"
    with pytest.raises(ValueError, match="FMC"):
        kds.vcek_url(Product.TURIN, bytes(64), Tcb(bootloader=1, tee=0, snp=1, microcode=1))


@pytest.mark.parametrize(
    ("relative", "turin", "name", "tcb", "hwid", "csp"),
    [
        (
            "milan-v2-gosevguest/vcek.testcer",
            False,
            "Milan-B0",
            Tcb(bootloader=2, tee=0, snp=5, microcode=68),
            "3ac3fe21",
            None,
        ),
        (
            "turin-v5-oak/vcek.der",
            True,
            "Turin",
            Tcb(fmc=0, bootloader=1, tee=0, snp=2, microcode=71),
            "3b42092f69c656d3",
            None,
        ),
        (
            "genoa-v3-azure-trustee/vcek-genoa.pem",
            False,
            "Genoa",
            Tcb(bootloader=10, tee=0, snp=23, microcode=84),
            "",
            None,
        ),
        (
            "milan-v3-vlek-trustee/test-vlek.der",
            False,
            "Milan",
            Tcb(bootloader=4, tee=0, snp=24, microcode=217),
            None,
            "CN=cc-us-east-2.amazonaws.com",
        ),
        (
            "turin-vcek-virtee/vcek_turin.der",
            True,
            "Turin",
            Tcb(fmc=0, bootloader=0, tee=0, snp=0, microcode=9),
            "1e550a8ee5cf9f4d",
            None,
        ),
    ],
)
def test_extensions(
    testdata: object,
    relative: str,
    turin: bool,
    name: str,
    tcb: Tcb,
    hwid: str | None,
    csp: str | None,
) -> None:
    ext = kds.parse_vek_extensions(vek(relative), turin=turin)
    assert (ext.product_name, ext.tcb, ext.csp_id) == (name, tcb, csp)
    assert ext.struct_version == (1 if turin else 0)
    assert ext.is_vlek is (csp is not None)
    if hwid is None:
        assert ext.hwid is None
    else:
        assert ext.hwid is not None and ext.hwid.hex().startswith(hwid)


def test_broken_extensions(testdata: object) -> None:
    with pytest.raises(kds.ExtensionError, match="hwID is 64 bytes, not 8"):
        kds.parse_vek_extensions(vek("milan-v2-gosevguest/vcek.testcer"), turin=True)
    with pytest.raises(kds.ExtensionError, match=r"3\.9 is missing"):
        kds.parse_vek_extensions(vek("milan-v3-vlek-trustee/test-vlek.der"), turin=True)
    legacy = vek("milan-v2-trustee/test-vcek-invalid-legacy.der")
    kds.parse_vek_extensions(legacy, turin=False)  # padded INTEGERs parse; values differ


def test_broken_demo_extensions(demo: ChainKeys, demo_vlek: ChainKeys) -> None:
    with pytest.raises(kds.ExtensionError, match="hwID is 64 bytes, not 8"):
        kds.parse_vek_extensions(demo.vek, turin=True)
    with pytest.raises(kds.ExtensionError, match=r"3\.9 is missing"):
        kds.parse_vek_extensions(demo_vlek.vek, turin=True)
    raw = {kds.OID_BL_SPL: b"\x02\x01"}
    with pytest.raises(kds.ExtensionError, match="INTEGER"):
        kds._integer(raw, kds.OID_BL_SPL)
    with pytest.raises(kds.ExtensionError, match="IA5String"):
        kds._ia5({kds.OID_PRODUCT_NAME: b"\x0c\x01x"}, kds.OID_PRODUCT_NAME)
    with pytest.raises(kds.ExtensionError, match="ASCII"):
        kds._ia5({kds.OID_PRODUCT_NAME: b"\x16\x01\xff"}, kds.OID_PRODUCT_NAME)


def test_loading(testdata: object) -> None:
    assert SEV is not None
    pem = (SEV / "genoa-v3-azure-trustee/vcek-genoa.pem").read_bytes()
    cert = kds.load_certificate(pem)
    assert kds.load_certificate(cert.public_bytes(Encoding.DER)) == cert
    with pytest.raises(ParseError):
        kds.load_certificate(b"not a certificate")
    with pytest.raises(ParseError):
        kds.load_cert_chain(b"nothing")
    with pytest.raises(ParseError, match="not 1"):
        kds.load_cert_chain(pem)


def test_demo_chain_has_the_real_extension_shapes(demo: ChainKeys, demo_vlek: ChainKeys) -> None:
    ext = kds.parse_vek_extensions(demo.vek, turin=False)
    assert ext.hwid == demo.chip_id and ext.product_name == "Genoa"
    assert (ext.struct_version, ext.tcb, ext.csp_id) == (0, DEMO_TCB, None)
    turin_tcb = Tcb(fmc=1, bootloader=2, tee=0, snp=3, microcode=40)
    turin = make_chain(product=Product.TURIN, tcb=turin_tcb)
    ext = kds.parse_vek_extensions(turin.vek, turin=True)
    assert (ext.struct_version, ext.tcb, ext.hwid) == (1, turin_tcb, turin.chip_id)
    vlek = kds.parse_vek_extensions(demo_vlek.vek, turin=False)
    assert vlek.is_vlek and vlek.hwid is None and vlek.csp_id == "CN=demo.invalid"


def test_loading_demo_certificates(demo: ChainKeys) -> None:
    for cert in (demo.ark, demo.ask, demo.vek):
        assert kds.load_certificate(cert.public_bytes(Encoding.PEM)) == cert
        assert kds.load_certificate(cert.public_bytes(Encoding.DER)) == cert
    chain = demo.ask.public_bytes(Encoding.PEM) + demo.ark.public_bytes(Encoding.PEM)
    assert kds.load_cert_chain(chain) == (demo.ask, demo.ark)
    with pytest.raises(ParseError, match="not a certificate"):
        kds.load_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ParseError, match="not a PEM certificate chain"):
        kds.load_cert_chain(b"nothing")
    with pytest.raises(ParseError, match="not 1"):
        kds.load_cert_chain(demo.vek.public_bytes(Encoding.PEM))


def test_vcek_urls_from_crafted_chip_ids() -> None:
    chip_id = bytes(range(64))
    genoa = kds.vcek_url(Product.GENOA, chip_id, DEMO_TCB)
    assert genoa == (
        f"https://kdsintf.amd.com/vcek/v1/Genoa/{chip_id.hex()}"
        "?blSPL=10&teeSPL=0&snpSPL=23&ucodeSPL=84"
    )
    turin = kds.vcek_url(
        Product.TURIN, chip_id, Tcb(fmc=3, bootloader=1, tee=0, snp=2, microcode=71)
    )
    assert turin == (
        "https://kdsintf.amd.com/vcek/v1/Turin/0001020304050607?fmcSPL=3&blSPL=1"
        "&teeSPL=0&snpSPL=2&ucodeSPL=71"
    )
