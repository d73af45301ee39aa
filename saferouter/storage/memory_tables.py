"""The memory store's tables, one class for each SQLite table and its SQL module: the
ledger (:mod:`.ledger`), the activity log (:mod:`.activity_log`), the rate windows and
the transparency and audit logs (:mod:`.logs`). Each answers in Python what its SQL
counterpart answers in SQL (and the key table what SQLite's constraints refuse), and
writes only through the shared
:class:`~.journal.Journal`, so a failed store method leaves no table changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import attrs

from ..errors import StorageError
from ..translog import merkle
from ..translog.merkle import NodeId
from . import rules
from .journal import Journal
from .records import (
    ActivityEntry,
    ActivityFilter,
    KeyRecord,
    LedgerKind,
    LogEntry,
    ModelUsage,
    NewLogEntry,
)

T = TypeVar("T")


def first(rows: Sequence[T], limit: int) -> list[T]:
    """The first ``limit`` rows, as SQL's ``LIMIT`` (a negative limit is no limit)."""
    return list(rows if limit < 0 else rows[:limit])


class KeyTable:
    """Keys by id, and their ids by hash (a hash is one key, as SQLite's ``UNIQUE``),
    and the key generation: every write of a key comes through :meth:`add` or
    :meth:`put`, which move it when what a cached key holds (its ``KeyIdentity``)
    changed, as SQLite's triggers do."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._keys: dict[str, KeyRecord] = {}
        self._ids: dict[str, str] = {}  # by hash
        self._generation: dict[str, int] = {"keys": 0}  # a table, so the journal undoes it

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, key_id: str) -> KeyRecord:
        return self._keys[key_id]

    def get(self, key_id: str) -> KeyRecord | None:
        return self._keys.get(key_id)

    def by_hash(self, key_hash: str) -> KeyRecord | None:
        key_id = self._ids.get(key_hash)
        return None if key_id is None else self._keys[key_id]

    @property
    def generation(self) -> int:
        return self._generation["keys"]

    def oldest_first(self) -> list[KeyRecord]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.id))

    def add(self, key: KeyRecord, key_hash: str) -> None:
        if key_hash in self._ids:
            raise StorageError("a key with this hash exists")
        self._journal.set(self._keys, key.id, key)
        self._journal.set(self._ids, key_hash, key.id)
        self._journal.set(self._generation, "keys", self.generation + 1)

    def put(self, key: KeyRecord) -> None:
        """Replace a key's record with ``key``."""
        if self._keys[key.id].identity() != key.identity():
            self._journal.set(self._generation, "keys", self.generation + 1)
        self._journal.set(self._keys, key.id, key)

    def move(self, key_id: str, balance_micro_usd: int, reserved_micro_usd: int) -> None:
        """Add to the key's running sums (what a ledger entry does to them)."""
        key = self._keys[key_id]
        self.put(
            attrs.evolve(
                key,
                balance_micro_usd=key.balance_micro_usd + balance_micro_usd,
                reserved_micro_usd=key.reserved_micro_usd + reserved_micro_usd,
            )
        )

    def is_last_active_admin(self, key_id: str) -> bool:
        """Whether ``key_id`` is an active admin key and no other admin key is active."""
        key = self._keys.get(key_id)
        if key is None or not (key.is_admin and key.active):
            return False
        return not any(k.is_admin and k.active for k in self._keys.values() if k.id != key_id)


@attrs.frozen
class LedgerEntry:
    key_id: str
    kind: str
    amount_micro_usd: int
    request_id: str
    created_at: float


