"""Guest interfaces: exact struct layouts, and configfs-tsm end to end on a fake tree."""

from __future__ import annotations

import ctypes
import shutil
import struct
from pathlib import Path

import pytest

from saferouter.errors import DeviceError
from saferouter.tee import device
from saferouter.tee.demo import DemoAttester


class SnpGuestRequest(ctypes.Structure):
    """Linux uapi ``struct snp_guest_request_ioctl``, laid out by the C compiler's rules."""

    _fields_ = [
        ("msg_version", ctypes.c_uint8),
        ("req_data", ctypes.c_uint64),
        ("resp_data", ctypes.c_uint64),
        ("fw_error", ctypes.c_uint32),
        ("vmm_error", ctypes.c_uint32),
    ]


class SnpReportReq(ctypes.Structure):
    _fields_ = [
        ("user_data", ctypes.c_uint8 * 64),
        ("vmpl", ctypes.c_uint32),
        ("rsvd", ctypes.c_uint8 * 28),
    ]


class SnpDerivedKeyReq(ctypes.Structure):
    _fields_ = [
        ("root_key_select", ctypes.c_uint32),
        ("rsvd", ctypes.c_uint32),
        ("guest_field_select", ctypes.c_uint64),
        ("vmpl", ctypes.c_uint32),
        ("guest_svn", ctypes.c_uint32),
        ("tcb_version", ctypes.c_uint64),
    ]


def test_ioctl_numbers_are_iowr_s_with_a_32_byte_struct() -> None:
    def iowr(nr: int) -> int:
        return (3 << 30) | (ctypes.sizeof(SnpGuestRequest) << 16) | (ord("S") << 8) | nr

    assert ctypes.sizeof(SnpGuestRequest) == device.GUEST_REQUEST_SIZE == 32
    assert (
        iowr(0),
        iowr(1),
        iowr(2),
    ) == (device.SNP_GET_REPORT, device.SNP_GET_DERIVED_KEY, device.SNP_GET_EXT_REPORT)


def test_guest_request_packing_matches_the_c_layout() -> None:
    packed = device.pack_guest_request(0x1122334455667788, 0x99AABBCCDDEEFF00)
    c = SnpGuestRequest.from_buffer_copy(packed)
    assert (c.msg_version, c.req_data, c.resp_data, c.fw_error, c.vmm_error) == (
        1,
        0x1122334455667788,
        0x99AABBCCDDEEFF00,
        0,
        0,
    )
    assert device.parse_exitinfo(packed[:24] + struct.pack("<II", 0x16, 2)) == (0x16, 2)
    with pytest.raises(ValueError):
        device.pack_guest_request(0, 1)


def test_report_request_packing_matches_the_c_layout() -> None:
    packed = device.pack_report_req(bytes(range(64)), 2)
    assert len(packed) == ctypes.sizeof(SnpReportReq) == device.REPORT_REQ_SIZE
    c = SnpReportReq.from_buffer_copy(packed)
    assert bytes(c.user_data) == bytes(range(64)) and c.vmpl == 2 and not any(c.rsvd)
    for user_data, vmpl in ((bytes(63), 0), (bytes(65), 0), (bytes(64), 4), (bytes(64), -1)):
        with pytest.raises(ValueError):  # refused before the kernel ever sees it
            device.pack_report_req(user_data, vmpl)


def test_derived_key_request_packing_matches_the_c_layout() -> None:
    fields = device.FIELD_MEASUREMENT | device.FIELD_GUEST_POLICY
    packed = device.pack_derived_key_req(
        field_select=fields, guest_svn=3, tcb_version=0x4700000000020100, vmpl=1
    )
    assert len(packed) == ctypes.sizeof(SnpDerivedKeyReq) == device.DERIVED_KEY_REQ_SIZE
    c = SnpDerivedKeyReq.from_buffer_copy(packed)
    assert (c.root_key_select, c.guest_field_select, c.vmpl, c.guest_svn, c.tcb_version) == (
        0,
        0b1001,
        1,
        3,
        0x4700000000020100,
    )
    with pytest.raises(ValueError, match="cannot carry"):  # LAUNCH_MIT_VECTOR, bit 6
        device.pack_derived_key_req(field_select=1 << 6, guest_svn=0, tcb_version=0)
    with pytest.raises(ValueError):
        device.pack_derived_key_req(field_select=0, guest_svn=0, tcb_version=0, root_key_select=2)
    with pytest.raises(ValueError):
        device.pack_derived_key_req(field_select=0, guest_svn=0, tcb_version=0, vmpl=4)


