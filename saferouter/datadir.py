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

import os
from pathlib import Path

DIR_MODE = 0o700
# Folders above the data dir that the gateway has to create: traversable, but writable
# by the owner alone. Made by the umask alone (0o777 under umask 0), anyone could
# rename the data dir away and put a folder of theirs, with their own admin key, there.
PARENT_DIR_MODE = 0o755
FILE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents, ``0755``) if needed, and make it ``0700``."""
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


def prepare_private_database(path: Path) -> None:
    """Before SQLite opens ``path``: its folder ``0700``; the database file created (empty,
    which SQLite takes for a new database) or tightened to ``0600``, and so are the
    WAL, shared-memory and journal files SQLite derives their modes from it for."""
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
