"""The suite on a fresh clone without ../shared/testdata, run as a user or CI runs it:
pytest in a child process, with SAFEROUTER_TESTDATA pointing nowhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from hypothesis import settings

from ..conftest import REPO

IN_CI = os.environ.get("CI") == "true"

# tests that need data, of both kinds (parametrized over recordings at collection; given
# the `testdata` fixture), and one that needs none
NEEDS_DATA = [
    "tests/unit/test_sse.py::test_recording_events_match_the_index",
    "tests/unit/tee/test_abi.py::test_every_vector_round_trips_byte_for_byte",
]
NEEDS_NONE = "tests/unit/tee/test_abi.py::test_product_from_cpuid"


def pytest_run(
    *args: str, nowhere: Path, ci: bool = False, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["SAFEROUTER_TESTDATA"] = str(nowhere)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_ci_without_testdata_fails_at_collection_naming_the_variable(tmp_path: Path) -> None:
    for selection in NEEDS_DATA:
        result = pytest_run(selection, NEEDS_NONE, nowhere=tmp_path / "nowhere", ci=True)
        output = result.stdout + result.stderr
        assert result.returncode == 4, output  # pytest's usage error: nothing ran
        assert "CI=true" in output and "SAFEROUTER_TESTDATA" in output, output
        assert str(tmp_path / "nowhere") in output


def test_without_testdata_the_skips_fold_into_one_line(tmp_path: Path) -> None:
    result = pytest_run("-ra", *NEEDS_DATA, NEEDS_NONE, nowhere=tmp_path / "nowhere")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    skipped = [line for line in output.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and "SAFEROUTER_TESTDATA" in skipped[0], output
    # 8 vectors and 1 placeholder for the recordings skipped; the CPUID table ran
    assert re.search(r"\b\d+ passed, 9 skipped\b", output.splitlines()[-1]), output


def test_an_empty_parameter_set_fails_instead_of_skipping(tmp_path: Path) -> None:
    test = tmp_path / "test_empty.py"
    test.write_text(
        "import pytest\n\n\n@pytest.mark.parametrize('x', [])\ndef test_nothing(x):\n    pass\n"
    )
    config = str(REPO / "pyproject.toml")
    result = pytest_run("-c", config, "--rootdir", str(REPO), str(test), nowhere=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Empty parameter set" in output, output


def test_hypothesis_profile_follows_ci() -> None:
    current = settings.default
    assert current.deadline is None  # timing deadlines flake on a loaded machine
    assert current.derandomize is IN_CI
    if IN_CI:
        assert current.print_blob and current.database is None


def test_hypothesis_profile_in_the_other_mode(tmp_path: Path) -> None:
    """The test above, in a child run with CI=true if this run is not CI, and without."""
    here = f"{Path(__file__).relative_to(REPO)}::test_hypothesis_profile_follows_ci"
    result = pytest_run(here, nowhere=tmp_path / "nowhere", ci=not IN_CI)
    assert result.returncode == 0, result.stdout + result.stderr