def test_responses() -> None:
    report = bytes(range(256)) * 4 + bytes(1184 - 1024)
    resp = struct.pack("<II24x", 0, 1184) + report + bytes(4000 - 0x20 - 1184)
    assert device.parse_report_resp(resp) == report
    with pytest.raises(DeviceError, match="0x16"):
        device.parse_report_resp(struct.pack("<II", 0x16, 0) + bytes(3992))
    with pytest.raises(DeviceError, match="1000-byte"):
        device.parse_report_resp(struct.pack("<II", 0, 1000) + bytes(3992))
    key = bytes(range(32))
    assert device.parse_derived_key_resp(struct.pack("<I28x", 0) + key) == key
    with pytest.raises(DeviceError):
        device.parse_derived_key_resp(struct.pack("<I28x", 0x27) + key)


class FakeTsm:
    """Lays out an entry the way the sev_guest provider does, with a report ready."""

    def __init__(self, report: bytes, *, provider: str = "sev_guest\n") -> None:
        self.report = report
        self.provider = provider
        self.made: list[Path] = []

    def make(self, entry: Path) -> None:
        entry.mkdir()
        (entry / "provider").write_text(self.provider)
        (entry / "generation").write_text("1\n")
        (entry / "outblob").write_bytes(self.report)
        (entry / "auxblob").write_bytes(b"cert table")
        self.made.append(entry)


def test_configfs_report_end_to_end(tmp_path: Path) -> None:
    report = DemoAttester(tmp_path / "demo").report(b"\x42" * 64)
    root = tmp_path / "tsm" / "report"
    root.mkdir(parents=True)
    fake = FakeTsm(report)
    tsm = device.ConfigfsTsm(root, make_entry=fake.make, remove_entry=shutil.rmtree)
    assert (
        tsm.available()
        and device.detect(tsm, device.SevGuestDevice(tmp_path / "none")) == "sev-snp"
    )
    got, aux = tsm.get_report(b"\x42" * 64, vmpl=1)
    assert got == report and aux == b"cert table"
    (entry,) = fake.made
    assert not entry.exists()  # removed after use
    with pytest.raises(ValueError):
        tsm.get_report(b"short")


def test_configfs_refusals(tmp_path: Path) -> None:
    root = tmp_path / "report"
    root.mkdir()
    tdx = FakeTsm(bytes(1184), provider="tdx_guest\n")
    with pytest.raises(DeviceError, match="tdx_guest"):
        device.ConfigfsTsm(root, make_entry=tdx.make, remove_entry=shutil.rmtree).get_report(
            bytes(64)
        )
    short = FakeTsm(b"too short")
    with pytest.raises(DeviceError, match="not a report"):
        device.ConfigfsTsm(root, make_entry=short.make, remove_entry=shutil.rmtree).get_report(
            bytes(64)
        )

    class Failing(FakeTsm):
        def make(self, entry: Path) -> None:
            super().make(entry)
            (entry / "outblob").unlink()
            (entry / "outblob").mkdir()  # reading it fails, as a firmware error does

    with pytest.raises(DeviceError, match="outblob"):
        device.ConfigfsTsm(
            root, make_entry=Failing(bytes(1184)).make, remove_entry=shutil.rmtree
        ).get_report(bytes(64))
    assert list(root.iterdir()) == []


def test_detect_demo_without_any_interface(tmp_path: Path) -> None:
    assert (
        device.detect(
            device.ConfigfsTsm(tmp_path / "no-configfs"),
            device.SevGuestDevice(tmp_path / "no-device"),
        )
        == "demo"
    )


def test_ioctl_on_a_file_that_is_not_the_device(tmp_path: Path) -> None:
    fake = tmp_path / "sev-guest"
    fake.write_bytes(b"")
    with pytest.raises(DeviceError, match=r"ENOTTY"):
        device.SevGuestDevice(fake).get_report(bytes(64))
