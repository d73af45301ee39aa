"""The ``Store`` protocol: everything SafeRouter keeps, behind one interface.

Methods are async so that a networked store (PostgreSQL) fits the same protocol; the
SQLite store answers them synchronously, since a keyed lookup in a local WAL database
takes microseconds, less than a hop to a worker thread would.

Implementations: :mod:`.sqlite` (the default, in the data dir; shared by several worker
processes on one host) and :mod:`.memory` (tests). Every method may raise
:class:`~saferouter.errors.StorageError`; none returns partial results.
"""

from __future__ import annotations

from typing import Protocol

import attrs


@attrs.frozen
class KeyRecord:
    id: str
    name: str
    prefix: str
    role: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class Store(Protocol):
    async def create_key(self, *, name: str, role: str, key_hash: str, prefix: str) -> KeyRecord:
        """Add a key; its id is new and unique."""
        ...

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        """The key with this hash, revoked or not; None when there is none."""
        ...

    async def key_by_id(self, key_id: str) -> KeyRecord | None: ...

    async def list_keys(self) -> list[KeyRecord]:
        """All keys, oldest first, revoked included."""
        ...

    async def rename_key(self, key_id: str, name: str) -> KeyRecord | None: ...

    async def revoke_key(self, key_id: str) -> KeyRecord | None:
        """Mark revoked (idempotent); None when no such key."""
        ...

    async def touch_key(self, key_id: str, when: float) -> None:
        """Record a use of the key."""
        ...

    async def count_keys(self) -> int: ...

    async def ping(self) -> None:
        """Raise StorageError unless the store answers."""
        ...

    async def close(self) -> None: ...
