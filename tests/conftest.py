"""Shared fixtures and the rules for real third-party test data.

The real data (provider recordings, SEV-SNP vectors, Rekor bundles) lives outside the
repo in ../shared/testdata, or wherever ``SAFEROUTER_TESTDATA`` points. A test that needs
it says so by taking the ``testdata`` fixture or carrying the ``testdata`` mark. Where
the data is absent:

* on a developer's machine every such test is skipped from one place, so ``-ra`` prints
  a single line naming ``SAFEROUTER_TESTDATA`` instead of one per test;
* under ``CI=true`` the run stops at collection with that message, because a CI that
  silently skips the real-data half of the suite proves nothing.

Tests that parametrize over data files get their parameters from
:func:`tests.recordings.recording_params`, which never returns an empty set; any other
empty parameter set is a collection error (``empty_parameter_set_mark`` in pyproject).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.postgres import Cluster, running_cluster
from tests.postgres import binaries as postgres_binaries

REPO = Path(__file__).resolve().parent.parent
MISSING_TESTDATA = (
    "the real test data (../shared/testdata) is missing: set SAFEROUTER_TESTDATA to its folder"
)


def testdata_path() -> Path:
    """Where the real data is looked for: $SAFEROUTER_TESTDATA, else ../shared/testdata."""
    return Path(os.environ.get("SAFEROUTER_TESTDATA", REPO.parent / "shared" / "testdata"))


def testdata_dir() -> Path | None:
    """:func:`testdata_path` if that folder exists."""
    path = testdata_path()
    return path if path.is_dir() else None


def in_ci() -> bool:
    """CI=true, as CI runs .ci/run."""
    return os.environ.get("CI") == "true"


def require_testdata() -> Path:
    """The data folder; otherwise skip the current test (a failure under CI=true)."""
    path = testdata_dir()
    if path is None:
        if in_ci():
            pytest.fail(f"CI=true: {MISSING_TESTDATA}", pytrace=False)
        # raised here, not from a fixture, so that every skip shares this location and
        # `-ra` folds them into one line
        pytest.skip(MISSING_TESTDATA)
    return path


def needs_testdata(item: pytest.Item) -> bool:
    """The test takes the ``testdata`` fixture or carries the ``testdata`` mark."""
    return "testdata" in getattr(item, "fixturenames", ()) or (
        item.get_closest_marker("testdata") is not None
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "testdata: the test needs ../shared/testdata")
    # Timing deadlines flake on a loaded 2-core machine. CI replays the same examples every
    # run (derandomize) and prints the blob that reproduces a failure: Hypothesis's own
    # "ci" profile, loaded here by our own CI rule rather than Hypothesis's guess.
    settings.register_profile("dev", deadline=None)
    settings.register_profile(
        "ci",
        settings.get_profile("ci"),
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
    )
    if config.getoption("hypothesis_profile", None) is None:
        settings.load_profile("ci" if in_ci() else "dev")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not in_ci() or testdata_dir() is not None:
        return
    wanting = [item for item in items if needs_testdata(item)]
    if wanting:
        raise pytest.UsageError(
            f"CI=true: {MISSING_TESTDATA} (looked in {testdata_path()}; "
            f"{len(wanting)} collected tests need it)"
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if needs_testdata(item):
        require_testdata()


@pytest.fixture(scope="session")
def testdata() -> Path:
    """Real recorded data; skipped where absent, a failure under CI=true."""
    return require_testdata()


# --- PostgreSQL (tests/postgres.py) -------------------------------------------------

MISSING_POSTGRES = (
    "PostgreSQL is not installed (apt-get install postgresql): the PostgreSQL store's tests skip"
)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway cluster for the whole run; skipped where PostgreSQL is missing (a
    failure under CI=true, which installs it). Tests that stop it start their own."""
    bin_dir = postgres_binaries()
    if bin_dir is None:
        if in_ci():
            pytest.fail(f"CI=true: {MISSING_POSTGRES}", pytrace=False)
        pytest.skip(MISSING_POSTGRES)
    with running_cluster(bin_dir) as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """The URL of a new, empty database of its own for this test."""
    return pg_cluster.create_database()
