"""The data dir is its owner's alone, whatever the umask the gateway was started with.

The data dir holds the database (keys' hashes, balances, activity), the identity key
and the demo attester's private key. A permissive umask (``0o000`` in some containers
and service managers) would make all of it readable by every local user, so modes are
not left to the umask: the folder is made ``0700`` and every file in this module's care
``0600`` with an explicit ``chmod`` after creation (``mkdir``'s and ``open``'s modes
pass through the umask; ``chmod`` does not). A data dir or database left permissive by
an older build is tightened the next time it is opened.

SQLite creates the ``-wal`` and ``-shm`` files itself, whenever the first connection
opens the database, with the permissions of the database file (its unix VFS copies
them; see ``robust_open`` / ``findCreateFileMode`` in ``os_unix.c``). So the database
file is created here, ``0600``, before SQLite ever opens it, and any files SQLite left
behind are tightened too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
from multiprocessing import reduction
from pathlib import Path
from typing import Any

from .errors import ConfigError, DataDirInUse

DIR_MODE = 0o700
# Folders above the data dir that the gateway has to create: traversable, but writable
# by the owner alone. Made by the umask alone (0o777 under umask 0), anyone could
# rename the data dir away and put a folder of theirs, with their own admin key, there.
PARENT_DIR_MODE = 0o755
FILE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
REPLICA_ID_FILE = "replica-id"
REPLICA_ID = re.compile(r"[0-9a-f]{16}")
LOCK_FILE = "serve.lock"


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents, ``0755``) if needed, and make it ``0700``.
    A folder everyone shares (``/``, or one with the sticky bit: ``/tmp``) is never a
    data dir: made 0700 it would lock every other user out, so it is refused."""
    if path.exists() and (path.resolve() == Path("/") or path.stat().st_mode & stat.S_ISVTX):
        raise ConfigError(f"{path} is a folder shared by everyone: use a folder of its own")
    # the nearest of it and its parents that is there must be a folder: else mkdir's
    # "file exists" or "not a directory" would name neither the file nor the fix
    there = next((p for p in (path, *path.parents) if p.exists()), None)
    if there is not None and not there.is_dir():
        raise ConfigError(f"{there} is a file, not a folder: name a folder for the data")
    for parent in reversed([p for p in path.parents if not p.exists()]):
        try:
            parent.mkdir()
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs, not ours to change
        os.chmod(parent, PARENT_DIR_MODE)
    path.mkdir(exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path``, which must not exist yet, ``0600`` in a private folder, holding
    ``data``. Raises FileExistsError when it exists (a secret is never overwritten).

    ``path`` appears whole or not at all: the bytes go to a temporary file, synced, then
    hard-linked to ``path`` (atomic, and it refuses an existing name as ``O_EXCL`` does).
    Written in place, a process killed (or a power cut) mid-write would leave a partial
    key under the real name: read back as the key at every later start, never rewritten.
    """
    make_private_dir(path.parent)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(descriptor, "wb") as out:
            os.fchmod(out.fileno(), FILE_MODE)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.link(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the new name itself survives a power cut
    finally:
        os.close(folder)


def prepare_private_database(path: Path, *, own_folder: bool = True) -> None:
    """Before SQLite opens ``path``: its folder ``0700``; the database file created (empty,
    which SQLite takes for a new database) or tightened to ``0600``, and so are the
    WAL, shared-memory and journal files SQLite derives their modes from it for.

    Without ``own_folder`` (a file the operator named, ``--database sqlite:///…``) an
    existing folder is left as it is: it may be anyone's (``/tmp``); one made here is
    made private."""
    if own_folder or not path.parent.exists():
        make_private_dir(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)
    finally:
        os.close(descriptor)
    for suffix in SQLITE_SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, FILE_MODE)


def replica_id(data_dir: Path) -> str:
    """This data dir's replica id: 16 random hex digits, made once and kept in
    ``replica-id``. Every process serving from the data dir is of this replica (its
    store's owner names it, ``storage.leases``), so a restart can release what the
    previous run held, and only that."""
    path = data_dir / REPLICA_ID_FILE
    if not path.exists():
        # FileExistsError: made just now by another process of this data dir
        with contextlib.suppress(FileExistsError):
            write_private_file(path, (secrets.token_hex(8) + "\n").encode())
    text = path.read_text().strip()
    if not REPLICA_ID.fullmatch(text):
        raise ConfigError(f"{path} holds no replica id (16 hex digits): remove it to make one")
    return text


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/serve.lock``: one ``saferouter serve`` per
    data dir. Recovery at start-up releases every reservation of this data dir's
    replica (``storage.leases``), which is right only while no process of it serves.

    The lock belongs to the open file, not to a process: a worker process is handed the
    same open file (pickled for ``multiprocessing``'s spawn as the descriptor itself,
    passed to the child, as sockets are), so the lock is held until the last process
    of the server has exited — a parent killed while its workers finish their requests
    does not let a restart release what they still hold.
    """

    def __init__(self, fd: int, data_dir: Path) -> None:
        self._fd: int | None = fd
        self.data_dir = data_dir

    def __reduce__(self) -> tuple[Any, ...]:
        if self._fd is None:
            raise ValueError("the data dir lock is released")
        return (_inherited_lock, (reduction.DupFd(self._fd), self.data_dir))

    def release(self) -> None:
        """Close this process's hold (the lock goes with the last one)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def _inherited_lock(fd: Any, data_dir: Path) -> DataDirLock:
    return DataDirLock(fd.detach(), data_dir)


def lock_data_dir(data_dir: Path) -> DataDirLock:
    """Take the data dir's lock (making the data dir if need be), or raise
    :class:`~saferouter.errors.DataDirInUse` at once when another server holds it (a
    :class:`~saferouter.errors.ConfigError` when it cannot be taken at all)."""
    path = data_dir / LOCK_FILE
    try:
        make_private_dir(data_dir)
        # O_NOFOLLOW: serve often runs as root, and the fchmod below would otherwise make
        # whatever file a link planted here points to 0600
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        reason = "it is a symlink" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise ConfigError(f"cannot take the data dir's lock {path}: {reason.lower()}") from None
    try:
        os.fchmod(fd, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirInUse(
            f"the data dir {data_dir} is in use by another saferouter serve "
            f"(it holds {path}); stop it, or give this one its own --data-dir"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return DataDirLock(fd, data_dir)
