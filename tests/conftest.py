"""Shared fixtures: where the real third-party test data is, and the servers tests run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def testdata_dir() -> Path | None:
    """../shared/testdata (or $SAFEROUTER_TESTDATA) if present."""
    path = Path(os.environ.get("SAFEROUTER_TESTDATA", REPO.parent / "shared" / "testdata"))
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def testdata() -> Path:
    """Real recorded data; skipped where absent, a failure under CI=true."""
    path = testdata_dir()
    if path is None:
        message = "../shared/testdata is missing (set SAFEROUTER_TESTDATA to its path)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
