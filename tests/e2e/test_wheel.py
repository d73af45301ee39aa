"""SafeRouter installed from its wheel, as ``pip install saferouter`` would: the pages
are in it, and it measures as the checkout does.

The wheel is built from a copy of the sources (so no ``build/`` or ``*.egg-info``
lands in the checkout) with ``--no-build-isolation``: the build backend is the
setuptools the dev group pins, so the build needs no network. It is installed (by that
venv's own pip, from the file alone) into a fresh venv that sees the test venv's
packages only through a ``.pth`` line naming their site-packages — a plain path, so the
``.pth`` files *there* (the checkout's editable install finder among them) are not run
and cannot put the checkout back on the path. Everything runs from a directory that is
not the checkout, without ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import attrs
import httpx
import pytest

from saferouter.routes import web

from ..processes import clean_env, serving

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "saferouter" / "web"
# every page the routes serve, the verifier (its own route) too
PAGES = {**web.PAGES, "/verifier": "verifier.html"}
# the build-system requirement: older setuptools cannot read the SPDX license string
OLDEST_SETUPTOOLS = 77


@attrs.frozen
class Installed:
    venv: Path
    home: Path  # a working directory outside the checkout

    def env(self) -> dict[str, str]:
        """The test's environment with this venv first on PATH; PYTHONPATH empty (which
        Python reads as unset), so that no checkout is on the path."""
        env = clean_env()
        path = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return {**env, "PATH": path, "PYTHONPATH": "", "VIRTUAL_ENV": str(self.venv)}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "saferouter"), *args],
            cwd=self.home,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    built = tmp_path_factory.mktemp("wheel")
    assert int(metadata.version("setuptools").split(".")[0]) >= OLDEST_SETUPTOOLS, (
        f"setuptools {metadata.version('setuptools')} cannot build the wheel offline: "
        "install the dev group (make test) for the pinned one"
    )
    source = built / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "saferouter", source / "saferouter", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    quiet = {"check": True, "timeout": 300, "cwd": built}
    wheels = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(built / "dist")]
    subprocess.run([*wheels, str(source)], **quiet)
    (wheel,) = (built / "dist").glob("saferouter-*.whl")
    installed = Installed(venv=built / "venv", home=built / "elsewhere")
    installed.home.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(installed.venv)], **quiet)
    python = str(installed.venv / "bin" / "python")
    # the venv's own pip, run without PYTHONPATH: pip's --python would let it see (and
    # skip for) the test venv's editable saferouter
    in_venv = {**quiet, "env": installed.env(), "cwd": installed.home}
    subprocess.run([python, *pip[1:], "install", "--no-deps", "--no-index", wheel], **in_venv)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        **in_venv,
    ).stdout.strip()
    # the dependencies: the test venv's packages, as a plain path (see the docstring)
    (Path(site) / "test-venv-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    yield installed


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    found = subprocess.run(
        [
            str(installed.venv / "bin" / "python"),
            "-c",
            "import saferouter; print(saferouter.__file__)",
        ],
        cwd=installed.home,
        env=installed.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(found).is_relative_to(installed.venv), found
    version = installed.run("--version")
    assert version.stdout == f"saferouter {metadata.version('saferouter')}\n", version.stderr


def test_every_page_asset_and_vendored_file_is_served_as_in_the_source(
    installed: Installed, tmp_path: Path
) -> None:
    files = {path: WEB / name for path, name in PAGES.items()}
    for folder in ("assets", "vendor"):
        for path in sorted((WEB / folder).rglob("*.*")):
            files["/" + path.relative_to(WEB).as_posix()] = path
    assert {"/assets/style.css", "/vendor/tweetnacl/nacl-fast-min.js"} <= files.keys()
    wheel_cli = [str(installed.venv / "bin" / "saferouter")]
    with (
        serving(
            tmp_path / "data", env=installed.env(), command=wheel_cli, cwd=installed.home
        ) as up,
        httpx.Client(base_url=up.url, timeout=10) as client,
    ):
        served = {path: client.get(path) for path in files}
    wrong = {
        path: reply.status_code
        for path, reply in served.items()
        if reply.status_code != 200 or reply.content != files[path].read_bytes()
    }
    assert wrong == {}


def test_the_wheel_measures_as_the_checkout(installed: Installed, tmp_path: Path) -> None:
    args = ("measure", "--parts", "--data-dir", str(tmp_path / "data"), "--port", "8443")
    from_wheel = installed.run(*args)
    from_checkout = subprocess.run(
        [sys.executable, "-m", "saferouter.cli", *args],
        env={**clean_env(), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert from_wheel.returncode == 0, from_wheel.stderr
    assert from_checkout.returncode == 0, from_checkout.stderr
    assert from_wheel.stdout == from_checkout.stdout  # the parts, then the measurement
