"""The PostgreSQL store: several replicas, on several hosts, sharing one database.

Same methods and SQL as the SQLite store (:class:`~.sql_store.SqlStore`, the portable SQL
of :mod:`.ledger` and the other SQL modules, on a :class:`~.sql.PostgresDb`); what
differs is below it:

* **Threads.** trio has no PostgreSQL driver, so blocking psycopg calls run in trio's
  worker threads, at most ``pool_size`` at once (a :class:`trio.CapacityLimiter` the
  size of the :class:`psycopg_pool.ConnectionPool`, so a thread never waits for a
  connection another thread holds while the event loop goes on).
* **Reads** run in autocommit on a pooled connection: each statement its own snapshot,
  no transaction kept open.
* **Writes** are group-committed as on SQLite (:class:`~.group_commit.GroupCommit`):
  the queued ops run in one ``SERIALIZABLE`` transaction, a savepoint each. SQLite
  serializes writers with a file lock; here concurrent transactions of other replicas
  run side by side and PostgreSQL aborts one that could not have run alone (40001) or
  deadlocked (40P01). The whole batch is then rolled back, and each of its ops runs
  again after a jittered pause of its own (outside the commit lock, so the queue moves
  on meanwhile), at most ``MAX_ATTEMPTS`` times; so SQL written for SQLite's one writer
  at a time (check the balance, then reserve) stays correct across replicas. A batch of
  one op needs no savepoint (two round trips fewer); the write lock (below) is taken
  in the BEGIN's round trip and given up in the COMMIT's. The lease renewal is no batch's:
  one upsert of its own row, in autocommit, so traffic never makes a lease lapse.
* **Outages** are bounded: a connect, a wait for a pooled connection and a statement
  each have a timeout of a few seconds, and any of them failing is
  :class:`~saferouter.errors.StorageUnavailable` (503 ``storage_unavailable``), never a
  hang. A connection the server dropped (a restart) is discarded by the pool when it
  comes back broken; a read that met one is tried once more on a fresh connection, so
  the store recovers by itself once the database is back.

The URL (it may hold a password) is never put in an error or a log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import psycopg.errors
import trio
from psycopg_pool import ConnectionPool

from ..errors import StorageError, StorageUnavailable
from . import leases, pg_migrations
from .group_commit import GroupCommit, Op, apply_in_savepoints
from .sql import Db, PostgresDb, configure
from .sql_store import SqlStore

T = TypeVar("T")

# an op that keeps losing serialization conflicts fails after this many runs (its
# jittered pauses between them, group_commit.FIRST_PAUSE_S doubled: ~2 s on average)
MAX_ATTEMPTS = 12
_RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
# One writer at a time across the cluster, as SQLite has one per file: a batch takes
# this session advisory lock *before* its transaction starts, so its SERIALIZABLE
# snapshot is taken after the previous writer committed and the two never conflict
# (a hot key's row made 2 replicas 0.31x as fast as 1 without it: every batch touching
# it aborted and ran again). SERIALIZABLE stays, as the net for any writer that does
# not take it. (pg_advisory_xact_lock would wait *inside* the transaction, after its
# first statement had taken the snapshot: conflicts again.)
WRITE_LOCK = pg_migrations.MIGRATION_LOCK + 1
# The lock, then a SERIALIZABLE transaction, in one round trip: one string of three
# statements (no parameters: the simple query protocol runs them in turn, and skips the
# rest after an error). The COMMIT ends the implicit transaction the lock ran in, so the
# BEGIN starts a fresh one whose snapshot is taken by its first statement, after the
# wait. (Without it PostgreSQL would refuse to set the isolation level of a transaction
# that has taken a snapshot already: the lock's.)
_LOCK_AND_BEGIN = (
    f"SELECT pg_advisory_lock({WRITE_LOCK}); COMMIT; BEGIN ISOLATION LEVEL SERIALIZABLE"
)
_UNLOCK = f"SELECT pg_advisory_unlock({WRITE_LOCK})"


class _Conflict(StorageError):
    """The batch's transaction lost a serialization conflict: run it again."""


