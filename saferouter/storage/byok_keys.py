"""The SQL of BYOK keys: the sealed provider keys a SafeRouter key brought (issue 13).

One row per (key, provider), holding only the sealed box and what describes it. A key
is read with its BYOK keys in one statement (:func:`key_where`, a join on the primary
key): one snapshot, and a cache miss costs one read, not two. Every write here moves
the key generation through the table's triggers (migration 10), so a worker's cached
:class:`~.records.KeyIdentity` — which carries its ``byok`` — is never trusted past a
change. Writes run inside the store's write transaction; a key that is
revoked or unknown gets none (:class:`~saferouter.errors.KeyNotActive`), and revoking a
key deletes its rows in the revocation's transaction (:func:`delete_all`).
"""

from __future__ import annotations

from ..errors import KeyNotActive
from . import rules
from .records import ByokKey, KeyRecord, columns, stored_fields
from .sql import Db

_FIELDS = tuple(stored_fields(ByokKey))
_SELECT = f"SELECT {columns(ByokKey)} FROM byok_keys"  # noqa: S608 (field names)
# a key and its BYOK keys in one statement: one row per BYOK key (one with NULLs for
# none), the key's columns first
_KEY_FIELDS = len(stored_fields(KeyRecord))
_BOTH = f"{columns(KeyRecord, table='k')}, {columns(ByokKey, table='b')}"
_SELECT_KEY = f"SELECT {_BOTH} FROM keys k LEFT JOIN byok_keys b ON b.key_id = k.id"  # noqa: S608
_UPSERT = (
    f"INSERT INTO byok_keys ({', '.join(_FIELDS)}) "  # noqa: S608 (field names)
    f"VALUES ({', '.join('?' * len(_FIELDS))}) ON CONFLICT (key_id, provider) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _FIELDS)
)


def key_where(db: Db, column: str, value: str) -> KeyRecord | None:
    """The key whose ``column`` (``id`` or ``key_hash``, both unique) is ``value``, its
    ``byok`` filled, read in one statement: one snapshot, one keyed read."""
    if column not in ("id", "key_hash"):
        raise ValueError(f"a key is found by id or key_hash, not {column!r}")
    rows = db.execute(f"{_SELECT_KEY} WHERE k.{column} = ? ORDER BY b.provider", (value,))
    found = rows.fetchall()
    if not found:
        return None
    byok = [ByokKey(*row[_KEY_FIELDS:]) for row in found if row[_KEY_FIELDS] is not None]
    return KeyRecord(*found[0][:_KEY_FIELDS], byok=byok)


def put(db: Db, key: ByokKey) -> ByokKey:
    """Insert, or replace the key's one for that provider (:func:`.rules.replacing_byok`);
    what was stored."""
    row = db.execute("SELECT revoked_at FROM keys WHERE id = ?", (key.key_id,)).fetchone()
    if row is None or row[0] is not None:
        raise KeyNotActive(f"{key.key_id} is not an active key")
    old = db.execute(
        f"{_SELECT} WHERE key_id = ? AND provider = ?", (key.key_id, key.provider)
    ).fetchone()
    new = rules.replacing_byok(ByokKey(*old) if old else None, key)
    db.execute(_UPSERT, [getattr(new, name) for name in _FIELDS])
    return new


def set_fallback(db: Db, key_id: str, provider: str, fallback: bool, now: float) -> ByokKey | None:
    """Set one key's ``fallback`` (:func:`.rules.with_byok_fallback`); None when absent."""
    row = db.execute(f"{_SELECT} WHERE key_id = ? AND provider = ?", (key_id, provider)).fetchone()
    if row is None:
        return None
    old = ByokKey(*row)
    new = rules.with_byok_fallback(old, fallback, now)
    if new != old:
        db.execute(
            "UPDATE byok_keys SET fallback = ?, updated_at = ? WHERE key_id = ? AND provider = ?",
            (new.fallback, new.updated_at, key_id, provider),
        )
    return new


def delete(db: Db, key_id: str, provider: str) -> bool:
    """Delete one; whether there was one."""
    cursor = db.execute(
        "DELETE FROM byok_keys WHERE key_id = ? AND provider = ?", (key_id, provider)
    )
    return cursor.rowcount > 0


def delete_all(db: Db, key_id: str) -> None:
    """Delete every one of the key's (its revocation: a revoked key's secrets go)."""
    db.execute("DELETE FROM byok_keys WHERE key_id = ?", (key_id,))
