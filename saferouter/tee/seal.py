"""Sealing: encrypt bytes so that only the same build, on the same machine, opens them.

In a guest the key comes from ``SNP_GET_DERIVED_KEY`` with ``root_key_select = VCEK``
(bound to the chip) and ``guest_field_select = MEASUREMENT | GUEST_POLICY`` (bound to
the launch measurement and policy), at a *pinned* ``tcb_version`` and ``guest_svn`` so a
firmware update does not lock the data out (../shared/reference/sevsnp.md §3). In demo
mode a random 32-byte secret in the data dir (0600) stands in for the chip, mixed with
the measurement the same way. Either way the 32 bytes go through HKDF-SHA-256 with
SafeRouter's own label into an AES-256-GCM key; the envelope header (what the key was
derived from) is authenticated data. A blob sealed under another measurement, another
chip or secret, or altered in any byte, does not open: :class:`SealError`.

Limits, stated plainly: the key is per chip (a fleet needs re-provisioning), and a new
build has a new measurement (its predecessor must re-seal for it after verifying it).
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..datadir import write_private_file
from ..errors import SealError
from .device import FIELD_GUEST_POLICY, FIELD_MEASUREMENT, SevGuestDevice

MAGIC = b"SRSEAL1\x00"
MODE_SEV_SNP, MODE_DEMO = 1, 2
SEAL_FIELDS = FIELD_MEASUREMENT | FIELD_GUEST_POLICY
_HEADER = struct.Struct("<8sBQIQ32s12s")  # magic, mode, fields, svn, tcb, SHA-256(meas), nonce
_LABEL = b"saferouter seal v1"


class KeySource(Protocol):
    mode: int

    def root_key(self, *, field_select: int, guest_svn: int, tcb_version: int) -> bytes:
        """32 secret bytes bound to what ``field_select`` names."""
        ...


class DeviceKeySource:
    """The guest's ``SNP_GET_DERIVED_KEY`` (the firmware mixes in the measurement)."""

    mode = MODE_SEV_SNP

    def __init__(self, device: SevGuestDevice) -> None:
        self._device = device

    def root_key(self, *, field_select: int, guest_svn: int, tcb_version: int) -> bytes:
        return self._device.get_derived_key(
            field_select=field_select, guest_svn=guest_svn, tcb_version=tcb_version
        )


class DemoKeySource:
    """A secret file in the data dir, mixed with the measurement (no hardware)."""

    mode = MODE_DEMO

    def __init__(self, secret_path: Path, measurement: bytes) -> None:
        if not secret_path.exists():
            write_private_file(secret_path, secrets.token_bytes(32))
        self._secret = secret_path.read_bytes()
        self._measurement = measurement

    def root_key(self, *, field_select: int, guest_svn: int, tcb_version: int) -> bytes:
        context = struct.pack("<QIQ", field_select, guest_svn, tcb_version)
        return hashlib.sha256(self._secret + context + self._measurement).digest()


class Sealer:
    def __init__(
        self, source: KeySource, *, measurement: bytes, guest_svn: int = 0, tcb_version: int = 0
    ) -> None:
        self._source = source
        self._measurement_digest = hashlib.sha256(measurement).digest()
        self._svn = guest_svn
        self._tcb = tcb_version

    def seal(self, plaintext: bytes) -> bytes:
        header = _HEADER.pack(
            MAGIC,
            self._source.mode,
            SEAL_FIELDS,
            self._svn,
            self._tcb,
            self._measurement_digest,
            secrets.token_bytes(12),
        )
        return header + AESGCM(self._key(header)).encrypt(header[-12:], plaintext, header)

    def unseal(self, blob: bytes) -> bytes:
        if len(blob) < _HEADER.size + 16:
            raise SealError("not a sealed blob: too short")
        header = blob[: _HEADER.size]
        magic, mode, fields, svn, tcb, digest, nonce = _HEADER.unpack(header)
        if magic != MAGIC:
            raise SealError("not a sealed blob")
        if mode != self._source.mode:
            raise SealError("sealed in another mode (demo / sev-snp)")
        if digest != self._measurement_digest:
            raise SealError("sealed under another measurement")
        try:
            key = self._source.root_key(field_select=fields, guest_svn=svn, tcb_version=tcb)
            return AESGCM(_hkdf(key, header)).decrypt(nonce, blob[_HEADER.size :], header)
        except InvalidTag:
            raise SealError(
                "does not open here: another machine, secret or build, or altered"
            ) from None

    def _key(self, header: bytes) -> bytes:
        return _hkdf(
            self._source.root_key(
                field_select=SEAL_FIELDS, guest_svn=self._svn, tcb_version=self._tcb
            ),
            header,
        )


def _hkdf(root: bytes, header: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL + header[:-12]).derive(
        root
    )