class Ledger:
    """Append-only entries, one of each kind per request id (SQLite's ``UNIQUE``)."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._entries: list[LedgerEntry] = []
        self._by_request: dict[tuple[str, str], LedgerEntry] = {}  # (request id, kind)

    def has(self, request_id: str, kind: str) -> bool:
        return (request_id, kind) in self._by_request

    def kinds(self, request_id: str) -> list[str]:
        """The kinds of the request's entries."""
        return [kind for kind in LedgerKind if (request_id, kind) in self._by_request]

    def add(self, entry: LedgerEntry) -> None:
        if self.has(entry.request_id, entry.kind):
            raise StorageError(f"the ledger already has a {entry.kind} for {entry.request_id}")
        self._journal.append(self._entries, entry)
        self._journal.set(self._by_request, (entry.request_id, entry.kind), entry)

    def sums(self, key_id: str) -> dict[str, int]:
        """The sum of the key's entries of each kind."""
        sums: dict[str, int] = {}
        for e in self._entries:
            if e.key_id == key_id:
                sums[e.kind] = sums.get(e.kind, 0) + e.amount_micro_usd
        return sums

    def holds_for(self, key: KeyRecord) -> bool:
        """Whether the key's running sums are its entries' sums, a metered key is not
        below zero, and every overrun is a loss (negative)."""
        sums = self.sums(key.id)
        total = sum(amount for kind, amount in sums.items() if kind in rules.BALANCE_KINDS)
        reserved = -(sums.get("reserve", 0) + sums.get("release", 0))
        wrong_overrun = any(
            e.key_id == key.id and e.kind == "overrun" and e.amount_micro_usd >= 0
            for e in self._entries
        )
        return (
            key.balance_micro_usd == total
            and key.reserved_micro_usd == reserved
            and not (key.metered and key.balance_micro_usd < 0)
            and not wrong_overrun
        )

    def overrun_micro_usd(self) -> int:
        return -sum(e.amount_micro_usd for e in self._entries if e.kind == "overrun")


class ActivityTable:
    """Entries by id (ids only grow), one per attempt of a request."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._entries: dict[int, ActivityEntry] = {}
        self._ids: dict[tuple[str, int], int] = {}  # (request id, attempt)
        self._last_id = 0

    def record(self, entry: ActivityEntry) -> None:
        """Add an entry, unless its attempt is already recorded (``INSERT OR IGNORE``)."""
        if (entry.request_id, entry.attempt) in self._ids:
            return
        self._last_id += 1  # a rolled-back id is skipped, never reused
        self._journal.set(self._entries, self._last_id, attrs.evolve(entry, id=self._last_id))
        self._journal.set(self._ids, (entry.request_id, entry.attempt), self._last_id)

    def recorded(self, request_id: str) -> bool:
        """Whether an attempt of the request is recorded (a scan: the test store)."""
        return any(rid == request_id for rid, _ in self._ids)

    def select(self, query: ActivityFilter) -> list[ActivityEntry]:
        """Newest first."""
        conditions = rules.activity_conditions(query)
        newest_first = [e for _, e in sorted(self._entries.items(), reverse=True)]
        return first([e for e in newest_first if all(c.holds(e) for c in conditions)], query.limit)

    def spent_since(self, key_id: str, since: Sequence[float]) -> list[int]:
        """What the key's entries at or after each of ``since`` cost."""
        mine = [e for e in self._entries.values() if e.key_id == key_id]
        return [sum(e.cost_micro_usd for e in mine if e.created_at >= t) for t in since]

    def find_request(self, key_id: str | None, ref: str) -> list[ActivityEntry]:
        """The attempts of the request ``ref`` names, as :func:`.activity_log.find_request`
        finds them (a scan: the test store)."""
        mine = [e for _, e in sorted(self._entries.items()) if key_id in (None, e.key_id)]
        if not any(e.request_id == ref for e in mine):
            served = [e.request_id for e in mine if e.response_id == ref]
            if not served:
                return []
            ref = served[-1]  # the newest
        return sorted((e for e in mine if e.request_id == ref), key=lambda e: e.attempt)

    def served_response(self, key_id: str, response_id: str) -> ActivityEntry | None:
        """The newest of the key's attempts that served ``response_id``."""
        served = [
            e
            for _, e in sorted(self._entries.items())
            if e.key_id == key_id and e.response_id == response_id
        ]
        return served[-1] if served else None

    def usage_by_model(self, key_id: str) -> list[ModelUsage]:
        """Per model, what the key's attempts (not its refusals) used; costliest first."""
        by_model: dict[str, list[ActivityEntry]] = {}
        for e in self._entries.values():
            if e.key_id == key_id and e.attempt >= 1:
                by_model.setdefault(rules.model_of(e), []).append(e)
        usage = [
            ModelUsage(
                model=model,
                requests=len(es),
                prompt_tokens=sum(e.prompt_tokens for e in es),
                completion_tokens=sum(e.completion_tokens for e in es),
                cached_tokens=sum(e.cached_tokens for e in es),
                reasoning_tokens=sum(e.reasoning_tokens for e in es),
                cost_micro_usd=sum(e.cost_micro_usd for e in es),
            )
            for model, es in by_model.items()
        ]
        return sorted(usage, key=lambda u: (-u.cost_micro_usd, u.model))

    def prune(self, before: float) -> None:
        """Drop the entries created before ``before``."""
        for entry_id, e in list(self._entries.items()):
            if e.created_at < before:
                self._journal.delete(self._entries, entry_id)
                self._journal.delete(self._ids, (e.request_id, e.attempt))


