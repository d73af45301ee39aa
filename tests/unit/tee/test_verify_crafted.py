"""verify_report on crafted chains from the demo CA: every step, valid and invalid, with
no outside data (the real-vector table is test_verify.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from saferouter.tee import abi, verify
from saferouter.tee.abi import Product, Tcb
from saferouter.tee.demo import ChainKeys, make_chain

from .synthetic import demo_bytes, demo_report, demo_root, older, run


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
    demo: ChainKeys,
    changes: dict[str, Any],
    error: type[verify.ReportVerificationError],
    match: str,
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


def test_every_step_is_reported_in_order(demo: ChainKeys) -> None:
    seen: list[str] = []
    verified = run(demo, demo_report(demo), on_step=seen.append)
    assert seen == list(verified.steps) and len(seen) == 11
    assert seen[0] == verify.MalformedReport.step and seen[-1] == verify.ProductMismatch.step


def test_bytes_that_are_no_report(demo: ChainKeys) -> None:
    data = demo_bytes(demo)
    with pytest.raises(verify.MalformedReport, match="1184 bytes"):
        verify.verify_report(
            data[:-1], vek=demo.vek, ask=demo.ask, ark=demo.ark, now=dt.datetime.now(dt.UTC)
        )


def test_the_product_a_caller_gives(demo: ChainKeys) -> None:
    with pytest.raises(verify.UnknownProduct, match="from a Genoa, not a Milan"):
        run(demo, demo_report(demo), product=Product.MILAN)
    v2 = older(demo_report(demo), 2)
    with pytest.raises(verify.UnknownProduct, match="v2 report carries no CPUID"):
        run(demo, v2)
    assert run(demo, v2, product=Product.GENOA).product is Product.GENOA
    assert run(demo, older(demo_report(demo), 3)).product is Product.GENOA


def test_each_certificate_is_checked_at_now(demo: ChainKeys) -> None:
    before = demo.ark.not_valid_before_utc - dt.timedelta(seconds=1)  # all three start then
    with pytest.raises(verify.CertificateExpired, match="the ARK is valid"):
        run(demo, demo_report(demo), now=before)
    after = demo.vek.not_valid_after_utc + dt.timedelta(days=1)  # 7 years; the CA's 25
    with pytest.raises(verify.CertificateExpired, match="the VEK is valid"):
        run(demo, demo_report(demo), now=after)


@pytest.mark.parametrize("offset", [0x004, 0x050, 0x090, 0x140, 0x1A0])
def test_a_flipped_bit_breaks_the_signature(demo: ChainKeys, offset: int) -> None:
    data = bytearray(demo_bytes(demo))
    data[offset] ^= 0x40  # inside a field with no format rule: only the signature notices
    with pytest.raises(verify.ReportSignatureInvalid):
        verify.verify_report(
            bytes(data),
            vek=demo.vek,
            ask=demo.ask,
            ark=demo.ark,
            now=dt.datetime.now(dt.UTC),
            root=demo_root(demo),
        )


def test_an_ask_from_another_ark_is_refused(demo: ChainKeys) -> None:
    other = make_chain()
    with pytest.raises(verify.AskInvalid, match="not signed by the ARK"):
        run(demo, demo_report(demo), ask=other.ask)
    with pytest.raises(verify.VekInvalid, match="not signed by the ASK"):
        run(demo, demo_report(demo), vek=other.vek)
