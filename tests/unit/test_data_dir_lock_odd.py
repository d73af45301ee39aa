"""The serve lock on odd data dirs: each a clear refusal (``ConfigError``, which
``saferouter serve`` prints on one line and exits 2 with), and a lock file planted as a
symlink is never followed — serve often runs as root, and taking the lock makes the
file ``0600``: through a link, any file on the host."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from saferouter.datadir import LOCK_FILE, lock_data_dir
from saferouter.errors import ConfigError


def test_a_lock_file_planted_as_a_symlink_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("someone else's file\n")
    victim.chmod(0o644)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / LOCK_FILE).symlink_to(victim)
    with pytest.raises(ConfigError, match=LOCK_FILE):
        lock_data_dir(data)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


def test_a_lock_path_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).mkdir()
    with pytest.raises(ConfigError, match=LOCK_FILE):
        lock_data_dir(tmp_path)


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="file"):
        lock_data_dir(tmp_path / "file")


def test_a_data_dir_reached_through_a_symlink_is_one_lock(tmp_path: Path) -> None:
    data = tmp_path / "data"
    os.symlink(data, tmp_path / "alias", target_is_directory=True)
    with lock_data_dir(data), pytest.raises(ConfigError, match="in use"):
        lock_data_dir(tmp_path / "alias")
