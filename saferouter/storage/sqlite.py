"""The default store: one SQLite file in the data dir, in WAL mode.

Several worker processes open the same file. Reads (the key lookup on every request)
run on a connection in the event-loop thread: a keyed read takes microseconds. Writes
go through :class:`_GroupCommit`: every request's write joins a queue, and whichever
request finds no write in progress commits the whole queue in one ``BEGIN IMMEDIATE``
transaction in a worker thread. Under load many requests share one commit; alone, a
request commits at once. SQLite serializes write transactions across processes, so a
check-and-reserve inside one is atomic for every worker.

Durability: WAL with ``synchronous = NORMAL`` — a committed transaction is in the WAL
file before the request goes on, so it survives the process being killed (not a power
cut, which would need ``FULL``). Schema changes are the numbered migrations of
:mod:`.migrations`, counted in ``PRAGMA user_version``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import trio

from ..datadir import prepare_private_database
from ..errors import StorageError
from .group_commit import GroupCommit, Op, apply_in_savepoints
from .migrations import MIGRATIONS, migration_statements
from .sql import Db, Dialect
from .sql_store import SqlStore

T = TypeVar("T")
DB_NAME = "saferouter.db"


class SQLiteDb(sqlite3.Connection):
    """A SQLite connection that says it is one (:class:`~.sql.Db`'s ``dialect``);
    otherwise the plain connection, at the plain connection's speed."""

    dialect: ClassVar[Dialect] = "sqlite"


def connect(path: Path, *, busy_timeout_ms: int = 30_000, named_rows: bool = True) -> SQLiteDb:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on.

    Rows are read by name (``row["balance_micro_usd"]``, a :class:`sqlite3.Row`), and a
    record from a SELECT of its own fields (``KeyRecord(*row)`` after
    ``SELECT {columns(KeyRecord)}``), so no field is read by a position written by hand.
    ``named_rows=False`` gives plain tuples, for a connection that only reads whole
    records: sqlite3.Row added ~0.5 µs to the per-request key read (11.1 → 11.7 µs).
    """
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, factory=SQLiteDb)
    if named_rows:
        db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    return db


class _GroupCommit(GroupCommit):
    """Commits queued write operations together, one transaction at a time.

    Fast path: when the database's write lock is free, the batch commits right here in
    the event-loop thread (a small WAL commit takes tens of microseconds, less than a
    hop to a worker thread). When another process holds the lock, the batch waits for
    it in a worker thread instead, so the event loop never blocks on a lock. The loop's
    connection never checkpoints (a checkpoint syncs to disk); checkpoints run in the
    worker thread every ``CHECKPOINT_EVERY`` commits.
    """

    CHECKPOINT_EVERY = 1000
    BUSY_PAUSES_S = (0.0, 0.0005, 0.001, 0.002)  # then the waiting connection, in a thread

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fast = connect(path, busy_timeout_ms=0)
        self._fast.execute("PRAGMA wal_autocheckpoint = 0")
        self._waiting = connect(path)
        self._commits = 0

    async def commit_queue(self) -> None:
        await self._commit_queue()
        self._commits += 1
        if self._commits % self.CHECKPOINT_EVERY == 0:
            await trio.to_thread.run_sync(self._checkpoint)

    async def _commit_queue(self) -> None:
        """Commit everything queued. When another process holds the write lock, wait a
        moment in the event loop and try again — the ops queued meanwhile join the
        batch — before handing the batch to a worker thread that waits on the lock:
        a thread hop and SQLite's own busy back-off (1 ms, 2 ms, 5 ms …) cost more than
        a commit, and with several workers on one file the lock is often just taken."""
        batch: list[Op[Any]] = []
        for pause_s in self.BUSY_PAUSES_S:
            batch += self.take_queue()
            if _commit(self._fast, batch):
                return
            await trio.sleep(pause_s)
        batch += self.take_queue()
        await trio.to_thread.run_sync(_commit, self._waiting, batch)

    def _checkpoint(self) -> None:
        # housekeeping: if it fails, the next one tries again
        with contextlib.suppress(sqlite3.Error):
            self._waiting.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        self._fast.close()
        self._waiting.close()


def _commit(db: SQLiteDb, batch: list[Op[Any]]) -> bool:
    """Apply and commit a batch in one transaction, each op in its own savepoint.
    False (nothing done) when the write lock is taken and this connection won't wait."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _is_busy(exc) and db.execute("PRAGMA busy_timeout").fetchone()[0] == 0:
            return False
        for op in batch:
            op.fail(StorageError(f"cannot start a write: {exc}"))
        return True
    except sqlite3.Error as exc:
        for op in batch:
            op.fail(StorageError(f"cannot start a write: {exc}"))
        return True
    apply_in_savepoints(db, batch, _storage_error)
    try:
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        db.execute("ROLLBACK")
        for op in batch:
            op.fail(StorageError(f"commit failed: {exc}"))
        return True
    for op in batch:
        op.finished = True
    return True


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc)


