"""deploy/saferouter.service: systemd accepts it, its hardening stays tight, it keeps
the SEV-SNP guest device reachable, and its command line is one SafeRouter parses."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from saferouter.cli import _parser

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "saferouter.service"
# systemd-analyze security's overall exposure, in its --threshold's tenths (0 best …
# 100 worst): the unit scores 21 (shown as "2.1 OK")
MAX_EXPOSURE = 30


def _settings() -> dict[str, list[str]]:
    """The unit's ``key=value`` lines, every value of a key (some repeat), comments out."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def _analyzable(tmp_path: Path) -> Path:
    """The unit with ExecStart's program pointed at this venv's ``saferouter`` (verify
    refuses a unit whose program is missing, and /opt/saferouter is not installed here),
    after checking that systemd-analyze exists."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze here: deploy/saferouter.service not checked")
    program = shutil.which("saferouter") or str(Path(sys.executable).parent / "saferouter")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/saferouter/bin/saferouter", program))
    return unit


def test_systemd_accepts_the_unit_without_a_word(tmp_path: Path) -> None:
    unit = _analyzable(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    # an unknown or misspelt setting is only a warning: any output at all is a failure
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_hardening_keeps_its_exposure_low(tmp_path: Path) -> None:
    unit = _analyzable(tmp_path)
    done = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=yes",
            f"--threshold={MAX_EXPOSURE}",
            "--no-pager",
            str(unit),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-600:] + done.stderr


def test_a_dedicated_user_keeps_the_sev_guest_device() -> None:
    unit = _settings()
    assert unit["User"] == unit["Group"] == ["saferouter"]
    assert unit["DevicePolicy"] == ["closed"]
    assert unit["DeviceAllow"] == ["/dev/sev-guest rw"]
    # either would take the guest device (or configfs-tsm) away from the gateway
    assert unit.get("PrivateDevices", ["no"]) == ["no"]
    assert unit.get("ProtectKernelTunables", ["no"]) == ["no"]
    assert (REPO / "deploy" / "60-saferouter-sev-guest.rules").read_text().count(
        'KERNEL=="sev-guest"'
    ) == 1


def test_the_command_is_one_saferouter_parses_onto_the_state_directory() -> None:
    unit = _settings()
    (command,) = unit["ExecStart"]
    program, *arguments = shlex.split(command)
    assert program.endswith("/bin/saferouter")
    args = _parser().parse_args(arguments)
    assert args.command == "serve" and args.host == "0.0.0.0" and args.tls
    (state,) = unit["StateDirectory"]
    assert args.data_dir == f"/var/lib/{state}" == unit["WorkingDirectory"][0]
