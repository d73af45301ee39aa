"""The :class:`~saferouter.storage.Store` methods the two SQL stores share: everything
but how a statement reaches the database.

:class:`SqlStore` writes through a :class:`~.group_commit.GroupCommit` and reads through
two hooks each store fills in: :meth:`SqlStore._read`, a read that may scan, and
:meth:`SqlStore._read_keyed`, a keyed read of a few rows (the key lookup on every
request; SQLite answers it on the event loop's connection, PostgreSQL on a pooled
one). The SQL itself is the portable SQL of :mod:`.ledger`, :mod:`.logs`,
:mod:`.receipts`, :mod:`.byok_keys` and :mod:`.activity_log`, on a :class:`~.sql.Db`;
the SQLite store (:mod:`.sqlite`) and the PostgreSQL store (:mod:`.postgres`) differ
only below it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..errors import LastAdminKey
from ..translog.merkle import NodeId
from . import activity_log, byok_keys, leases, ledger, logs, receipts, replicas, rules
from .activity_series import ActivityBucket, BucketGrid
from .group_commit import GroupCommit
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
from .sql import Db

T = TypeVar("T")

_SELECT_KEYS = f"SELECT {columns(KeyRecord)} FROM keys"  # noqa: S608 (field names)


class SqlStore:
    """The shared methods; a subclass sets ``_writes`` and the read hooks."""

    _writes: GroupCommit

    def __init__(
        self,
        *,
        activity_retention_days: float,
        owner: str | None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.owner = owner or leases.lone_owner()
        # this host's clock, the one the heartbeat's `until` and `now` are read from:
        # with the database's, it puts them on the one clock all replicas see (leases)
        self._wall = wall
        self._retention_s = activity_retention_days * 86400
        self._prune = rules.PruneSchedule()

    async def _read(self, query: Callable[[Db], T]) -> T:
        """A read that may scan (StorageError when it fails)."""
        raise NotImplementedError

    async def _read_keyed(self, query: Callable[[Db], T]) -> T:
        """A keyed read of a few rows (StorageError when it fails)."""
        raise NotImplementedError

    # --- keys ---------------------------------------------------------------------

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

        def apply(db: Db) -> None:
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
        return await self._read_keyed(lambda db: byok_keys.key_where(db, "key_hash", key_hash))

    async def key_by_id(self, key_id: str) -> KeyRecord | None:
        return await self._read_keyed(lambda db: byok_keys.key_where(db, "id", key_id))

    async def list_keys(self) -> list[KeyRecord]:
        rows = await self._read(
            lambda db: db.execute(_SELECT_KEYS + " ORDER BY created_at, id").fetchall()
        )
        return [KeyRecord(*row) for row in rows]

    async def update_key(
        self, key_id: str, *, name: str | None = None, limits: RateLimits | None = None
    ) -> KeyRecord | None:
        def apply(db: Db) -> None:
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

        def apply(db: Db) -> None:
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
        return await self._read_keyed(
            lambda db: int(db.execute("SELECT count(*) FROM keys").fetchone()[0])
        )

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

    async def count_request(self, key_id: str, now: float) -> Admission:
        return await self._writes.run(lambda db: ledger.count_request(db, key_id, now))

    async def settle(self, settlement: Settlement) -> None:
        prune = self._prune.due(settlement.now)

        def apply(db: Db) -> None:
            ledger.settle(db, settlement)
            if prune:
                ledger.prune(db, settlement.now, self._retention_s)

        await self._writes.run(apply)

    async def top_up(
        self, key_id: str, amount_micro_usd: int, *, make_metered: bool = False
    ) -> KeyRecord | None:
        def apply(db: Db) -> bool:
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
        await self._writes.run(lambda db: leases.renew(db, self.owner, until, self._wall()))

    async def end_lease(self) -> None:
        await self._writes.run(lambda db: leases.end(db, self.owner))

    async def recover(self, now: float | None = None, *, replica: str | None = None) -> int:
        wall_now = self._wall()
        at = wall_now if now is None else now
        return await self._writes.run(
            lambda db: ledger.release_abandoned(
                db, leases.on_db_clock(db, at, wall_now), replica, self.owner
            )
        )

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

    async def activity_series(self, key_id: str | None, grid: BucketGrid) -> list[ActivityBucket]:
        return await self._read(lambda db: activity_log.series(db, key_id, grid))

    async def usage_by_model(self, key_id: str) -> list[ModelUsage]:
        return await self._read(lambda db: activity_log.usage_by_model(db, key_id))

    async def spent_since(self, key_id: str, since: Sequence[float]) -> list[int]:
        return await self._read(lambda db: activity_log.spent_since(db, key_id, since))

    async def find_request(self, key_id: str | None, ref: str) -> list[ActivityEntry]:
        return await self._read_keyed(lambda db: activity_log.find_request(db, key_id, ref))

    async def served_response(self, key_id: str, response_id: str) -> ActivityEntry | None:
        return await self._read_keyed(
            lambda db: activity_log.served_response(db, key_id, response_id)
        )

    # --- logs ---------------------------------------------------------------------

    async def log_append(
        self, log: str, make_entry: Callable[[int, bytes | None], NewLogEntry]
    ) -> LogEntry:
        now = time.time()
        return await self._writes.run(lambda db: logs.append(db, log, make_entry, now))

    async def log_size(self, log: str) -> int:
        return await self._read_keyed(lambda db: logs.size(db, log))

    async def log_nodes(self, log: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return await self._read_keyed(lambda db: logs.nodes(db, log, ids))

    async def log_entries(
        self, log: str, start: int, limit: int, key_id: str | None = None
    ) -> list[LogEntry]:
        return await self._read(lambda db: logs.entries(db, log, start, limit, key_id))

    # --- receipts -----------------------------------------------------------------

    async def save_receipt(self, receipt: NewReceipt) -> int:
        now = time.time()
        return await self._writes.run(lambda db: receipts.save(db, receipt, now))

    async def receipt(self, receipt_id: str) -> StoredReceipt | None:
        return await self._read_keyed(lambda db: receipts.get(db, receipt_id))

    async def sampled_receipts(
        self, log: str, start: int, limit: int, key_id: str | None = None
    ) -> list[StoredReceipt]:
        return await self._read(lambda db: receipts.sampled(db, log, start, limit, key_id))

    # --- replicas -----------------------------------------------------------------

    async def publish_head(self, log: str, size: int, checkpoint: str, now: float) -> None:
        await self._writes.run(lambda db: replicas.publish_head(db, log, size, checkpoint, now))

    async def published_head(self, log: str) -> PublishedHead | None:
        return await self._read_keyed(lambda db: replicas.published_head(db, log))

    async def see_replica(self, identity: str, now: float) -> None:
        await self._writes.run(lambda db: replicas.see_replica(db, identity, now))

    async def replicas(self) -> list[Replica]:
        return await self._read(replicas.replicas)


def _is_last_active_admin(db: Db, key_id: str) -> bool:
    """Whether ``key_id`` is an active admin key and no other admin key is active."""
    row = db.execute(
        "SELECT role = 'admin' AND revoked_at IS NULL AS active_admin, "
        "(SELECT count(*) FROM keys WHERE role = 'admin' AND revoked_at IS NULL AND id != ?) "
        "AS other_admins FROM keys WHERE id = ?",
        (key_id, key_id),
    ).fetchone()
    return row is not None and bool(row["active_admin"]) and row["other_admins"] == 0
