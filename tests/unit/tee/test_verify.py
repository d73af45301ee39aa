"""verify_report against the real vectors, as a Wycheproof-style table (valid / invalid
with the error it must raise), plus crafted chains for the steps real data cannot reach."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from cryptography import x509

from saferouter.tee import abi, kds, verify
from saferouter.tee.abi import Product

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
    result: str  # "valid" or the ReportVerificationError subclass name
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
        with pytest.raises(verify.ReportVerificationError):
            verify.verify_report(bytes(tampered), now=vector.now, product=product, **kwargs)
    for offset in (0x2A0, 0x2A0 + 47, 0x2E8, 0x2E8 + 47):  # R and S themselves
        tampered = bytearray(data)
        tampered[offset] ^= 0x80
        with pytest.raises(verify.ReportSignatureInvalid):
            verify.verify_report(bytes(tampered), now=vector.now, product=product, **kwargs)
