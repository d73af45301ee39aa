"""``make wheel`` ships exactly the package files git tracks, however often it is run
(attack16: the README's in-place ``pip wheel .`` reuses setuptools' ``build/lib``, so a
module deleted since an earlier build — or a file never committed — lands in the wheel,
and the installed gateway no longer measures as the commit a verifier checks out).

The checkout's tracked files are copied into a fresh git repository, which then gets
what an in-place build and a working tree leave behind: an earlier build's ``build/lib``
holding a module since deleted, and an untracked module. ``make wheel`` runs there with
this test venv's Python (the dev group's setuptools: offline)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout


def tracked_copy(target: Path) -> Path:
    """The checkout's tracked files as they stand, committed in a repository of their own."""
    for name in git(REPO, "ls-files", "-z").split("\0"):
        if name and (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    git(target, "init", "--quiet")
    git(target, "add", "-A")
    return target


def make_wheel(repo: Path) -> dict[str, str]:
    """``make wheel`` in ``repo``: the wheel's package files and their SHA-256."""
    shutil.rmtree(repo / "dist", ignore_errors=True)
    subprocess.run(  # the venv is this one, already holding the dev group (-o: not remade)
        ["make", "-C", str(repo), "-o", ".venv/.installed-dev", "wheel", f"BIN={BIN}"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (repo / "dist").glob("saferouter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: hashlib.sha256(archive.read(name)).hexdigest()
            for name in archive.namelist()
            if not name.startswith("saferouter-")  # the dist-info (RECORD: the hashes)
        }


def test_make_wheel_ships_the_tracked_package_files_only(tmp_path: Path) -> None:
    repo = tracked_copy(tmp_path / "repo")
    stale = repo / "build" / "lib" / "saferouter" / "deleted_since.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("GONE = True\n")  # an earlier in-place build's copy of a removed module
    (repo / "saferouter" / "not_committed.py").write_text("DRAFT = True\n")
    tracked = {
        name
        for name in git(repo, "ls-files", "saferouter").splitlines()
        if name != "saferouter/not_committed.py"
    }

    first = make_wheel(repo)
    assert set(first) == tracked
    assert make_wheel(repo) == first  # the same bytes again: it measures the same