def _error(exc: psycopg.Error, doing: str) -> StorageError:
    """The store's error for a psycopg one. Its primary message only (no DETAIL, which
    may quote values); an unreachable database without even that (it names the host)."""
    if isinstance(exc, psycopg.OperationalError):
        return StorageUnavailable(f"{doing}: the database cannot be reached ({type(exc).__name__})")
    message = exc.diag.message_primary or type(exc).__name__
    return StorageError(f"{doing}: {message}")


class _SerializableCommit(GroupCommit):
    """Commits the queue in one SERIALIZABLE transaction, retried on conflicts."""

    def __init__(self, pool: ConnectionPool[Any], limiter: trio.CapacityLimiter) -> None:
        super().__init__()
        self._pool = pool
        self._limiter = limiter
        self.conflicts = 0  # batches that lost a serialization conflict (for tests, bench)

    async def commit_queue(self) -> None:
        batch = self.take_queue()
        try:
            await trio.to_thread.run_sync(self._commit, batch, limiter=self._limiter)
        except _Conflict:
            for op in batch:  # each pauses, then joins the queue again (GroupCommit.run)
                op.lose_conflict()
                if op.conflicts >= MAX_ATTEMPTS:
                    op.fail(StorageUnavailable("write: kept conflicting with other writes"))

    def _commit(self, batch: list[Op[Any]]) -> None:
        """Run and commit ``batch`` (in a worker thread). Raises _Conflict to be run again;
        every other outcome is in the ops."""
        try:
            for attempt in (1, 2):
                with self._pool.connection() as connection:
                    db = PostgresDb(connection)
                    unlocked = False
                    try:
                        try:
                            connection.execute(_LOCK_AND_BEGIN)
                        except psycopg.OperationalError:
                            if attempt == 1 and connection.broken:  # dropped while pooled
                                self._pool.check()
                                continue
                            raise
                        try:
                            end = _apply(db, batch)
                        except BaseException:
                            if not connection.broken:
                                db.execute("ROLLBACK")
                            raise
                        # The transaction's end and the unlock in one round trip, as the
                        # lock and the BEGIN: a COMMIT that fails ends the transaction
                        # and skips the unlock, which the finally does then.
                        connection.execute(f"{end}; {_UNLOCK}")
                        unlocked = True
                    finally:
                        if not unlocked:  # (a lock that was not taken: a no-op)
                            _unlock(connection)
                    break
        except _RETRYABLE as exc:  # at COMMIT, or from an op (_op_error let it through)
            self.conflicts += 1
            raise _Conflict from exc
        except psycopg.Error as exc:  # the connection, the pool, or the COMMIT itself
            for op in batch:  # an instance each: their tracebacks are their callers'
                op.fail(_error(exc, "write"))
            return
        for op in batch:
            op.finished = True


def _unlock(connection: psycopg.Connection[Any]) -> None:
    """Give the write lock up (a session's lock outlives its transaction). A connection
    that cannot is closed: its session's end releases the lock, and the pool drops it."""
    if connection.broken:
        return  # the session is gone, and its lock with it
    try:
        connection.execute(_UNLOCK)
    except psycopg.Error:
        connection.close()


def _apply(db: Db, batch: list[Op[Any]]) -> str:
    """Run the batch's ops in the open transaction; the statement that ends it. An op
    alone needs no savepoint (two round trips of the ten an admission takes): if it
    fails, the whole transaction is rolled back instead of committed."""
    if len(batch) > 1:
        apply_in_savepoints(db, batch, _op_error)
        return "COMMIT"
    (op,) = batch
    try:
        op.value = op.apply(db)
    except Exception as exc:
        op.fail(_op_error(exc))
        return "ROLLBACK"
    return "COMMIT"


def _op_error(exc: Exception) -> Exception:
    """What an op's failure is to its caller (:func:`.group_commit.apply_in_savepoints`);
    raised again when it dooms the batch's transaction."""
    if isinstance(exc, (*_RETRYABLE, psycopg.OperationalError)):
        raise exc
    return _error(exc, "write") if isinstance(exc, psycopg.Error) else exc


