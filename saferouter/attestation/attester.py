"""Where reports come from: the SEV-SNP guest device, or the demo attester.

Both produce the same 1184-byte report and the same certificate chain shape (VCEK,
ASK, ARK as PEM), so a quote looks the same either way and one verifier checks both;
``mode`` says which, and the demo's root is never AMD's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import trio
from cryptography.hazmat.primitives import serialization

from ..errors import DeviceError
from ..tee import device
from ..tee.abi import parse_report
from ..tee.demo import DemoAttester
from ..tee.device import AttesterMode
from ..tee.fetch import HttpxCertFetcher, fetch_chain, fetch_vcek
from ..tee.seal import DeviceKeySource, Sealer


class Attester(Protocol):
    mode: AttesterMode

    async def report(self, report_data: bytes) -> bytes: ...

    async def chain_pem(self) -> dict[str, str]:
        """{"vcek": PEM, "ask": PEM, "ark": PEM}"""
        ...


class DemoReports:
    mode: AttesterMode = "demo"

    def __init__(self, folder: Path, *, measurement: bytes) -> None:
        self._folder = folder
        self._demo: DemoAttester | None = None  # made on first use: two RSA-4096 keys
        self._lock = trio.Lock()
        self._measurement = measurement  # 48 bytes, as a launch digest would be

    async def _attester(self) -> DemoAttester:
        async with self._lock:
            if self._demo is None:
                self._demo = await trio.to_thread.run_sync(DemoAttester, self._folder)
        return self._demo

    async def report(self, report_data: bytes) -> bytes:
        demo = await self._attester()
        return demo.report(report_data, measurement=self._measurement)

    async def chain_pem(self) -> dict[str, str]:
        c = (await self._attester()).chain
        pem = serialization.Encoding.PEM
        return {
            "vcek": c.vcek.public_bytes(pem).decode(),
            "ask": c.ask.public_bytes(pem).decode(),
            "ark": c.ark.public_bytes(pem).decode(),
        }


class SevSnpReports:
    """Reports from configfs-tsm (or the ioctl); the VCEK and chain from KDS, cached."""

    mode: AttesterMode = "sev-snp"

    def __init__(self, data_dir: Path) -> None:
        self._configfs = device.ConfigfsTsm()
        self._device = device.SevGuestDevice()
        self._fetcher = HttpxCertFetcher(data_dir / "kds-cache")
        self._chain: dict[str, str] | None = None

    async def report(self, report_data: bytes) -> bytes:
        def get() -> bytes:
            if self._configfs.available():
                return self._configfs.get_report(report_data)[0]
            return self._device.get_report(report_data)

        return await trio.to_thread.run_sync(get)

    async def chain_pem(self) -> dict[str, str]:
        if self._chain is None:
            report = parse_report(await self.report(bytes(64)))
            product = report.product()
            if product is None:
                raise DeviceError("this guest's report does not name its product")
            pem = serialization.Encoding.PEM
            vcek = await fetch_vcek(self._fetcher, report, product)
            ask, ark = await fetch_chain(self._fetcher, product, vlek=report.signing_key == 1)
            self._chain = {
                "vcek": vcek.public_bytes(pem).decode(),
                "ask": ask.public_bytes(pem).decode(),
                "ark": ark.public_bytes(pem).decode(),
            }
        return self._chain


def open_attester(data_dir: Path, *, measurement: bytes) -> Attester:
    if device.detect() == "sev-snp":
        return SevSnpReports(data_dir)
    return DemoReports(data_dir / "tee-demo", measurement=measurement)


async def open_sealer(attester: Attester) -> Sealer | None:
    """What the gateway's keys (``identity.py``) are sealed with: in a SEV-SNP guest, the
    chip's derived key under this launch's measurement; ``None`` in demo mode, where
    they are 0600 files (a demo seal would guard them with a secret beside them)."""
    if attester.mode != "sev-snp":
        return None
    launch = parse_report(await attester.report(bytes(64))).measurement
    return Sealer(DeviceKeySource(device.SevGuestDevice()), measurement=launch)
