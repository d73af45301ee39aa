"""The data dir's replica id and its serve lock, and the lease setting."""

from __future__ import annotations

import multiprocessing
import os
import stat
import subprocess
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import pytest

from saferouter.attestation.measurement import measure
from saferouter.config import load_settings
from saferouter.datadir import REPLICA_ID_FILE, DataDirLock, lock_data_dir, replica_id
from saferouter.errors import ConfigError, DataDirInUse

from ..processes import CLI, clean_env


def test_the_replica_id_is_made_once_and_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = replica_id(data)
    assert len(first) == 16 and int(first, 16) >= 0
    assert replica_id(data) == first
    assert stat.S_IMODE((data / REPLICA_ID_FILE).stat().st_mode) == 0o600
    assert replica_id(tmp_path / "elsewhere") != first


def test_a_damaged_replica_id_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / REPLICA_ID_FILE).write_text("not hex\n")
    with pytest.raises(ConfigError, match=REPLICA_ID_FILE):
        replica_id(tmp_path)


def test_one_lock_per_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with lock_data_dir(data):
        # flock belongs to the open file: a second open is refused even in this process
        with pytest.raises(DataDirInUse, match=str(data)):
            lock_data_dir(data)
        with lock_data_dir(tmp_path / "other"):  # another data dir is another lock
            pass
    with lock_data_dir(data):  # released with the block
        pass


def _hold(lock: DataDirLock, release: EventType) -> None:
    release.wait(60)


def test_a_worker_holds_the_lock_after_the_parent_lets_go(tmp_path: Path) -> None:
    """A spawned worker is handed the same open file: the lock lasts while it lives."""
    ctx = multiprocessing.get_context("spawn")
    release = ctx.Event()
    lock = lock_data_dir(tmp_path)
    worker = ctx.Process(target=_hold, args=(lock, release))
    worker.start()
    try:
        lock.release()
        with pytest.raises(DataDirInUse):
            lock_data_dir(tmp_path)
    finally:
        release.set()
        worker.join(60)
    assert worker.exitcode == 0
    with lock_data_dir(tmp_path):
        pass


def test_the_lease_setting(tmp_path: Path) -> None:
    default = load_settings({}, data_dir=tmp_path)
    assert default.lease_s == 30
    short = load_settings({"SAFEROUTER_LEASE_SECONDS": "1.5"}, data_dir=tmp_path)
    assert short.lease_s == 1.5
    # how long a lease runs is how this deployment runs, not what it computes
    assert measure(short).digest == measure(default).digest
    for bad in ("0.5", "0", "-3", "nan", "inf", "soon"):
        with pytest.raises(ConfigError, match="SAFEROUTER_LEASE_SECONDS"):
            load_settings({"SAFEROUTER_LEASE_SECONDS": bad}, data_dir=tmp_path)


def test_the_lock_file_is_private(tmp_path: Path) -> None:
    with lock_data_dir(tmp_path / "data"):
        mode = os.stat(tmp_path / "data" / "serve.lock").st_mode
    assert stat.S_IMODE(mode) == 0o600


async def test_a_named_sqlite_file_leaves_its_existing_folder_as_it_was(tmp_path: Path) -> None:
    """``--database sqlite:///tmp/x.db`` must not make /tmp 0700 (it did: every other
    user of /tmp, PostgreSQL's initdb among them, then failed); a folder it has to make
    is made private, and the data dir's own database keeps its private folder."""
    from saferouter.storage.opening import open_store

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    made = tmp_path / "made" / "here"
    for url in (f"sqlite:///{shared}/s.db", f"sqlite:///{made}/s.db"):
        settings = load_settings({}, data_dir=tmp_path / "data", database=url)
        await open_store(settings).close()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / "s.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    await open_store(load_settings({}, data_dir=tmp_path / "data")).close()
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_a_folder_everyone_shares_is_never_made_a_private_data_dir(tmp_path: Path) -> None:
    """``--data-dir /tmp`` (or ``/``) would make it 0700 and lock every other user of
    the host out (PostgreSQL's initdb among them): refused, its mode untouched."""
    from saferouter.datadir import make_private_dir

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    with pytest.raises(ConfigError, match="shared by everyone"):
        make_private_dir(shared)
    with pytest.raises(ConfigError, match="shared by everyone"):
        make_private_dir(Path("/"))
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE(Path("/").stat().st_mode) != 0o700


@pytest.mark.parametrize("below", ["", "sub/dir"])
def test_a_data_dir_that_is_a_file_is_named_as_the_fault(tmp_path: Path, below: str) -> None:
    """``--data-dir notes.txt`` (or a folder under it): the one line names the file and
    says it is no folder, for serve and for every keys command alike (it said "file
    exists" of the lock or the database, or "not a directory")."""
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    data_dir = afile / below if below else afile
    for command in (["serve", "--port", "0"], ["keys", "list"]):
        done = subprocess.run(
            [*CLI, *command, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        last = done.stderr.splitlines()[-1]
        assert last == f"saferouter: {afile} is a file, not a folder: name a folder for the data"
        assert "Traceback" not in done.stderr
    assert afile.read_text() == "mine"
