"""The default store: one SQLite file in the data dir, in WAL mode.

Several worker processes open the same file; WAL lets readers run beside the one
writer, and ``busy_timeout`` makes a writer wait its turn instead of failing. Schema
changes are numbered migrations recorded in ``PRAGMA user_version``.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from pathlib import Path

from ..errors import StorageError
from . import KeyRecord

MIGRATIONS: tuple[str, ...] = (
    # 1: API keys
    """
    CREATE TABLE keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
        created_at REAL NOT NULL,
        last_used_at REAL,
        revoked_at REAL
    );
    """,
)

_SELECT_KEYS = "SELECT id, name, prefix, role, created_at, last_used_at, revoked_at FROM keys"


class SQLiteStore:
    """:class:`~saferouter.storage.Store` on a SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 10000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the database at {path}: {exc}") from exc

    def _migrate(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"database schema version {version} is newer than this build knows"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def schema_version(self) -> int:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        return int(version)

    def _one(self, sql: str, args: tuple[object, ...]) -> KeyRecord | None:
        try:
            row = self._db.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"key lookup failed: {exc}") from exc
        return KeyRecord(*row) if row else None

    def _write(self, sql: str, args: tuple[object, ...]) -> int:
        try:
            return self._db.execute(sql, args).rowcount
        except sqlite3.Error as exc:
            raise StorageError(f"write failed: {exc}") from exc

    async def create_key(self, *, name: str, role: str, key_hash: str, prefix: str) -> KeyRecord:
        key_id = "key_" + secrets.token_hex(8)
        self._write(
            "INSERT INTO keys (id, name, prefix, key_hash, role, created_at) VALUES (?,?,?,?,?,?)",
            (key_id, name, prefix, key_hash, role, time.time()),
        )
        record = await self.key_by_id(key_id)
        assert record is not None
        return record

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        return self._one(_SELECT_KEYS + " WHERE key_hash = ?", (key_hash,))

    async def key_by_id(self, key_id: str) -> KeyRecord | None:
        return self._one(_SELECT_KEYS + " WHERE id = ?", (key_id,))

    async def list_keys(self) -> list[KeyRecord]:
        try:
            rows = self._db.execute(_SELECT_KEYS + " ORDER BY created_at, id").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"listing keys failed: {exc}") from exc
        return [KeyRecord(*row) for row in rows]

    async def rename_key(self, key_id: str, name: str) -> KeyRecord | None:
        self._write("UPDATE keys SET name = ? WHERE id = ?", (name, key_id))
        return await self.key_by_id(key_id)

    async def revoke_key(self, key_id: str) -> KeyRecord | None:
        self._write(
            "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
        )
        return await self.key_by_id(key_id)

    async def touch_key(self, key_id: str, when: float) -> None:
        self._write("UPDATE keys SET last_used_at = ? WHERE id = ?", (when, key_id))

    async def count_keys(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM keys").fetchone()
        return int(count)

    async def ping(self) -> None:
        try:
            self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"database unreachable: {exc}") from exc

    async def close(self) -> None:
        self._db.close()
