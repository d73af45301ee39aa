"""`saferouter tee verify-report` and `saferouter tee report`, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..processes import cli
from ..unit.tee.vectors import SETS, VectorSet


@pytest.mark.parametrize("vector", SETS, ids=[s.name for s in SETS])
def test_every_vector_set_verifies(testdata: object, tmp_path: Path, vector: VectorSet) -> None:
    args = [
        "tee",
        "verify-report",
        str(vector.path(vector.report)),
        "--vcek",
        str(vector.path(vector.vek)),
        "--chain",
        str(vector.path(vector.chain)),
        "--now",
        vector.now.isoformat(),
    ]
    if vector.name.startswith("milan-v2"):
        args += ["--product", "Milan"]
    result = cli(tmp_path, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len([line for line in lines if line.startswith("✓ (")]) == 11
    assert lines[-1].startswith(f"VERIFIED: root AMD, {vector.product.value}")
    assert ("debug ALLOWED" in lines[-1]) is vector.debug


def test_a_tampered_copy_fails_naming_the_step(testdata: object, tmp_path: Path) -> None:
    vector = next(s for s in SETS if s.name == "turin-v5-oak")
    tampered = bytearray(vector.report_bytes())
    tampered[0x50] ^= 1  # REPORT_DATA[0], bit 0 (as the testdata README's script does)
    path = tmp_path / "tampered.bin"
    path.write_bytes(tampered)
    result = cli(
        tmp_path,
        "tee",
        "verify-report",
        str(path),
        "--vcek",
        str(vector.path(vector.vek)),
        "--chain",
        str(vector.path(vector.chain)),
        "--now",
        vector.now.isoformat(),
    )
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith("✗ (7) report signature")


def test_demo_report_verifies_as_demo_only(tmp_path: Path) -> None:
    report = tmp_path / "demo.bin"
    made = cli(tmp_path, "tee", "report", "--data", "00ff", "--out", str(report))
    assert made.returncode == 0 and "demo report written" in made.stdout
    demo = cli(tmp_path, "tee", "verify-report", str(report), "--demo")
    assert demo.returncode == 0, demo.stdout
    assert "VERIFIED: root DEMO (not AMD hardware), Genoa" in demo.stdout
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        (tmp_path / "tee-demo" / "ask.pem").read_bytes()
        + (tmp_path / "tee-demo" / "ark.pem").read_bytes()
    )
    as_amd = cli(
        tmp_path,
        "tee",
        "verify-report",
        str(report),
        "--vcek",
        str(tmp_path / "tee-demo" / "vcek.pem"),
        "--chain",
        str(chain),
    )
    assert as_amd.returncode == 1
    assert "✗ (3) ARK self-signature and pin: the ARK is not AMD's Genoa root" in as_amd.stdout
    hex_out = cli(tmp_path, "tee", "report", "--data", "01")
    assert len(bytes.fromhex(hex_out.stdout.strip())) == 1184
    assert cli(tmp_path, "tee", "report", "--data", "zz").returncode == 2
    assert cli(tmp_path, "tee", "report", "--data", "00" * 65).returncode == 2


def test_bad_inputs_are_named(tmp_path: Path, testdata: object) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a report")
    vector = SETS[0]
    result = cli(
        tmp_path,
        "tee",
        "verify-report",
        str(junk),
        "--vcek",
        str(vector.path(vector.vek)),
        "--chain",
        str(vector.path(vector.chain)),
    )
    assert result.returncode == 1 and "✗ (1) report format" in result.stdout
    v2 = cli(tmp_path, "tee", "verify-report", str(vector.path(vector.report)))
    assert v2.returncode == 1 and "needs --product" in v2.stdout