@attrs.frozen
class Window:
    requests: int = 0
    tokens: int = 0


class RateWindows:
    """What each key used in each rate window (:func:`.rules.window_start`)."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._windows: dict[tuple[str, int], Window] = {}  # (key id, window start)

    def used(self, key_id: str, now: float) -> Window:
        return self._windows.get((key_id, rules.window_start(now)), Window())

    def count(self, key_id: str, now: float, *, requests: int = 0, tokens: int = 0) -> None:
        used = self.used(key_id, now)
        counted = Window(requests=used.requests + requests, tokens=used.tokens + tokens)
        self._journal.set(self._windows, (key_id, rules.window_start(now)), counted)

    def prune(self, now: float) -> None:
        for slot in [s for s in self._windows if s[1] < now - rules.WINDOW_KEEP_S]:
            self._journal.delete(self._windows, slot)


@attrs.frozen
class LogRow:
    entry: LogEntry
    leaf_hash: bytes | None  # None while pending


class LogTables:
    """Every log's entries by index; indexes run 0, 1, 2 … with no gap, each new one
    the highest plus one, whether appended or reserved. And each log's tree: its size
    (the filled prefix) and its nodes, leaves included, grown as :mod:`.logs` grows
    SQLite's."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._logs: dict[str, dict[int, LogRow]] = {}
        self._trees: dict[str, dict[NodeId, bytes]] = {}
        self._sizes: dict[str, int] = {}

    def _rows(self, log: str) -> dict[int, LogRow]:
        return self._logs.setdefault(log, {})

    def append(
        self, log: str, make_entry: Callable[[int, bytes | None], NewLogEntry], now: float
    ) -> LogEntry:
        rows = self._rows(log)
        index = len(rows)
        new = make_entry(index, rows[index - 1].entry.body if rows else None)
        entry = LogEntry(log=log, index=index, body=new.body, created_at=now)
        self._journal.set(rows, index, LogRow(entry, new.leaf_hash))
        if self.size(log) == index:  # no gap before it: the tree takes the leaf
            self._grow(log, [new.leaf_hash])
        return entry

    def size(self, log: str) -> int:
        return self._sizes.get(log, 0)

    def nodes(self, log: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        tree = self._trees.get(log, {})
        missing = [node for node in ids if node not in tree]
        if missing:
            raise StorageError(f"the {log} log's tree has no node {missing[:3]}")
        return {node: tree[node] for node in ids}

    def _grow(self, log: str, leaves: Sequence[bytes]) -> None:
        size = self.size(log)
        edge = self.nodes(log, merkle.range_nodes(0, size))  # a few: memory is cheap
        tree = self._trees.setdefault(log, {})
        for node, digest in merkle.completed_nodes(size, edge, leaves).items():
            self._journal.set(tree, node, digest)
        self._journal.set(self._sizes, log, size + len(leaves))

    def _in_order(self, log: str) -> list[tuple[int, LogRow]]:
        return sorted(self._logs.get(log, {}).items())

    def entries(self, log: str, start: int, limit: int, key_id: str | None) -> list[LogEntry]:
        chosen = [
            row.entry
            for index, row in self._in_order(log)
            if index >= start and (key_id is None or row.entry.key_id == key_id)
        ]
        return first(chosen, limit)