class PostgresStore(SqlStore):
    """:class:`~saferouter.storage.Store` on a PostgreSQL database (its methods:
    :class:`SqlStore`), for ``owner`` (as :class:`~.sqlite.SQLiteStore`). Opening it
    migrates the schema if no replica has yet."""

    def __init__(
        self,
        url: str,
        *,
        activity_retention_days: float = 30.0,
        owner: str | None = None,
        pool_size: int = 8,
        connect_timeout_s: float = 2.0,
        pool_timeout_s: float = 2.5,
        statement_timeout_s: float = 3.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(activity_retention_days=activity_retention_days, owner=owner, wall=wall)
        self.url = url  # never logged nor put in an error: it may hold a password
        self._limiter = trio.CapacityLimiter(pool_size)
        self._pool: ConnectionPool[Any] = ConnectionPool(
            url,
            min_size=min(2, pool_size),
            max_size=pool_size,
            open=False,
            timeout=pool_timeout_s,
            # a database that stays away is retried by every request's own wait, not
            # given up on for good after the default five minutes
            reconnect_timeout=pool_timeout_s,
            configure=configure,
            name="saferouter",
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, round(connect_timeout_s)),
                "application_name": "saferouter",
                # synchronous_commit on whatever the server's default: a client is sent a
                # response only once its charge committed, and with it off a commit is
                # acknowledged before it is durable, so a database crash loses charges of
                # requests clients saw complete (test_postgres_killed.py).
                # The write lock is a session lock, held only while this session is in
                # a transaction (taken with BEGIN, given up with COMMIT: one round trip
                # each). A replica stopped there (SIGSTOP, a stuck host) would hold every
                # replica's writes for as long as it stays stopped; the server ends a
                # session idle in a transaction this long, which frees the lock. No
                # statement of ours waits this long after another.
                "options": (
                    f"-c statement_timeout={round(statement_timeout_s * 1000)} "
                    f"-c idle_in_transaction_session_timeout={round(statement_timeout_s * 1000)} "
                    "-c synchronous_commit=on"
                ),
            },
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s + pool_timeout_s)
            with self._pool.connection() as connection:
                pg_migrations.migrate(connection)
        except psycopg.Error as exc:
            self._pool.close()
            raise _error(exc, "cannot open the PostgreSQL database") from None
        except BaseException:
            self._pool.close()
            raise
        self._writes: _SerializableCommit = _SerializableCommit(self._pool, self._limiter)

    def schema_version(self) -> int:
        with self._pool.connection() as connection:
            row = connection.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0])

    async def key_generation(self) -> int:
        return await self._read_keyed(
            lambda db: int(db.execute("SELECT generation FROM key_generation").fetchone()[0])
        )

    async def renew_lease(self, until: float) -> None:
        # One upsert of this owner's own row, a transaction by itself: not queued behind
        # other writes, nor rolled back with a batch that lost a conflict on a hot key,
        # so a live replica's lease never lapses because traffic is busy.
        await self._read(lambda db: leases.renew(db, self.owner, until, self._wall()))

    async def end_lease(self) -> None:
        await self._read(lambda db: leases.end(db, self.owner))

    # --- life ---------------------------------------------------------------------

    async def _read(self, query: Callable[[Db], T]) -> T:
        return await trio.to_thread.run_sync(self._run_read, query, limiter=self._limiter)

    async def _read_keyed(self, query: Callable[[Db], T]) -> T:
        return await trio.to_thread.run_sync(self._run_read, query, limiter=self._limiter)

    def _run_read(self, query: Callable[[Db], T]) -> T:
        """``query`` on a pooled connection in autocommit (in a worker thread): reads, or
        one idempotent statement; tried once more on a fresh connection when the pooled
        one turns out dropped by the server (a restart)."""
        for attempt in (1, 2):
            try:
                with self._pool.connection() as connection:
                    try:
                        return query(PostgresDb(connection))
                    except psycopg.OperationalError:
                        if attempt == 1 and connection.broken:
                            # its idle siblings were most likely dropped too: let the
                            # pool test them now rather than each failing a request
                            self._pool.check()
                            continue
                        raise
            except psycopg.Error as exc:
                raise _error(exc, "read") from None
        raise AssertionError("unreachable")

    async def ping(self) -> None:
        await self._read(lambda db: db.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await trio.to_thread.run_sync(self._pool.close)
