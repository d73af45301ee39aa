"""BYOK keys in what only SQLite has: the migration that adds them, the file (what is in
it is the sealed box as sent), and other connections — another worker, the CLI —
whose BYOK changes every connection's key generation sees. And the Authenticator's
cached key, which must show a BYOK change on the very next request."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from saferouter.gateway.auth import Authenticator
from saferouter.keys import generate_key
from saferouter.storage import ActivityFilter
from saferouter.storage.migrations import MIGRATIONS
from saferouter.storage.sqlite import SQLiteStore

from .old_schemas import schema_at
from .test_authenticator import elsewhere, sqlite
from .test_store_byok import SEALED, byok

__all__ = ["elsewhere", "sqlite"]  # the fixtures: two stores on one file

# found by what it does, not by number: branches merged later may renumber migrations
MIGRATION_BYOK = next(
    n
    for n, script in enumerate(MIGRATIONS, start=1)
    if isinstance(script, str) and "CREATE TABLE byok_keys" in script
)


async def test_an_older_database_gains_byok_keys(tmp_path: Path) -> None:
    db = schema_at(tmp_path / "s.db", MIGRATION_BYOK - 1)
    db.execute(
        "INSERT INTO keys (id, name, prefix, key_hash, role, created_at) "
        "VALUES ('k', 'old', 'p', 'h', 'user', 0)"
    )
    db.execute(
        "INSERT INTO activity (request_id, attempt, created_at, key_id, requested_model, "
        "status, outcome) VALUES ('r', 1, 5, 'k', 'm', 200, 'ok')"
    )
    db.close()
    store = SQLiteStore(tmp_path / "s.db")
    [old] = await store.activity(ActivityFilter(key_id="k"))
    assert old.byok is False
    record = await store.key_by_id("k")
    assert record is not None and record.byok == ()
    before = await store.key_generation()
    await store.put_byok_key(byok("k"))
    assert await store.key_generation() != before
    record = await store.key_by_id("k")
    assert record is not None and [k.provider for k in record.byok] == ["deepseek"]
    await store.close()


async def test_the_file_holds_the_sealed_box_as_sent(sqlite: SQLiteStore) -> None:
    key = await sqlite.create_key(name="k", role="user", key_hash="h", prefix="p")
    await sqlite.put_byok_key(byok(key.id))
    db = sqlite3.connect(sqlite.path)
    [(stored, kind)] = db.execute("SELECT sealed_key, typeof(sealed_key) FROM byok_keys")
    db.close()
    assert (stored, kind) == (SEALED, "blob")


async def test_a_byok_change_by_another_connection_moves_the_generation(
    sqlite: SQLiteStore, elsewhere: SQLiteStore
) -> None:
    key = await sqlite.create_key(name="k", role="user", key_hash="h", prefix="p")
    changes = [
        elsewhere.put_byok_key(byok(key.id)),
        elsewhere.set_byok_fallback(key.id, "deepseek", True, now=1.0),
        elsewhere.delete_byok_key(key.id, "deepseek"),
    ]
    for change in changes:
        before = await sqlite.key_generation()
        await change
        assert await sqlite.key_generation() != before


@pytest.mark.parametrize("writer", ["this store", "another connection"])
async def test_the_cached_key_shows_a_byok_change_on_the_next_request(
    sqlite: SQLiteStore, elsewhere: SQLiteStore, writer: str
) -> None:
    """The pipeline reads a key's BYOK keys from the Authenticator's cached
    ``KeyIdentity``: a put, a fallback switch or a delete — by this worker or another —
    must be in it from the next request on."""
    store = sqlite if writer == "this store" else elsewhere
    auth = Authenticator(sqlite)
    secret = generate_key()
    key = await sqlite.create_key(
        name="k", role="user", key_hash=secret.hash, prefix=secret.display_prefix
    )
    header = f"Bearer {secret.secret}"
    assert (await auth.authenticate(header)).byok == ()
    await store.put_byok_key(byok(key.id))
    assert (await auth.authenticate(header)).byok == (byok(key.id),)
    await store.set_byok_fallback(key.id, "deepseek", True, now=1.0)
    assert [k.fallback for k in (await auth.authenticate(header)).byok] == [True]
    await store.delete_byok_key(key.id, "deepseek")
    assert (await auth.authenticate(header)).byok == ()
