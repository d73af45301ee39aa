"""An in-memory :class:`~saferouter.storage.Store` for unit and app tests."""

from __future__ import annotations

import itertools
import time

import attrs

from . import KeyRecord


class MemoryStore:
    def __init__(self) -> None:
        self._keys: dict[str, KeyRecord] = {}
        self._hashes: dict[str, str] = {}
        self._ids = itertools.count(1)

    async def create_key(self, *, name: str, role: str, key_hash: str, prefix: str) -> KeyRecord:
        record = KeyRecord(
            id=f"key_{next(self._ids):016x}",
            name=name,
            prefix=prefix,
            role=role,
            created_at=time.time(),
            last_used_at=None,
            revoked_at=None,
        )
        self._keys[record.id] = record
        self._hashes[key_hash] = record.id
        return record

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        key_id = self._hashes.get(key_hash)
        return self._keys.get(key_id) if key_id else None

    async def key_by_id(self, key_id: str) -> KeyRecord | None:
        return self._keys.get(key_id)

    async def list_keys(self) -> list[KeyRecord]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.id))

    async def rename_key(self, key_id: str, name: str) -> KeyRecord | None:
        return self._update(key_id, name=name)

    async def revoke_key(self, key_id: str) -> KeyRecord | None:
        record = self._keys.get(key_id)
        if record is None or record.revoked_at is not None:
            return record
        return self._update(key_id, revoked_at=time.time())

    async def touch_key(self, key_id: str, when: float) -> None:
        self._update(key_id, last_used_at=when)

    async def count_keys(self) -> int:
        return len(self._keys)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _update(self, key_id: str, **changes: object) -> KeyRecord | None:
        record = self._keys.get(key_id)
        if record is None:
            return None
        record = attrs.evolve(record, **changes)  # type: ignore[arg-type]
        self._keys[key_id] = record
        return record
