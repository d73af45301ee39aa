"""Getting reports and derived keys inside an SEV-SNP guest.

Two interfaces (../shared/reference/sevsnp.md §2): configfs-tsm (Linux ≥ 6.7, preferred:
``/sys/kernel/config/tsm/report``) and the ``/dev/sev-guest`` ioctls ``SNP_GET_REPORT``,
``SNP_GET_EXT_REPORT``, ``SNP_GET_DERIVED_KEY`` (Linux uapi ``sev-guest.h``). The kernel
wipes the guest's VMPCK on a firmware or host error and every later request fails with
ENOTTY until reboot — so every request here is checked *before* it is sent, and the
packing functions are pure and unit-tested.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ..errors import DeviceError
from .abi import REPORT_SIZE

SNP_GET_REPORT = 0xC0205300  # _IOWR('S', 0x0, struct snp_guest_request_ioctl)
SNP_GET_DERIVED_KEY = 0xC0205301
SNP_GET_EXT_REPORT = 0xC0205302
GUEST_REQUEST_SIZE = 32
REPORT_REQ_SIZE = 96
REPORT_RESP_SIZE = 4000
DERIVED_KEY_REQ_SIZE = 32
DERIVED_KEY_RESP_SIZE = 64
USER_DATA_SIZE = 64
MSG_VERSION = 1  # the kernel refuses 0

# SNP_GET_DERIVED_KEY guest_field_select bits (§3); bit 6 (LAUNCH_MIT_VECTOR) needs a
# field the 32-byte uapi request cannot carry, so it is refused here.
FIELD_GUEST_POLICY = 1 << 0
FIELD_IMAGE_ID = 1 << 1
FIELD_FAMILY_ID = 1 << 2
FIELD_MEASUREMENT = 1 << 3
FIELD_GUEST_SVN = 1 << 4
FIELD_TCB_VERSION = 1 << 5
_FIELDS_ALLOWED = 0x3F
ROOT_KEY_VCEK = 0

DEFAULT_CONFIGFS = Path("/sys/kernel/config/tsm/report")
DEFAULT_DEVICE = Path("/dev/sev-guest")

# Where attestation reports come from: the SEV-SNP guest device, or the demo attester's
# keys (a root that is never AMD's). The strings are rendered as-is in /attestation JSON.
AttesterMode = Literal["sev-snp", "demo"]


def pack_report_req(user_data: bytes, vmpl: int) -> bytes:
    """``struct snp_report_req``: user_data[64] @0, u32 vmpl @64, 28 reserved bytes."""
    if len(user_data) != USER_DATA_SIZE:
        raise ValueError(f"user data is {USER_DATA_SIZE} bytes, not {len(user_data)}")
    if not 0 <= vmpl <= 3:
        raise ValueError(f"VMPL {vmpl} is not 0..3")
    return struct.pack("<64sI28x", user_data, vmpl)


def pack_guest_request(req_address: int, resp_address: int) -> bytes:
    """``struct snp_guest_request_ioctl``: u8 msg_version @0, u64 req_data @8,
    u64 resp_data @16, u64 exitinfo2 @24 (fw_error u32, vmm_error u32)."""
    if not req_address or not resp_address:
        raise ValueError("request and response buffers are required")
    return struct.pack("<B7xQQQ", MSG_VERSION, req_address, resp_address, 0)


def parse_exitinfo(guest_request: bytes) -> tuple[int, int]:
    """(fw_error, vmm_error) after the ioctl returned."""
    fw_error, vmm_error = struct.unpack_from("<II", guest_request, 24)
    return fw_error, vmm_error


def parse_report_resp(resp: bytes) -> bytes:
    """The report inside MSG_REPORT_RSP: STATUS u32 @0, REPORT_SIZE u32 @4, report @0x20."""
    status, size = struct.unpack_from("<II", resp, 0)
    if status != 0:
        raise DeviceError(f"the firmware refused the report request (status 0x{status:x})")
    if size != REPORT_SIZE:
        raise DeviceError(f"the firmware returned a {size}-byte report")
    return bytes(resp[0x20 : 0x20 + size])


def pack_derived_key_req(
    *,
    field_select: int,
    guest_svn: int,
    tcb_version: int,
    vmpl: int = 0,
    root_key_select: int = ROOT_KEY_VCEK,
) -> bytes:
    """``struct snp_derived_key_req``: u32 root_key_select @0, u32 reserved @4,
    u64 guest_field_select @8, u32 vmpl @16, u32 guest_svn @20, u64 tcb_version @24."""
    if field_select & ~_FIELDS_ALLOWED:
        raise ValueError(f"field select 0x{field_select:x} has bits the request cannot carry")
    if root_key_select not in (0, 1):
        raise ValueError("root_key_select is 0 (VCEK) or 1 (VMRK)")
    if not 0 <= vmpl <= 3:
        raise ValueError(f"VMPL {vmpl} is not 0..3")
    return struct.pack("<IIQIIQ", root_key_select, 0, field_select, vmpl, guest_svn, tcb_version)


def parse_derived_key_resp(resp: bytes) -> bytes:
    """MSG_KEY_RSP: STATUS u32 @0, 28 reserved bytes, the 32-byte key @0x20."""
    (status,) = struct.unpack_from("<I", resp, 0)
    if status != 0:
        raise DeviceError(f"the firmware refused the key request (status 0x{status:x})")
    return bytes(resp[0x20:0x40])


class SevGuestDevice:
    """``/dev/sev-guest`` (the ioctl interface go-sev-guest now calls deprecated)."""

    def __init__(self, path: Path = DEFAULT_DEVICE) -> None:
        self.path = path

    def _ioctl(self, number: int, request: bytes, resp_size: int) -> bytes:
        import fcntl

        req = ctypes.create_string_buffer(request, len(request))
        resp = ctypes.create_string_buffer(resp_size)
        guest = bytearray(pack_guest_request(ctypes.addressof(req), ctypes.addressof(resp)))
        descriptor = os.open(self.path, os.O_RDWR)
        try:
            fcntl.ioctl(descriptor, number, guest, True)
        except OSError as exc:
            fw_error, vmm_error = parse_exitinfo(bytes(guest))
            if exc.errno == errno.ENOTTY:
                raise DeviceError(
                    "the guest's VMPCK is disabled (ENOTTY): reboot the VM before asking again"
                ) from exc
            raise DeviceError(
                f"{self.path} failed: {exc.strerror} (fw_error 0x{fw_error:x}"
                f", vmm_error 0x{vmm_error:x})"
            ) from exc
        finally:
            os.close(descriptor)
            ctypes.memset(req, 0, len(request))
        data = resp.raw
        ctypes.memset(resp, 0, resp_size)
        return data

    def get_report(self, user_data: bytes, vmpl: int = 0) -> bytes:
        request = pack_report_req(user_data, vmpl)
        return parse_report_resp(self._ioctl(SNP_GET_REPORT, request, REPORT_RESP_SIZE))

    def get_derived_key(
        self, *, field_select: int, guest_svn: int, tcb_version: int, vmpl: int = 0
    ) -> bytes:
        request = pack_derived_key_req(
            field_select=field_select, guest_svn=guest_svn, tcb_version=tcb_version, vmpl=vmpl
        )
        return parse_derived_key_resp(
            self._ioctl(SNP_GET_DERIVED_KEY, request, DERIVED_KEY_RESP_SIZE)
        )


class ConfigfsTsm:
    """configfs-tsm reports: one entry directory per request, removed afterwards.
    ``make_entry`` / ``remove_entry`` are the mkdir/rmdir the kernel answers to (a test
    passes ones that lay out a fake tree)."""

    def __init__(
        self,
        root: Path = DEFAULT_CONFIGFS,
        *,
        make_entry: Callable[[Path], None] = os.mkdir,
        remove_entry: Callable[[Path], None] = os.rmdir,
    ) -> None:
        self.root = root
        self._make = make_entry
        self._remove = remove_entry

    def available(self) -> bool:
        return self.root.is_dir()

    def get_report(self, user_data: bytes, vmpl: int = 0) -> tuple[bytes, bytes]:
        """(report, auxblob — the GHCB certificate table, empty if the host gave none)."""
        if len(user_data) != USER_DATA_SIZE:
            raise ValueError("the sev_guest provider takes exactly 64 bytes of user data")
        entry = self.root / f"saferouter-{os.getpid()}-{secrets.token_hex(4)}"
        self._make(entry)
        try:
            provider = (entry / "provider").read_text()
            if provider.strip() != "sev_guest":
                raise DeviceError(f"the TSM provider is {provider.strip()!r}, not sev_guest")
            if vmpl:
                (entry / "privlevel").write_text(str(vmpl))
            (entry / "inblob").write_bytes(user_data)
            before = (entry / "generation").read_text()
            try:
                report = (entry / "outblob").read_bytes()
            except OSError as exc:
                raise DeviceError(f"reading outblob failed: {exc.strerror}") from exc
            aux_path = entry / "auxblob"
            aux = aux_path.read_bytes() if aux_path.exists() else b""
            if (entry / "generation").read_text() != before:
                raise DeviceError("another writer changed the report request under us")
        finally:
            self._remove(entry)
        if len(report) != REPORT_SIZE:
            raise DeviceError(f"outblob is {len(report)} bytes, not a report")
        return report, aux


def detect(
    configfs: ConfigfsTsm | None = None, device: SevGuestDevice | None = None
) -> AttesterMode:
    """``sev-snp`` when a guest interface is present, ``demo`` otherwise."""
    configfs = configfs or ConfigfsTsm()
    device = device or SevGuestDevice()
    if configfs.available() or device.path.exists():
        return "sev-snp"
    return "demo"
