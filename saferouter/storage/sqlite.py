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
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import trio

from ..datadir import prepare_private_database
from ..errors import LastAdminKey, StorageError
from ..translog.merkle import NodeId
from . import activity_log, byok_keys, leases, ledger, logs, receipts, replicas, rules
from .migrations import MIGRATIONS, migration_statements
from .records import (
    ActivityEntry,
    ActivityFilter,
    Admission,
    AdmissionRequest,
    Books,
    ByokKey,
    KeyRecord,
    KeyRole,
    LogEntry,
    ModelUsage,
    NewLogEntry,
    NewReceipt,
    PublishedHead,
    RateLimits,
    Replica,
    Settlement,
    StoredReceipt,
    columns,
)

T = TypeVar("T")
DB_NAME = "saferouter.db"

_SELECT_KEYS = f"SELECT {columns(KeyRecord)} FROM keys"  # noqa: S608 (field names)


def connect(
    path: Path, *, busy_timeout_ms: int = 30_000, named_rows: bool = True
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on.

    Rows are read by name (``row["balance_micro_usd"]``, a :class:`sqlite3.Row`), and a
    record from a SELECT of its own fields (``KeyRecord(*row)`` after
    ``SELECT {columns(KeyRecord)}``), so no field is read by a position written by hand.
    ``named_rows=False`` gives plain tuples, for a connection that only reads whole
    records: sqlite3.Row added ~0.5 µs to the per-request key read (11.1 → 11.7 µs).
    """
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    if named_rows:
        db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    return db


class _GroupCommit:
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
        self._fast = connect(path, busy_timeout_ms=0)
        self._fast.execute("PRAGMA wal_autocheckpoint = 0")
        self._waiting = connect(path)
        self._queue: list[_Op[Any]] = []
        self._lock = trio.Lock()
        self._commits = 0

    async def run(self, apply: Callable[[sqlite3.Connection], T]) -> T:
        op: _Op[T] = _Op(apply)
        self._queue.append(op)
        # Shielded: once queued, the write happens whatever happens to the request, so
        # a cancelled caller never leaves a batch half-recorded.
        with trio.CancelScope(shield=True):
            async with self._lock:
                if not op.finished:
                    await self._commit_queue()
                    self._commits += 1
                    if self._commits % self.CHECKPOINT_EVERY == 0:
                        await trio.to_thread.run_sync(self._checkpoint)
        return op.result()

    async def _commit_queue(self) -> None:
        """Commit everything queued. When another process holds the write lock, wait a
        moment in the event loop and try again — the ops queued meanwhile join the
        batch — before handing the batch to a worker thread that waits on the lock:
        a thread hop and SQLite's own busy back-off (1 ms, 2 ms, 5 ms …) cost more than
        a commit, and with several workers on one file the lock is often just taken."""
        batch: list[_Op[Any]] = []
        for pause_s in self.BUSY_PAUSES_S:
            batch, self._queue = batch + self._queue, []
            if _commit(self._fast, batch):
                return
            await trio.sleep(pause_s)
        batch, self._queue = batch + self._queue, []
        await trio.to_thread.run_sync(_commit, self._waiting, batch)

    def _checkpoint(self) -> None:
        # housekeeping: if it fails, the next one tries again
        with contextlib.suppress(sqlite3.Error):
            self._waiting.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        self._fast.close()
        self._waiting.close()


def _commit(db: sqlite3.Connection, batch: list[_Op[Any]]) -> bool:
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
    for op in batch:
        db.execute("SAVEPOINT op")
        try:
            op.value = op.apply(db)
            db.execute("RELEASE op")
        except Exception as exc:
            # Any failure, a caller's own included (a ``make_entry`` that raises), undoes
            # this op alone and reaches its caller: no transaction is ever left open.
            db.execute("ROLLBACK TO op")
            db.execute("RELEASE op")
            op.fail(StorageError(str(exc)) if isinstance(exc, sqlite3.Error) else exc)
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


class _Op(Generic[T]):
    def __init__(self, apply: Callable[[sqlite3.Connection], T]) -> None:
        self.apply = apply
        self.value: T | None = None
        self.error: Exception | None = None
        self.finished = False

    def fail(self, error: Exception) -> None:
        self.error = error
        self.finished = True

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        assert self.finished
        return self.value  # type: ignore[return-value]


class SQLiteStore:
    """:class:`~saferouter.storage.Store` on a SQLite file, for ``owner`` (the serving
    process it admits for, :mod:`.leases`; by default a random one)."""

    def __init__(
        self, path: Path, *, activity_retention_days: float = 30.0, owner: str | None = None
    ) -> None:
        self.path = path
        self.owner = owner or leases.lone_owner()
        self._retention_s = activity_retention_days * 86400
        self._prune = rules.PruneSchedule()
        try:
            prepare_private_database(path)
            # only whole records and counts are read here (the key read, per request)
            self._db = connect(path, named_rows=False)
            self._migrate()
            # (data_version when last read, the generation read then); see key_generation
            self._key_generation_seen = (-1, 0)
            self._writes = _GroupCommit(path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the database at {path}: {exc}") from exc

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

    # --- keys ---------------------------------------------------------------------

    def _key(self, column: str, value: str) -> KeyRecord | None:
        try:
            return byok_keys.key_where(self._db, column, value)
        except sqlite3.Error as exc:
            raise StorageError(f"key lookup failed: {exc}") from exc

    async def create_key(
        self,
        *,
        name: str,
        role: KeyRole,
        key_hash: str,
        prefix: str,
        credits_micro_usd: int | None = None,
        rpm_limit: int | None = None,
        tpm_limit: int | None = None,
    ) -> KeyRecord:
        key_id = "key_" + secrets.token_hex(8)
        now = time.time()

        def apply(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO keys (id, name, prefix, key_hash, role, created_at, metered, "
                "rpm_limit, tpm_limit) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    key_id,
                    name,
                    prefix,
                    key_hash,
                    role,
                    now,
                    credits_micro_usd is not None,
                    rpm_limit,
                    tpm_limit,
                ),
            )
            if credits_micro_usd:
                ledger.top_up(db, key_id, credits_micro_usd, now)

        await self._writes.run(apply)
        record = await self.key_by_id(key_id)
        assert record is not None
        return record

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        return self._key("key_hash", key_hash)

    async def key_by_id(self, key_id: str) -> KeyRecord | None:
        return self._key("id", key_id)

    async def list_keys(self) -> list[KeyRecord]:
        rows = await self._read(
            lambda db: db.execute(_SELECT_KEYS + " ORDER BY created_at, id").fetchall()
        )
        return [KeyRecord(*row) for row in rows]

    async def update_key(
        self, key_id: str, *, name: str | None = None, limits: RateLimits | None = None
    ) -> KeyRecord | None:
        def apply(db: sqlite3.Connection) -> None:
            if name is not None:
                db.execute("UPDATE keys SET name = ? WHERE id = ?", (name, key_id))
            if limits is not None:
                db.execute(
                    "UPDATE keys SET rpm_limit = ?, tpm_limit = ? WHERE id = ?",
                    (limits.requests_per_minute, limits.tokens_per_minute, key_id),
                )

        await self._writes.run(apply)
        return await self.key_by_id(key_id)

    async def revoke_key(self, key_id: str, *, keep_an_admin: bool = False) -> KeyRecord | None:
        now = time.time()

        def apply(db: sqlite3.Connection) -> None:
            # The count and the revocation share one write transaction (BEGIN IMMEDIATE,
            # serialized across workers): two admins revoking each other at once cannot
            # both see the other still active and leave none.
            if keep_an_admin and _is_last_active_admin(db, key_id):
                raise LastAdminKey(f"{key_id} is the last active admin key")
            db.execute(
                "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, key_id),
            )
            byok_keys.delete_all(db, key_id)  # a revoked key's provider secrets are not kept

        await self._writes.run(apply)
        return await self.key_by_id(key_id)

    async def touch_key(self, key_id: str, when: float) -> None:
        await self._writes.run(
            lambda db: db.execute("UPDATE keys SET last_used_at = ? WHERE id = ?", (when, key_id))
        )

    async def count_keys(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM keys").fetchone()
        return int(count)

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

    # --- BYOK keys ----------------------------------------------------------------

    async def put_byok_key(self, key: ByokKey) -> ByokKey:
        return await self._writes.run(lambda db: byok_keys.put(db, key))

    async def set_byok_fallback(
        self, key_id: str, provider: str, fallback: bool, *, now: float
    ) -> ByokKey | None:
        return await self._writes.run(
            lambda db: byok_keys.set_fallback(db, key_id, provider, fallback, now)
        )

    async def delete_byok_key(self, key_id: str, provider: str) -> bool:
        return await self._writes.run(lambda db: byok_keys.delete(db, key_id, provider))

    # --- money --------------------------------------------------------------------

    async def admit(self, request: AdmissionRequest) -> Admission:
        return await self._writes.run(lambda db: ledger.admit(db, request, self.owner))

    async def settle(self, settlement: Settlement) -> None:
        prune = self._prune.due(settlement.now)

        def apply(db: sqlite3.Connection) -> None:
            ledger.settle(db, settlement)
            if prune:
                ledger.prune(db, settlement.now, self._retention_s)

        await self._writes.run(apply)

    async def top_up(
        self, key_id: str, amount_micro_usd: int, *, make_metered: bool = False
    ) -> KeyRecord | None:
        def apply(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT metered FROM keys WHERE id = ?", (key_id,)).fetchone()
            if row is None:
                return False
            if not row["metered"]:
                if not make_metered:
                    return True  # unmetered stays unmetered: the caller sees metered False
                ledger.start_metering(db, key_id, time.time())
            ledger.top_up(db, key_id, amount_micro_usd, time.time())
            return True

        found = await self._writes.run(apply)
        return await self.key_by_id(key_id) if found else None

    async def renew_lease(self, until: float) -> None:
        await self._writes.run(lambda db: leases.renew(db, self.owner, until))

    async def end_lease(self) -> None:
        await self._writes.run(lambda db: leases.end(db, self.owner))

    async def recover(self, now: float | None = None, *, replica: str | None = None) -> int:
        at = time.time() if now is None else now
        return await self._writes.run(lambda db: ledger.release_abandoned(db, at, replica))

    async def books(self, key_id: str) -> Books:
        return await self._read(lambda db: ledger.books(db, key_id))

    async def check_books(self) -> list[str]:
        return await self._read(ledger.unbalanced_keys)

    async def overrun_micro_usd(self) -> int:
        return await self._read(ledger.overrun_total)

    # --- activity -----------------------------------------------------------------

    async def activity(self, query: ActivityFilter) -> list[ActivityEntry]:
        return await self._read(lambda db: activity_log.activity(db, query))

    async def activity_since(self, since: float, key_id: str | None) -> Sequence[ActivityEntry]:
        return await self._read(
            lambda db: activity_log.activity(
                db, ActivityFilter(key_id=key_id, since=since, limit=1_000_000)
            )
        )

    async def usage_by_model(self, key_id: str) -> list[ModelUsage]:
        return await self._read(lambda db: activity_log.usage_by_model(db, key_id))

    # --- logs ---------------------------------------------------------------------

    async def log_append(
        self, log: str, make_entry: Callable[[int, bytes | None], NewLogEntry]
    ) -> LogEntry:
        now = time.time()
        return await self._writes.run(lambda db: logs.append(db, log, make_entry, now))

    async def log_size(self, log: str) -> int:
        # keyed reads of microseconds: on the loop's connection, as a key lookup is
        try:
            return logs.size(self._db, log)
        except sqlite3.Error as exc:
            raise StorageError(f"log read failed: {exc}") from exc

    async def log_nodes(self, log: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        try:
            return logs.nodes(self._db, log, ids)
        except sqlite3.Error as exc:
            raise StorageError(f"log read failed: {exc}") from exc

    async def log_entries(
        self, log: str, start: int, limit: int, key_id: str | None = None
    ) -> list[LogEntry]:
        return await self._read(lambda db: logs.entries(db, log, start, limit, key_id))

    # --- receipts -----------------------------------------------------------------

    async def save_receipt(self, receipt: NewReceipt) -> int:
        now = time.time()
        return await self._writes.run(lambda db: receipts.save(db, receipt, now))

    async def receipt(self, receipt_id: str) -> StoredReceipt | None:
        try:
            return receipts.get(self._db, receipt_id)  # a keyed read: microseconds
        except sqlite3.Error as exc:
            raise StorageError(f"receipt lookup failed: {exc}") from exc

    async def sampled_receipts(
        self, start: int, limit: int, key_id: str | None = None
    ) -> list[StoredReceipt]:
        return await self._read(lambda db: receipts.sampled(db, start, limit, key_id))

    # --- replicas -----------------------------------------------------------------

    async def publish_head(self, log: str, size: int, checkpoint: str, now: float) -> None:
        await self._writes.run(lambda db: replicas.publish_head(db, log, size, checkpoint, now))

    async def published_head(self, log: str) -> PublishedHead | None:
        try:
            return replicas.published_head(self._db, log)  # a keyed read: microseconds
        except sqlite3.Error as exc:
            raise StorageError(f"head lookup failed: {exc}") from exc

    async def see_replica(self, identity: str, now: float) -> None:
        await self._writes.run(lambda db: replicas.see_replica(db, identity, now))

    async def replicas(self) -> list[Replica]:
        return await self._read(replicas.replicas)

    # --- life ---------------------------------------------------------------------

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
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

    async def ping(self) -> None:
        try:
            self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"database unreachable: {exc}") from exc

    async def close(self) -> None:
        self._db.close()
        self._writes.close()


def _is_last_active_admin(db: sqlite3.Connection, key_id: str) -> bool:
    """Whether ``key_id`` is an active admin key and no other admin key is active."""
    row = db.execute(
        "SELECT role = 'admin' AND revoked_at IS NULL AS active_admin, "
        "(SELECT count(*) FROM keys WHERE role = 'admin' AND revoked_at IS NULL AND id != ?) "
        "AS other_admins FROM keys WHERE id = ?",
        (key_id, key_id),
    ).fetchone()
    return row is not None and bool(row["active_admin"]) and row["other_admins"] == 0