def _storage_error(exc: Exception) -> Exception:
    return StorageError(str(exc)) if isinstance(exc, sqlite3.Error) else exc


class SQLiteStore(SqlStore):
    """:class:`~saferouter.storage.Store` on a SQLite file (its methods: :class:`SqlStore`),
    for ``owner`` (the serving process it admits for, :mod:`.leases`; by default a random
    one)."""

    def __init__(
        self,
        path: Path,
        *,
        activity_retention_days: float = 30.0,
        owner: str | None = None,
        own_folder: bool = True,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """``own_folder``: the file's folder is SafeRouter's (the data dir), made 0700;
        False for a file the operator named, whose existing folder is left alone."""
        super().__init__(activity_retention_days=activity_retention_days, owner=owner, wall=wall)
        self.path = path
        try:
            prepare_private_database(path, own_folder=own_folder)
            # only whole records and counts are read here (the key read, per request)
            self._db = connect(path, named_rows=False)
            self._migrate()
            # (data_version when last read, the generation read then); see key_generation
            self._key_generation_seen = (-1, 0)
            self._writes: _GroupCommit = _GroupCommit(path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the database at {path}: {exc}") from exc
        except OSError as exc:  # the path names a folder, or a file under one that is not
            reason = (exc.strerror or type(exc).__name__).lower()
            raise StorageError(f"cannot open the database at {path}: {reason}") from exc

    @classmethod
    def in_data_dir(
        cls, data_dir: Path, *, activity_retention_days: float = 30.0, owner: str | None = None
    ) -> SQLiteStore:
        return cls(data_dir / DB_NAME, activity_retention_days=activity_retention_days, owner=owner)

    def _migrate(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"database schema version {version} is newer than this build knows"
                )
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                if callable(migration):
                    migration(self._db)
                else:
                    for statement in migration_statements(migration):
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def schema_version(self) -> int:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        return int(version)

    # --- keys ------------------------------------------------------------------------

    async def key_generation(self) -> int:
        """The key generation row, read only when ``PRAGMA data_version`` says another
        connection committed since the last look.

        ``data_version`` changes when any *other* connection (another worker, the CLI,
        and this store's own writer connections, which are not ``self._db``) commits to
        the file; SQLite documents it for exactly this: polling whether a cache is still
        good. It reads no table, but like any statement it takes the WAL read lock, so
        through Python it costs about what reading the one-row table does (measured
        ~6-9 µs each); what it saves is the second statement while nothing committed.
        Read before the row, so a commit landing between the two reads makes the next
        call read the row again instead of being missed.
        """
        try:
            (data_version,) = self._db.execute("PRAGMA data_version").fetchone()
            seen, generation = self._key_generation_seen
            if data_version != seen:
                (generation,) = self._db.execute("SELECT generation FROM key_generation").fetchone()
                self._key_generation_seen = (data_version, generation)
        except sqlite3.Error as exc:
            raise StorageError(f"key generation lookup failed: {exc}") from exc
        return int(generation)

    # --- life ---------------------------------------------------------------------

    async def _read(self, query: Callable[[Db], T]) -> T:
        """A read that may scan: in a thread, on a connection of its own."""

        def run() -> T:
            db = connect(self.path)
            try:
                return query(db)
            finally:
                db.close()

        try:
            return await trio.to_thread.run_sync(run)
        except sqlite3.Error as exc:
            raise StorageError(f"read failed: {exc}") from exc

    async def _read_keyed(self, query: Callable[[Db], T]) -> T:
        """A keyed read takes microseconds: on the loop's connection, in the loop."""
        try:
            return query(self._db)
        except sqlite3.Error as exc:
            raise StorageError(f"read failed: {exc}") from exc

    async def ping(self) -> None:
        try:
            self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"database unreachable: {exc}") from exc

    async def close(self) -> None:
        self._db.close()
        self._writes.close()
