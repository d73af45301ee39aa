"""The ``Store`` protocol: everything SafeRouter keeps, behind one interface.

Methods are async so that a networked store (PostgreSQL) fits the same protocol. The
SQLite store (:mod:`.sqlite`, the default, shared by the worker processes of one
server) answers key lookups synchronously, since a keyed read in a local WAL database
takes microseconds, and runs writes in a worker thread, several requests' writes
group-committed in one transaction. Every method may raise
:class:`~saferouter.errors.StorageError`; none leaves a partial write behind.

A store is opened for an *owner*, the serving process it admits for (constructor keyword
``owner``; :mod:`.leases`): each open reservation and pending receipt names it, and it
holds a lease while it lives, so recovery releases what processes that are gone held
and never what a live one holds, whichever replica runs it.

Money is integer micro-USD. The ledger is append-only; a key's balance is always the
sum of its ledger entries (``check_books`` proves it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from .activity_series import ActivityBucket, BucketGrid
from .records import (
    ActivityEntry,
    ActivityFilter,
    ActivityOutcome,
    Admission,
    AdmissionRequest,
    Books,
    ByokKey,
    KeyIdentity,
    KeyRecord,
    KeyRole,
    LogEntry,
    ModelUsage,
    NewLogEntry,
    NewReceipt,
    PublishedHead,
    RateLimits,
    ReceiptState,
    Refusal,
    Replica,
    Settlement,
    StoredReceipt,
)

__all__ = [
    "ActivityBucket",
    "ActivityEntry",
    "ActivityFilter",
    "ActivityOutcome",
    "Admission",
    "AdmissionRequest",
    "Books",
    "BucketGrid",
    "ByokKey",
    "KeyIdentity",
    "KeyRecord",
    "KeyRole",
    "LogEntry",
    "ModelUsage",
    "NewLogEntry",
    "NewReceipt",
    "PublishedHead",
    "RateLimits",
    "ReceiptState",
    "Refusal",
    "Replica",
    "Settlement",
    "Store",
    "StoredReceipt",
]


class Store(Protocol):
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
        """Add a key. With ``credits_micro_usd`` (even 0) the key is metered: it can
        spend only what it holds; without, it is unmetered and only its spend is
        recorded."""
        ...

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        """The key with this hash, revoked or not; None when there is none."""
        ...

    async def key_by_id(self, key_id: str) -> KeyRecord | None: ...

    async def list_keys(self) -> list[KeyRecord]:
        """All keys, oldest first, revoked included; their ``byok`` left empty (no
        listing shows provider keys: :meth:`key_by_id` carries them)."""
        ...

    async def update_key(
        self, key_id: str, *, name: str | None = None, limits: RateLimits | None = None
    ) -> KeyRecord | None:
        """Rename, or replace both rate limits (a None inside ``limits`` removes one)."""
        ...

    async def revoke_key(self, key_id: str, *, keep_an_admin: bool = False) -> KeyRecord | None:
        """Mark revoked (idempotent) and delete its BYOK keys, in one transaction; None
        when no such key. With ``keep_an_admin``,
        raises :class:`~saferouter.errors.LastAdminKey` instead of revoking the last
        active admin key (checked and written in one transaction)."""
        ...

    async def touch_key(self, key_id: str, when: float) -> None: ...

    async def count_keys(self) -> int: ...

    async def key_generation(self) -> int:
        """A number that changes whenever any key is created or deleted or changes a
        field of :class:`KeyIdentity` (name, role, limits, metering, revocation, its BYOK
        keys), by any process sharing the store; traffic (admission, settlement,
        ``touch_key``) leaves it alone. A key read after the generation was read stays
        true while the generation is unchanged: that order (generation first) is what
        makes a cache of keys safe. Cheap enough to ask on every request."""
        ...

    # --- BYOK keys (sealed provider keys; each change moves key_generation) ---------
    async def put_byok_key(self, key: ByokKey) -> ByokKey:
        """Store ``key`` as its key's one for ``key.provider``: inserted, or replacing
        the one held (whose ``created_at`` it keeps); what was stored. Raises
        :class:`~saferouter.errors.KeyNotActive` when the key is revoked or unknown."""
        ...

    async def set_byok_fallback(
        self, key_id: str, provider: str, fallback: bool, *, now: float
    ) -> ByokKey | None:
        """Set whether the operator's key may serve when the provider refuses this one
        (``updated_at`` becomes ``now`` if it changed); None when there is no such key.
        One transaction: a replacement uploaded meanwhile is not overwritten."""
        ...

    async def delete_byok_key(self, key_id: str, provider: str) -> bool:
        """Delete the key's one for ``provider``; whether there was one."""
        ...

    # --- money --------------------------------------------------------------------
    async def admit(self, request: AdmissionRequest) -> Admission:
        """Atomically check the key's rate limits and reserve the request's worst-case
        cost (a metered key is refused a request with no worst case, ``None``). A refusal
        changes no balance (it is recorded in the activity log)."""
        ...

    async def count_request(self, key_id: str, now: float) -> Admission:
        """Atomically count a request that reserves and spends nothing (Anthropic's
        ``count_tokens``) against the key's requests-per-minute limit — the window every
        request of the key counts in — refusing it (``requests_per_minute``, or
        ``revoked``) when used up. Writes no activity entry, refused or not."""
        ...

    async def settle(self, settlement: Settlement) -> None:
        """Release the reservation, charge the actual cost — a metered key at most what
        was reserved, the rest recorded as an ``overrun`` — record every attempt and
        count the tokens against the rate window; idempotent per request id."""
        ...

    async def top_up(
        self, key_id: str, amount_micro_usd: int, *, make_metered: bool = False
    ) -> KeyRecord | None:
        """Add credit to a metered key. An unmetered key is left as it is (the record
        returned says ``metered=False``) unless ``make_metered``: then it becomes metered
        at a zero balance (what it spent unmetered is written off) plus the credit.
        None when there is no such key."""
        ...

    async def renew_lease(self, until: float) -> None:
        """Take or extend this store's owner's lease, to ``until`` (wall-clock seconds)."""
        ...

    async def end_lease(self) -> None:
        """Give the owner's lease up (a graceful stop, once no request is in flight):
        anything it still holds is released by the next :meth:`recover`."""
        ...

    async def recover(self, now: float | None = None, *, replica: str | None = None) -> int:
        """Release (as a settlement does, charging nothing) every open reservation whose
        owner has no lease valid at ``now`` (default: the time now) — expired, ended,
        never taken, or no owner at all — and with ``replica`` every one of that
        replica's owners, whatever their lease (the caller vouches that none of its
        processes lives: a restart holding the data dir's lock); mark those owners'
        pending receipts lost, and no other. A live owner's are never touched. Returns
        how many reservations were released."""
        ...

    async def books(self, key_id: str) -> Books: ...

    async def check_books(self) -> list[str]:
        """Every key whose books do not hold (empty when sound): balance ≠ the sum of
        its balance entries, reserved ≠ its open reservations (reserve entries not yet
        released, and the rows of ``reservations``), a metered key below zero, or an
        overrun entry of the wrong sign."""
        ...

    async def overrun_micro_usd(self) -> int:
        """What providers billed beyond the keys' charges, all keys: the operator's loss."""
        ...

    # --- activity -----------------------------------------------------------------
    async def activity(self, query: ActivityFilter) -> list[ActivityEntry]:
        """Entries newest first."""
        ...

    async def activity_since(self, since: float, key_id: str | None) -> Sequence[ActivityEntry]: ...

    async def activity_series(self, key_id: str | None, grid: BucketGrid) -> list[ActivityBucket]:
        """Every bucket of ``grid`` in time order, empty ones included: its entries'
        count, errors, p50/p95 latency and TTFB (nearest rank) and cost; only
        ``key_id``'s entries (None: every key's). Aggregated where the data is
        (:mod:`.activity_series`): the work returned is bounded by the grid, not the
        traffic."""
        ...

    async def usage_by_model(self, key_id: str) -> list[ModelUsage]: ...

    async def spent_since(self, key_id: str, since: Sequence[float]) -> list[int]:
        """For each time in ``since``, what the key's attempts recorded at or after it
        cost (their ``cost_micro_usd``: the charges; the activity log's retention
        bounds how far back it reaches)."""
        ...

    async def find_request(self, key_id: str | None, ref: str) -> list[ActivityEntry]:
        """The attempts, in order, of the request ``ref`` names: its request id, or the
        upstream's id of the response it served (the newest such request); only
        ``key_id``'s (None: any key's, for admins). [] when there is none — another
        key's request is none."""
        ...

    async def served_response(self, key_id: str, response_id: str) -> ActivityEntry | None:
        """The attempt of ``key_id``'s that served the response ``response_id`` (the
        newest, should an upstream reuse an id); None when it served no such response —
        another key's response is unknown to this key."""
        ...

    # --- logs (transparency and audit) --------------------------------------------
    async def log_append(
        self, log: str, make_entry: Callable[[int, bytes | None], NewLogEntry]
    ) -> LogEntry:
        """Append ``make_entry(index, previous body)`` atomically. The entry carries its
        leaf hash: the log above computes it, the store keeps it and, in the same
        write, the tree nodes the leaf completes (amortized one)."""
        ...

    async def log_size(self, log: str) -> int:
        """The size of the log's tree: its longest prefix of filled entries."""
        ...

    async def log_nodes(
        self, log: str, ids: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """The hashes of the log's tree nodes ``ids`` (``translog.merkle.NodeId``:
        ``(level, index)``; level 0 is an entry's leaf hash) in one read, O(len(ids)).
        Every node of the tree (up to :meth:`log_size`) is stored, written by the write
        that completed it; asking for one that is not raises StorageError."""
        ...

    async def log_entries(
        self, log: str, start: int, limit: int, key_id: str | None = None
    ) -> list[LogEntry]: ...

    # --- receipts -----------------------------------------------------------------
    async def save_receipt(self, receipt: NewReceipt) -> int:
        """Append a signed receipt to its log (``receipt.log``) and mark it done, in one
        transaction; its log index (once only: saving it again changes nothing). A
        settlement carries its request's receipt the same way (``Settlement.receipt``)."""
        ...

    async def receipt(self, receipt_id: str) -> StoredReceipt | None:
        """The receipt with this id: pending from admission (``AdmissionRequest.receipt_id``)
        until saved; ``lost`` if a server stopped in between (:meth:`recover`)."""
        ...

    async def sampled_receipts(
        self, log: str, start: int, limit: int, key_id: str | None = None
    ) -> list[StoredReceipt]:
        """Receipts drawn as audit samples in the receipt log ``log`` (one replica's: log
        indexes are per log), by log index from ``start`` (one key's, or all keys')."""
        ...

    # --- replicas sharing the store (storage/replicas.py) -----------------------------
    async def publish_head(self, log: str, size: int, checkpoint: str, now: float) -> None:
        """Publish the log's signed head ``checkpoint`` of ``size`` entries, so that
        other replicas can prove its entries; kept only when larger than the one
        published before."""
        ...

    async def published_head(self, log: str) -> PublishedHead | None:
        """The log's newest published head; None when none was published."""
        ...

    async def see_replica(self, identity: str, now: float) -> None:
        """Record that replica ``identity`` (hex) is alive at ``now`` (its first sight
        stays its ``started_at``)."""
        ...

    async def replicas(self) -> list[Replica]:
        """Every replica that has served from this store, first started first."""
        ...

    # --- life ---------------------------------------------------------------------
    async def ping(self) -> None:
        """Raise StorageError unless the store answers."""
        ...

    async def close(self) -> None: ...
