"""Sealing: opens for the same measurement and secret only."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from saferouter.errors import SealError
from saferouter.tee.seal import DemoKeySource, Sealer

M1, M2 = b"\x01" * 48, b"\x02" * 48


def sealer(tmp_path: Path, measurement: bytes, secret: str = "seal.key") -> Sealer:
    return Sealer(DemoKeySource(tmp_path / secret, measurement), measurement=measurement)


def test_round_trip_and_secret_file_mode(tmp_path: Path) -> None:
    blob = sealer(tmp_path, M1).seal(b"identity key")
    assert sealer(tmp_path, M1).unseal(blob) == b"identity key"
    assert stat.S_IMODE((tmp_path / "seal.key").stat().st_mode) == 0o600
    assert b"identity key" not in blob


def test_another_measurement_cannot_open(tmp_path: Path) -> None:
    blob = sealer(tmp_path, M1).seal(b"secret")
    with pytest.raises(SealError, match="another measurement"):
        sealer(tmp_path, M2).unseal(blob)
    # a header rewritten to claim M2's digest does not help: the key is M2's, not M1's
    forged = blob[:29] + hashlib.sha256(M2).digest() + blob[61:]
    with pytest.raises(SealError, match="does not open"):
        sealer(tmp_path, M2).unseal(forged)


def test_another_secret_or_a_flipped_byte_cannot_open(tmp_path: Path) -> None:
    blob = sealer(tmp_path, M1).seal(b"secret")
    with pytest.raises(SealError, match="does not open"):
        sealer(tmp_path, M1, secret="other.key").unseal(blob)
    for offset in (0, 10, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[offset] ^= 1
        with pytest.raises(SealError):
            sealer(tmp_path, M1).unseal(bytes(tampered))
    with pytest.raises(SealError, match="too short"):
        sealer(tmp_path, M1).unseal(b"short")
