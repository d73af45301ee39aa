"""The memory store's tables of replicas: :mod:`.replicas` (SQL) answered in Python —
each log's published head (only ever growing) and the replicas seen."""

from __future__ import annotations

import attrs

from .journal import Journal
from .records import PublishedHead, Replica


class ReplicaTables:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._heads: dict[str, PublishedHead] = {}
        self._replicas: dict[str, Replica] = {}

    def publish_head(self, log: str, size: int, checkpoint: str, now: float) -> None:
        kept = self._heads.get(log)
        if kept is None or size > kept.size:  # the upsert's WHERE
            self._journal.set(self._heads, log, PublishedHead(log, size, checkpoint, now))

    def published_head(self, log: str) -> PublishedHead | None:
        return self._heads.get(log)

    def see_replica(self, identity: str, now: float) -> None:
        seen = self._replicas.get(identity)
        replica = Replica(identity, now, now) if seen is None else attrs.evolve(seen, last_seen=now)
        self._journal.set(self._replicas, identity, replica)

    def replicas(self) -> list[Replica]:
        return sorted(self._replicas.values(), key=lambda r: (r.started_at, r.identity))
