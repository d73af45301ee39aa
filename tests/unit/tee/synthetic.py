"""Synthetic SEV-SNP material from the demo CA (:mod:`saferouter.tee.demo`): reports in
the real ATTESTATION_REPORT layout, signed by ARK → ASK → VEK chains shaped like AMD's.

None of it needs outside data, so the 100 % coverage gate on abi, kds, verify and
validate holds on a fresh clone; the real vectors (vectors.py) still run wherever
../shared/testdata is present, and stay the proof that the parsers fit AMD's bytes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from saferouter.tee import abi, verify
from saferouter.tee.abi import Product
from saferouter.tee.demo import DEMO_SUFFIX, ChainKeys, demo_report_fields, sign_report


def demo_root(
    chain: ChainKeys, product: Product = Product.GENOA, **changes: Any
) -> verify.TrustRoot:
    """A trust root pinning ``chain`` (its ASK doubles as the ASVK of a VLEK chain)."""
    root = verify.TrustRoot(
        name="DEMO",
        ark={product: verify.fingerprint(chain.ark)},
        ask={product: verify.fingerprint(chain.ask)},
        asvk={product: verify.fingerprint(chain.ask)},
        cn_suffix=DEMO_SUFFIX,
    )
    return attrs.evolve(root, **changes)


def demo_report(chain: ChainKeys, **changes: Any) -> abi.Report:
    """An unsigned v5 Genoa report for ``chain``'s chip, with distinct non-zero
    REPORT_DATA, MEASUREMENT and HOST_DATA so that expectations can miss them."""
    base = demo_report_fields(
        b"\x03" * 64,
        chip_id=chain.chip_id.ljust(64, b"\0"),
        measurement=b"\x04" * 48,
        host_data=b"\x05" * 32,
    )
    return attrs.evolve(base, **changes)


def older(report: abi.Report, version: int) -> abi.Report:
    """``report`` as a v2 (no CPUID) or v3/v4 (no mitigation vectors) report."""
    cpuid = {"cpuid_fam_id": 0, "cpuid_mod_id": 0, "cpuid_step": 0} if version < 3 else {}
    return attrs.evolve(report, version=version, launch_mit_vector=0, current_mit_vector=0, **cpuid)


def demo_bytes(chain: ChainKeys, report: abi.Report | None = None) -> bytes:
    """``report`` (by default :func:`demo_report`) encoded and signed by ``chain``'s VEK."""
    return sign_report(report or demo_report(chain), chain.vek_key)


def run(
    chain: ChainKeys,
    report: abi.Report,
    root: verify.TrustRoot | None = None,
    **overrides: Any,
) -> verify.Verified:
    """``verify_report`` on ``report`` signed by ``chain``, now, under its demo root;
    ``overrides`` replace certificates or pass ``product``, ``now``, ``on_step``."""
    kwargs: dict[str, Any] = {
        "vek": chain.vek,
        "ask": chain.ask,
        "ark": chain.ark,
        "now": dt.datetime.now(dt.UTC),
        **overrides,
    }
    return verify.verify_report(demo_bytes(chain, report), root=root or demo_root(chain), **kwargs)
