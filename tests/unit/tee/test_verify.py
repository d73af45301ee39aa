"""verify_report against the real vectors, as a Wycheproof-style table (valid / invalid
with the error it must raise), plus crafted chains for the steps real data cannot reach."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from saferouter.tee import abi, kds, verify
from saferouter.tee.abi import Product, Tcb
from saferouter.tee.demo import (
    DEMO_SUFFIX,
    ChainKeys,
    demo_report_fields,
    make_chain,
    sign_report,
)

from .vectors import SETS, SEV, VectorSet

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
BY_NAME = {s.name: s for s in SETS}


def certs(vek: str, chain: str) -> dict[str, x509.Certificate]:
    assert SEV is not None
    ask, ark = kds.load_cert_chain((SEV / chain).read_bytes())
    return {"vek": kds.load_certificate((SEV / vek).read_bytes()), "ask": ask, "ark": ark}


@attrs.frozen
class Case:
    """One row: a report (from a vector), certificates, options, and the outcome."""

    comment: str
    report: str  # vector name
    vek: str
    chain: str
    result: str  # "valid" or the VerificationError subclass name
    product: Product | None = None
    now: dt.datetime = NOW


def table() -> list[Case]:
    rows = [
        Case(
            f"{s.name} verifies with its product's chain",
            s.name,
            s.vek,
            s.chain,
            "valid",
            product=s.product if s.name.startswith("milan-v2") else None,
            now=s.now,
        )
        for s in SETS
    ]
    g, m = BY_NAME["genoa-v3-azure-trustee"], BY_NAME["milan-v2-trustee"]
    rows += [
        Case(
            "Milan VCEK with the Genoa report and chain",
            g.name,
            "milan-v2-gosevguest/vcek.testcer",
            g.chain,
            "VekInvalid",
        ),
        Case(
            "Turin VCEK with the Genoa chain",
            g.name,
            "turin-vcek-virtee/vcek_turin.der",
            g.chain,
            "VekInvalid",
        ),
        Case(
            "trustee's modified VCEK (padded INTEGERs)",
            m.name,
            "milan-v2-trustee/test-vcek-invalid-legacy.der",
            m.chain,
            "VekInvalid",
            product=Product.MILAN,
        ),
        Case(
            "trustee's modified VCEK (OCTET STRING hwID)",
            m.name,
            "milan-v2-trustee/test-vcek-invalid-new.der",
            m.chain,
            "VekInvalid",
            product=Product.MILAN,
        ),
        Case(
            "Genoa report against the Milan root",
            g.name,
            g.vek,
            "amd-roots/milan_ask_ark.pem",
            "ArkInvalid",
        ),
        Case("v2 report without a product", m.name, m.vek, m.chain, "UnknownProduct"),
        Case(
            "v2 Milan report said to be Genoa",
            m.name,
            m.vek,
            m.chain,
            "ArkInvalid",
            product=Product.GENOA,
        ),
        Case(
            "v3 Genoa report said to be Milan",
            g.name,
            g.vek,
            g.chain,
            "UnknownProduct",
            product=Product.MILAN,
        ),
        Case(
            "VLEK past its validity",
            "milan-v3-vlek-trustee",
            "milan-v3-vlek-trustee/test-vlek.der",
            "amd-roots/milan_asvk_ark_vlek.pem",
            "CertificateExpired",
            now=dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
        ),
        Case(
            "VLEK report with the VCEK chain",
            "milan-v3-vlek-trustee",
            "milan-v3-vlek-trustee/test-vlek.der",
            "amd-roots/milan_ask_ark.pem",
            "AskInvalid",
        ),
        Case(
            "VCEK report with the VLEK chain",
            "milan-v3-oak",
            "milan-v3-oak/vcek.der",
            "amd-roots/milan_asvk_ark_vlek.pem",
            "AskInvalid",
        ),
        Case(
            "another Milan chip's VCEK",
            "milan-v2-virtee",
            m.vek,
            m.chain,
            "ReportSignatureInvalid",
            product=Product.MILAN,
        ),
        Case(
            "a VCEK before it was issued",
            g.name,
            g.vek,
            g.chain,
            "CertificateExpired",
            now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        ),
    ]
    return rows


@pytest.mark.parametrize("case", table(), ids=lambda c: c.comment)
def test_vector_table(testdata: object, case: Case) -> None:
    data = BY_NAME[case.report].report_bytes()
    kwargs: dict[str, Any] = certs(case.vek, case.chain)
    if case.result == "valid":
        seen: list[str] = []
        verified = verify.verify_report(
            data, now=case.now, product=case.product, on_step=seen.append, **kwargs
        )
        assert verified.root == "AMD" and verified.product == BY_NAME[case.report].product
        assert len(verified.steps) == 11 and seen == list(verified.steps)
        return
    error = getattr(verify, case.result)
    with pytest.raises(error) as raised:
        verify.verify_report(data, now=case.now, product=case.product, **kwargs)
    assert raised.value.step == error.step


@pytest.mark.parametrize("vector", SETS, ids=[s.name for s in SETS])
def test_a_bit_flip_anywhere_in_the_signed_part_fails(testdata: object, vector: VectorSet) -> None:
    data = vector.report_bytes()
    kwargs: dict[str, Any] = certs(vector.vek, vector.chain)
    product = vector.product
    for offset in range(abi.SIGNED_SIZE):
        tampered = bytearray(data)
        tampered[offset] ^= 1 << (offset % 8)
        with pytest.raises(verify.VerificationError):
            verify.verify_report(bytes(tampered), now=vector.now, product=product, **kwargs)
    for offset in (0x2A0, 0x2A0 + 47, 0x2E8, 0x2E8 + 47):  # R and S themselves
        tampered = bytearray(data)
        tampered[offset] ^= 0x80
        with pytest.raises(verify.ReportSignatureInvalid):
            verify.verify_report(bytes(tampered), now=vector.now, product=product, **kwargs)


# --- crafted chains: steps real vectors cannot reach --------------------------------


@pytest.fixture(scope="module")
def demo() -> ChainKeys:
    return make_chain()


def demo_root(
    chain: ChainKeys, product: Product = Product.GENOA, **changes: Any
) -> verify.TrustRoot:
    root = verify.TrustRoot(
        name="DEMO",
        ark={product: verify.fingerprint(chain.ark)},
        ask={product: verify.fingerprint(chain.ask)},
        asvk={product: verify.fingerprint(chain.ask)},
        cn_suffix=DEMO_SUFFIX,
    )
    return attrs.evolve(root, **changes)


def demo_report(chain: ChainKeys, **changes: Any) -> abi.Report:
    base = demo_report_fields(bytes(64), chip_id=chain.chip_id.ljust(64, b"\0"))
    return attrs.evolve(base, **changes)


def run(
    chain: ChainKeys, report: abi.Report, root: verify.TrustRoot | None = None, **overrides: Any
) -> verify.Verified:
    kwargs: dict[str, Any] = {"vek": chain.vek, "ask": chain.ask, "ark": chain.ark, **overrides}
    return verify.verify_report(
        sign_report(report, chain.vek_key),
        now=dt.datetime.now(dt.UTC),
        root=root or demo_root(chain),
        **kwargs,
    )


def test_demo_chain_verifies_only_under_the_demo_root(demo: ChainKeys) -> None:
    verified = run(demo, demo_report(demo))
    assert verified.root == "DEMO" and verified.product is Product.GENOA
    with pytest.raises(verify.ArkInvalid, match="AMD's Genoa root"):
        run(demo, demo_report(demo), root=verify.AMD_ROOT)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"cpuid_fam_id": 0x17}, verify.UnknownProduct, "no known"),
        ({"signer_info": 7 << 2}, verify.SigningKeyMismatch, "cannot be verified"),
        ({"signer_info": 2}, verify.SigningKeyMismatch, "mask chip key True"),
        (
            {"reported_tcb": abi.encode_tcb(Tcb(bootloader=10, tee=0, snp=24, microcode=84))},
            verify.TcbMismatch,
            "REPORTED_TCB",
        ),
        ({"reported_tcb": 1 << 16}, verify.TcbMismatch, "reserved"),
        ({"chip_id": bytes(63) + b"\x01"}, verify.ChipIdMismatch, "hwID"),
        ({"signer_info": 1 << 2}, verify.SigningKeyMismatch, "VLEK-signed"),
    ],
)
def test_crafted_report_failures(
    demo: ChainKeys, changes: dict[str, Any], error: type[verify.VerificationError], match: str
) -> None:
    with pytest.raises(error, match=match):
        run(demo, demo_report(demo, **changes))


def test_masked_chip_id_skips_the_hwid_check(demo: ChainKeys) -> None:
    assert run(demo, demo_report(demo, chip_id=bytes(64))).root == "DEMO"


def test_root_name_and_product_name_must_match_the_product() -> None:
    chain = make_chain(product_name="Milan-B0")
    with pytest.raises(verify.ProductMismatch, match="Milan-B0"):
        run(chain, demo_report(chain))
    other = make_chain()
    with pytest.raises(verify.ProductMismatch, match="root"):
        run(other, demo_report(other), root=demo_root(other, cn_suffix="-OTHER"))


def test_vek_checks() -> None:
    chain = make_chain(issuer_cn="SEV-Somebody-Else")
    with pytest.raises(verify.VekInvalid, match="issuer"):
        run(chain, demo_report(chain))
    # an RSA "VEK": the ARK presented as a VEK issued by itself
    demo = make_chain()
    root = demo_root(demo, ask={Product.GENOA: verify.fingerprint(demo.ark)})
    with pytest.raises(verify.VekInvalid, match="P-384"):
        run(demo, demo_report(demo), root=root, vek=demo.ark, ask=demo.ark)


def test_a_signature_that_is_not_rsa_pss_is_refused(demo: ChainKeys) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ARK-Genoa")])
    now = dt.datetime.now(dt.UTC)
    pkcs1 = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA384())
    )
    with pytest.raises(verify.ArkInvalid, match="RSASSA-PSS"):
        run(demo, demo_report(demo), ark=pkcs1)


def test_turin_chain_and_chip_id_rules() -> None:
    turin_tcb = Tcb(fmc=1, bootloader=2, tee=0, snp=3, microcode=40)
    chain = make_chain(product=Product.TURIN, tcb=turin_tcb)
    report = demo_report(
        chain, cpuid_fam_id=0x1A, cpuid_mod_id=0x02, reported_tcb=abi.encode_tcb(turin_tcb)
    )
    root = demo_root(chain, product=Product.TURIN)
    assert run(chain, report, root=root).product is Product.TURIN
    with pytest.raises(verify.ChipIdMismatch, match="first 8 bytes"):
        run(chain, attrs.evolve(report, chip_id=chain.chip_id + b"\x01" * 56), root=root)


def test_vlek_chain() -> None:
    chain = make_chain(vlek=True)
    report = demo_report(chain, signer_info=1 << 2, chip_id=bytes(64))
    assert run(chain, report).signing_key is abi.SigningKey.VLEK
    with pytest.raises(verify.SigningKeyMismatch, match="VCEK-signed"):
        run(chain, attrs.evolve(report, signer_info=0))


def test_a_vcek_named_like_a_vlek_is_refused() -> None:
    chain = make_chain(vek_cn="SEV-VLEK")
    with pytest.raises(verify.SigningKeyMismatch, match="CN is SEV-VLEK"):
        run(chain, demo_report(chain))
