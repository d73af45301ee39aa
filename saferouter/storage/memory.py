"""A store in memory: the :class:`~saferouter.storage.Store` protocol without any I/O,
for tests (the pipeline's in-process tests, under trio's ``MockClock`` too).

It keeps the SQLite store's semantics, and one contract suite (``tests/app/
test_store.py``) runs against both to hold it there. What SQLite decides in Python is
shared (:mod:`.rules`); what SQLite does in SQL — sums, the books check, filters,
groupings — is done here over plain tables. The ledger is a real append-only list and a
key's balance a running sum kept beside it, as in SQLite, so :meth:`check_books` proves
something rather than restating it.

Atomicity: no method awaits, and trio switches tasks only at an await, so each method
runs alone. A method that fails halfway leaves nothing behind, as SQLite's savepoint
does: every write goes through a :class:`~.journal.Journal` transaction. The clock
(``created_at`` of keys, revocations, top-ups, log entries) is a parameter.

Several stores may share one :class:`MemoryDatabase`, each for its own owner
(:mod:`.leases`), as several processes share a SQLite file: that is how the contract
suite shows that recovery by one owner never touches another's reservations.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs

from ..errors import KeyNotActive, LastAdminKey, StorageError
from ..translog.merkle import NodeId
from . import leases, rules
from .activity_series import ActivityBucket, BucketGrid, bucket_entries
from .journal import Journal
from .memory_leases import LeaseTable, Reservation
from .memory_receipts import ReceiptTable
from .memory_replicas import ReplicaTables
from .memory_tables import (
    ActivityTable,
    KeyTable,
    Ledger,
    LedgerEntry,
    LogTables,
    RateWindows,
)
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
)

if TYPE_CHECKING:
    from . import Store

_ROLES = frozenset(role.value for role in KeyRole)


class MemoryDatabase:
    """The tables: what one SQLite file holds, for one store or several sharing it."""

    def __init__(self) -> None:
        self.journal = Journal()
        self.keys = KeyTable(self.journal)
        self.ledger = Ledger(self.journal)
        self.activity = ActivityTable(self.journal)
        self.windows = RateWindows(self.journal)
        self.logs = LogTables(self.journal)
        self.receipts = ReceiptTable(self.journal, self.logs)
        self.leases = LeaseTable(self.journal)
        self.replicas = ReplicaTables(self.journal)


class MemoryStore:
    """:class:`~saferouter.storage.Store` in this process's memory: on ``database`` (a
    new one by default), for ``owner`` (by default a random one)."""

    def __init__(
        self,
        *,
        activity_retention_days: float = 30.0,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        database: MemoryDatabase | None = None,
    ) -> None:
        self._clock = clock
        self._retention_s = activity_retention_days * 86400
        self._prune = rules.PruneSchedule()
        self.owner = owner or leases.lone_owner()
        self.database = database or MemoryDatabase()
        self._closed = False
        self._journal = self.database.journal
        self._keys = self.database.keys
        self._ledger = self.database.ledger
        self._activity = self.database.activity
        self._windows = self.database.windows
        self._logs = self.database.logs
        self._receipts = self.database.receipts
        self._leases = self.database.leases
        self._replicas = self.database.replicas

    def _write(self) -> contextlib.AbstractContextManager[None]:
        self._check_open()
        return self._journal.transaction()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the memory store is closed")

    # --- keys ---------------------------------------------------------------------

    async def create_key(
        self,
        *,
        name: str,
        role: str,
        key_hash: str,
        prefix: str,
        credits_micro_usd: int | None = None,
        rpm_limit: int | None = None,
        tpm_limit: int | None = None,
    ) -> KeyRecord:
        if role not in _ROLES:  # what SQLite's CHECK refuses
            raise StorageError(f"a key's role is one of {sorted(_ROLES)}, not {role!r}")
        key_id = "key_" + secrets.token_hex(8)
        now = self._clock()
        with self._write():
            record = KeyRecord(
                id=key_id,
                name=name,
                prefix=prefix,
                role=role,
                created_at=now,
                last_used_at=None,
                revoked_at=None,
                metered=credits_micro_usd is not None,
                rpm_limit=rpm_limit,
                tpm_limit=tpm_limit,
            )
            self._keys.add(record, key_hash)
            if credits_micro_usd:
                self._top_up(key_id, credits_micro_usd, now)
        return self._keys[key_id]

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        self._check_open()
        return self._keys.by_hash(key_hash)

    async def key_by_id(self, key_id: str) -> KeyRecord | None:
        self._check_open()
        return self._keys.get(key_id)

    async def list_keys(self) -> list[KeyRecord]:
        self._check_open()
        return [attrs.evolve(k, byok=()) for k in self._keys.oldest_first()]  # as SQLite

    async def update_key(
        self, key_id: str, *, name: str | None = None, limits: RateLimits | None = None
    ) -> KeyRecord | None:
        with self._write():
            key = self._keys.get(key_id)
            if key is None:
                return None
            if name is not None:
                key = attrs.evolve(key, name=name)
            if limits is not None:
                key = attrs.evolve(
                    key, rpm_limit=limits.requests_per_minute, tpm_limit=limits.tokens_per_minute
                )
            self._keys.put(key)
        return key

    async def revoke_key(self, key_id: str, *, keep_an_admin: bool = False) -> KeyRecord | None:
        now = self._clock()
        with self._write():
            key = self._keys.get(key_id)
            if key is None:
                return None
            if keep_an_admin and self._keys.is_last_active_admin(key_id):
                raise LastAdminKey(f"{key_id} is the last active admin key")
            if key.active:
                # a revoked key's provider secrets are not kept
                key = attrs.evolve(key, revoked_at=now, byok=())
                self._keys.put(key)
        return key

    async def touch_key(self, key_id: str, when: float) -> None:
        with self._write():
            key = self._keys.get(key_id)
            if key is not None:
                self._keys.put(attrs.evolve(key, last_used_at=when))

    async def key_generation(self) -> int:
        self._check_open()
        return self._keys.generation

    async def count_keys(self) -> int:
        self._check_open()
        return len(self._keys)

    # --- BYOK keys: in the key's record (KeyIdentity.byok), so KeyTable.put moves the
    # key generation on every change to them, as SQLite's triggers do ----------------

    async def put_byok_key(self, key: ByokKey) -> ByokKey:
        with self._write():
            record = self._keys.get(key.key_id)
            if record is None or not record.active:  # what byok_keys.put refuses
                raise KeyNotActive(f"{key.key_id} is not an active key")
            old, others = _split(record, key.provider)
            new = rules.replacing_byok(old, key)
            self._keys.put(attrs.evolve(record, byok=(*others, new)))
        return new

    async def set_byok_fallback(
        self, key_id: str, provider: str, fallback: bool, *, now: float
    ) -> ByokKey | None:
        with self._write():
            record = self._keys.get(key_id)
            old, others = _split(record, provider)
            if record is None or old is None:
                return None
            new = rules.with_byok_fallback(old, fallback, now)
            self._keys.put(attrs.evolve(record, byok=(*others, new)))
        return new

    async def delete_byok_key(self, key_id: str, provider: str) -> bool:
        with self._write():
            record = self._keys.get(key_id)
            old, others = _split(record, provider)
            if record is None or old is None:
                return False
            self._keys.put(attrs.evolve(record, byok=others))
        return True

    # --- money --------------------------------------------------------------------

    def _entry(self, key_id: str, kind: str, amount: int, request_id: str, now: float) -> None:
        """Append to the ledger and move the key's running sums with it."""
        if self._keys.get(key_id) is None:  # SQLite's foreign key
            raise StorageError(f"no key {key_id} for a ledger entry")
        self._ledger.add(LedgerEntry(key_id, kind, amount, request_id, now))
        self._keys.move(key_id, *rules.balance_effect(kind, amount))

    def _top_up(self, key_id: str, amount: int, now: float) -> None:
        self._entry(key_id, "topup", amount, "topup_" + secrets.token_hex(12), now)

    async def admit(self, request: AdmissionRequest) -> Admission:
        with self._write():
            key = self._keys.get(request.key_id)
            if key is None or not key.active:
                return Admission(admitted=False, refusal="revoked")
            used = self._windows.used(key.id, request.now)
            admission = rules.decide_admission(
                request,
                metered=key.metered,
                balance_micro_usd=key.balance_micro_usd,
                rpm_limit=key.rpm_limit,
                tpm_limit=key.tpm_limit,
                used_requests=used.requests,
                used_tokens=used.tokens,
            )
            if admission.refusal is not None:
                self._activity.record(rules.refusal_entry(request, admission.refusal))
                return admission
            self._windows.count(key.id, request.now, requests=1)
            reserved = admission.reserved_micro_usd
            if reserved:
                self._entry(key.id, "reserve", -reserved, request.request_id, request.now)
                held = Reservation(request.request_id, key.id, reserved, self.owner, request.now)
                self._leases.hold(held)
            if request.receipt_id is not None:
                self._receipts.add_pending(
                    request.receipt_id, request.request_id, key.id, self.owner
                )
            return admission

    async def count_request(self, key_id: str, now: float) -> Admission:
        with self._write():
            key = self._keys.get(key_id)
            if key is None or not key.active:
                return Admission(admitted=False, refusal="revoked")
            used = self._windows.used(key.id, now)
            admission = rules.decide_count(
                now, rpm_limit=key.rpm_limit, used_requests=used.requests
            )
            if admission.admitted:
                self._windows.count(key.id, now, requests=1)
            return admission

    async def settle(self, settlement: Settlement) -> None:
        s = settlement
        with self._write():
            prior = rules.prior_settlement(
                self._ledger.kinds(s.request_id), recorded=self._activity.recorded(s.request_id)
            )
            if s.receipt is not None:
                self._receipts.save(s.receipt, s.now)
            if prior is rules.Prior.SETTLED:
                return  # never charge twice
            if s.reserved_micro_usd and prior is rules.Prior.OPEN:
                self._entry(s.key_id, "release", s.reserved_micro_usd, s.request_id, s.now)
                self._leases.let_go(s.request_id)
            key = self._keys.get(s.key_id)
            if key is None:
                raise StorageError(f"no key {s.key_id} to settle {s.request_id}")
            charges = rules.split_settlement(
                s, metered=key.metered, balance_micro_usd=key.balance_micro_usd, prior=prior
            )
            if charges.charge_micro_usd > 0:
                self._entry(s.key_id, "charge", -charges.charge_micro_usd, s.request_id, s.now)
            if charges.overrun_micro_usd > 0:
                self._entry(s.key_id, "overrun", -charges.overrun_micro_usd, s.request_id, s.now)
            for attempt in charges.attempts:
                self._activity.record(attempt)
            if s.tokens:
                self._windows.count(s.key_id, s.now, tokens=s.tokens)
            if self._prune.due(s.now):
                self._activity.prune(s.now - self._retention_s)
                self._windows.prune(s.now)

    async def top_up(
        self, key_id: str, amount_micro_usd: int, *, make_metered: bool = False
    ) -> KeyRecord | None:
        now = self._clock()
        with self._write():
            key = self._keys.get(key_id)
            if key is None:
                return None
            if not key.metered:
                if not make_metered:
                    return key  # unmetered stays unmetered: the caller sees metered False
                # it starts metered at zero: what it spent unmetered is written off
                if key.balance_micro_usd:
                    written_off = "metering_" + secrets.token_hex(12)
                    self._entry(key_id, "metering", -key.balance_micro_usd, written_off, now)
                self._keys.put(attrs.evolve(self._keys[key_id], metered=True))
            self._top_up(key_id, amount_micro_usd, now)
        return self._keys[key_id]

    async def renew_lease(self, until: float) -> None:
        with self._write():
            self._leases.renew(self.owner, until)

    async def end_lease(self) -> None:
        with self._write():
            self._leases.end(self.owner)

    async def recover(self, now: float | None = None, *, replica: str | None = None) -> int:
        at = self._clock() if now is None else now
        with self._write():
            gone = self._leases.abandoned(
                self._receipts.pending_owners(), at, replica, caller=self.owner
            )
            held = self._leases.held_by(gone)
            for r in held:
                self._entry(r.key_id, "release", r.amount_micro_usd, r.request_id, at)
                self._leases.let_go(r.request_id)
            self._receipts.mark_lost(gone)
        return len(held)

    async def books(self, key_id: str) -> Books:
        self._check_open()
        key = self._keys.get(key_id)
        if key is None:
            raise StorageError(f"no key {key_id}")
        return rules.books_from_sums(
            metered=key.metered,
            balance_micro_usd=key.balance_micro_usd,
            reserved_micro_usd=key.reserved_micro_usd,
            sums=self._ledger.sums(key_id),
        )

    async def check_books(self) -> list[str]:
        self._check_open()
        return [
            k.id
            for k in self._keys.oldest_first()
            if not self._ledger.holds_for(k)
            or k.reserved_micro_usd != self._leases.reserved_micro_usd(k.id)
        ]

    async def overrun_micro_usd(self) -> int:
        self._check_open()
        return self._ledger.overrun_micro_usd()

    # --- activity -----------------------------------------------------------------

    async def activity(self, query: ActivityFilter) -> list[ActivityEntry]:
        self._check_open()
        return self._activity.select(query)

    async def activity_since(self, since: float, key_id: str | None) -> Sequence[ActivityEntry]:
        return await self.activity(ActivityFilter(key_id=key_id, since=since, limit=-1))

    async def activity_series(self, key_id: str | None, grid: BucketGrid) -> list[ActivityBucket]:
        within = ActivityFilter(key_id=key_id, since=grid.start, until=grid.end, limit=-1)
        return bucket_entries(grid, await self.activity(within))

    async def usage_by_model(self, key_id: str) -> list[ModelUsage]:
        self._check_open()
        return self._activity.usage_by_model(key_id)

    async def spent_since(self, key_id: str, since: Sequence[float]) -> list[int]:
        self._check_open()
        return self._activity.spent_since(key_id, since)

    async def find_request(self, key_id: str | None, ref: str) -> list[ActivityEntry]:
        self._check_open()
        return self._activity.find_request(key_id, ref)

    async def served_response(self, key_id: str, response_id: str) -> ActivityEntry | None:
        self._check_open()
        return self._activity.served_response(key_id, response_id)

    # --- logs ---------------------------------------------------------------------

    async def log_append(
        self, log: str, make_entry: Callable[[int, bytes | None], NewLogEntry]
    ) -> LogEntry:
        now = self._clock()
        with self._write():
            return self._logs.append(log, make_entry, now)

    async def log_size(self, log: str) -> int:
        self._check_open()
        return self._logs.size(log)

    async def log_nodes(self, log: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        self._check_open()
        return self._logs.nodes(log, ids)

    async def log_entries(
        self, log: str, start: int, limit: int, key_id: str | None = None
    ) -> list[LogEntry]:
        self._check_open()
        return self._logs.entries(log, start, limit, key_id)

    # --- receipts -----------------------------------------------------------------

    async def save_receipt(self, receipt: NewReceipt) -> int:
        now = self._clock()
        with self._write():
            return self._receipts.save(receipt, now)

    async def receipt(self, receipt_id: str) -> StoredReceipt | None:
        self._check_open()
        return self._receipts.get(receipt_id)

    async def sampled_receipts(
        self, log: str, start: int, limit: int, key_id: str | None = None
    ) -> list[StoredReceipt]:
        self._check_open()
        return self._receipts.sampled(log, start, limit, key_id)

    # --- replicas -----------------------------------------------------------------

    async def publish_head(self, log: str, size: int, checkpoint: str, now: float) -> None:
        with self._write():
            self._replicas.publish_head(log, size, checkpoint, now)

    async def published_head(self, log: str) -> PublishedHead | None:
        self._check_open()
        return self._replicas.published_head(log)

    async def see_replica(self, identity: str, now: float) -> None:
        with self._write():
            self._replicas.see_replica(identity, now)

    async def replicas(self) -> list[Replica]:
        self._check_open()
        return self._replicas.replicas()

    # --- life ---------------------------------------------------------------------

    async def ping(self) -> None:
        self._check_open()

    async def close(self) -> None:
        self._closed = True


def _split(record: KeyRecord | None, provider: str) -> tuple[ByokKey | None, tuple[ByokKey, ...]]:
    """The key's BYOK key for ``provider`` (or None), and its others."""
    held = () if record is None else record.byok
    mine = [k for k in held if k.provider == provider]
    return (mine[0] if mine else None), tuple(k for k in held if k.provider != provider)


if TYPE_CHECKING:
    _: type[Store] = MemoryStore  # mypy proves that it implements the protocol
