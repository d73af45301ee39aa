"""``make run`` installs what serving needs and nothing more; ``make test`` adds the dev
group on top. Checked with ``make -n`` (what make would run) in a copy of the checkout's
Makefile and pyproject.toml, as on a fresh clone (no .venv yet)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _dry_run(tmp_path: Path, target: str) -> list[str]:
    for name in ("Makefile", "pyproject.toml", "tests/e2e/node/package-lock.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    done = subprocess.run(
        ["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    return [line for line in done.stdout.splitlines() if "pip install" in line]


@pytest.fixture(autouse=True)
def _needs_make() -> None:
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")


def test_run_installs_the_runtime_only(tmp_path: Path) -> None:
    installs = _dry_run(tmp_path, "run")
    assert any(' -e ".[otel]"' in line for line in installs), installs
    assert not any("--group" in line for line in installs), installs


def test_test_adds_the_dev_group(tmp_path: Path) -> None:
    installs = _dry_run(tmp_path, "test")
    assert any(' -e ".[otel]"' in line for line in installs), installs
    assert any("--group dev" in line for line in installs), installs
