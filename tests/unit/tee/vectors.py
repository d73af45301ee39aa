"""The real SEV-SNP vectors in ../shared/testdata/sev-snp, as a Wycheproof-style table:
each case is valid or invalid, with the reason (the error it must raise)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import attrs

from saferouter.tee.abi import Product

from ...conftest import testdata_dir

_ROOT = testdata_dir()
SEV = _ROOT / "sev-snp" if _ROOT else None


@attrs.frozen
class VectorSet:
    name: str
    report: str
    vek: str
    chain: str
    product: Product
    now: dt.datetime  # inside every certificate's validity
    vlek: bool = False
    debug: bool = False

    def report_bytes(self) -> bytes:
        assert SEV is not None
        data = (SEV / self.report).read_bytes()
        return bytes.fromhex(data.decode().strip()) if self.report.endswith(".hex") else data

    def path(self, relative: str) -> Path:
        assert SEV is not None
        return SEV / relative


def _at(year: int, month: int, day: int) -> dt.datetime:
    return dt.datetime(year, month, day, tzinfo=dt.UTC)


SETS = [
    VectorSet(
        "milan-v2-gosevguest",
        "milan-v2-gosevguest/attestation.bin",
        "milan-v2-gosevguest/vcek.testcer",
        "amd-roots/milan_ask_ark.pem",
        Product.MILAN,
        _at(2023, 1, 1),
        debug=True,
    ),
    VectorSet(
        "milan-v2-virtee",
        "milan-v2-virtee/report_milan.hex",
        "milan-v2-virtee/vcek_milan.der",
        "amd-roots/milan_ask_ark.pem",
        Product.MILAN,
        _at(2025, 1, 1),
    ),
    VectorSet(
        "milan-v2-trustee",
        "milan-v2-trustee/test-report.bin",
        "milan-v2-trustee/test-vcek.der",
        "amd-roots/milan_ask_ark.pem",
        Product.MILAN,
        _at(2025, 1, 1),
    ),
    VectorSet(
        "milan-v3-vlek-trustee",
        "milan-v3-vlek-trustee/test-vlek-report.bin",
        "milan-v3-vlek-trustee/test-vlek.der",
        "amd-roots/milan_asvk_ark_vlek.pem",
        Product.MILAN,
        _at(2025, 6, 1),
        vlek=True,
    ),
    VectorSet(
        "milan-v3-oak",
        "milan-v3-oak/report.bin",
        "milan-v3-oak/vcek.der",
        "amd-roots/milan_ask_ark.pem",
        Product.MILAN,
        _at(2025, 6, 1),
    ),
    VectorSet(
        "genoa-v3-azure-trustee",
        "genoa-v3-azure-trustee/report.bin",
        "genoa-v3-azure-trustee/vcek-genoa.pem",
        "amd-roots/genoa_ask_ark.pem",
        Product.GENOA,
        _at(2025, 6, 1),
    ),
    VectorSet(
        "genoa-v5-oak",
        "genoa-v5-oak/report.bin",
        "genoa-v5-oak/vcek.der",
        "amd-roots/genoa_ask_ark.pem",
        Product.GENOA,
        _at(2025, 9, 1),
    ),
    VectorSet(
        "turin-v5-oak",
        "turin-v5-oak/report.bin",
        "turin-v5-oak/vcek.der",
        "amd-roots/turin_ask_ark.pem",
        Product.TURIN,
        _at(2025, 9, 1),
    ),
]
