"""The data dir is private whatever the umask: a real `saferouter` started with umask
0o000 leaves its folder 0700 and its database, WAL, SHM and key files 0600."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from saferouter.datadir import write_private_file

from ..processes import CHAT, new_key, serving

SECRET_FILES = ("saferouter.db", "identity.key", "tee-demo/vcek.key")
SQLITE_SIDE_FILES = ("saferouter.db-wal", "saferouter.db-shm")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Child processes started inside the block inherit ``mask``."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def modes(data: Path, names: tuple[str, ...]) -> dict[str, str]:
    return {name: mode(data / name) for name in names}


def use_everything(url: str, admin: str) -> None:
    """A chat (writes: the WAL and SHM exist) and a quote (the demo attester's key)."""
    reply = httpx.post(
        url + "/v1/chat/completions",
        json=CHAT,
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    quote = httpx.post(url + "/attestation/quote", json={"nonce": "00" * 16}, timeout=60)
    assert quote.status_code == 200, quote.text


def test_the_data_dir_is_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    private = {name: "0o600" for name in SECRET_FILES + SQLITE_SIDE_FILES}
    with umask(0o000):
        admin = new_key(data, "--name", "root", "--admin")
        assert mode(data) == "0o700"
        assert mode(data / "saferouter.db") == "0o600"
        with serving(data) as served:
            use_everything(served.url, admin)
            assert mode(data) == "0o700"
            assert modes(data, SECRET_FILES + SQLITE_SIDE_FILES) == private
        # SQLite removes its WAL and SHM at a clean stop and makes them anew at the
        # next start: they must come back private too
        with serving(data) as served:
            use_everything(served.url, admin)
            assert modes(data, SECRET_FILES + SQLITE_SIDE_FILES) == private
    # older builds left the folder and the database to the umask: they are tightened
    data.chmod(0o777)
    for name in ("saferouter.db", *SQLITE_SIDE_FILES):
        if (data / name).exists():
            (data / name).chmod(0o666)
    with serving(data) as served:
        use_everything(served.url, admin)
        assert mode(data) == "0o700"
        assert modes(data, SECRET_FILES + SQLITE_SIDE_FILES) == private


def test_folders_made_above_the_data_dir_are_writable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    """`--data-dir` naming a folder whose parents do not exist yet, under umask 0: the
    parents the CLI makes must not be world-writable, or any local user could rename
    the data dir away and put a folder with their own admin key in its place."""
    data = tmp_path / "srv" / "saferouter" / "data"
    with umask(0o000):
        new_key(data, "--name", "root", "--admin")
    assert mode(data) == "0o700"
    assert {p.name: mode(p) for p in (data.parent, data.parent.parent)} == {
        "saferouter": "0o755",
        "srv": "0o755",
    }


WRITER = """
import sys
from pathlib import Path
from saferouter.datadir import write_private_file
write_private_file(Path(sys.argv[1]), b"k" * (512 << 20))
"""


def test_a_secret_file_is_whole_or_absent_after_a_kill_mid_write(tmp_path: Path) -> None:
    """A process killed while writing a secret file (the identity key, the sealing
    secret) must not leave a partial one under the real name: the next start would
    read it as the key (a truncated identity.key fails every start after, and the
    name is taken, so it is never written again)."""
    path = tmp_path / "data" / "identity.key"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    try:
        deadline = time.monotonic() + 60
        while not any(path.parent.glob("*")) and time.monotonic() < deadline:
            assert writer.poll() is None, "the writer ended before it was killed"
            time.sleep(0.001)
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait()
    assert writer.returncode == -signal.SIGKILL, "the writer finished before the kill"
    assert not path.exists(), f"a partial {path.name} of {path.stat().st_size} bytes"
    write_private_file(path, b"secret")
    assert path.read_bytes() == b"secret"
    assert mode(path) == "0o600"
