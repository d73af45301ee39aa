"""Migration 13 (SQLite; PostgreSQL's 2): a database an older build left gains the
activity fields of issue 15, its rows read as chat completions of no app, and the
lookup by response id is answered from the index, for a key and for an admin alike."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from saferouter.storage import ActivityFilter
from saferouter.storage import pg_migrations as pg
from saferouter.storage.migrations import MIGRATIONS
from saferouter.storage.postgres import PostgresStore
from saferouter.storage.sqlite import SQLiteStore

from .old_schemas import schema_at

# found by what it does, not by number: branches merged later may renumber migrations
MIGRATION_RESPONSES = next(
    n
    for n, script in enumerate(MIGRATIONS, start=1)
    if isinstance(script, str) and "ADD COLUMN response_id" in script
)
PG_MIGRATION_RESPONSES = next(
    n for n, script in enumerate(pg.MIGRATIONS, start=1) if "ADD COLUMN response_id" in script
)
OLD_ROW = (
    "INSERT INTO activity (request_id, attempt, created_at, key_id, requested_model, "
    "status, outcome) VALUES ('r', 1, 5, 'k', 'm', 200, 'ok')"
)


async def test_an_older_sqlite_database_gains_the_fields(tmp_path: Path) -> None:
    db = schema_at(tmp_path / "s.db", MIGRATION_RESPONSES - 1)
    db.execute(OLD_ROW)
    db.close()
    store = SQLiteStore(tmp_path / "s.db")
    try:
        [old] = await store.activity(ActivityFilter(key_id="k"))
        assert (old.api, old.response_id, old.app, old.note, old.cache_write_tokens) == (
            "chat",
            None,
            None,
            None,
            0,
        )
        assert [e.request_id for e in await store.find_request("k", "r")] == ["r"]
    finally:
        await store.close()


def _plan(path: Path, sql: str) -> str:
    db = sqlite3.connect(path)
    try:
        return " ".join(row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql, ("x", "k")))
    finally:
        db.close()


async def test_the_lookup_by_response_id_uses_the_index(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.close()
    for sql in (
        "SELECT request_id FROM activity WHERE response_id = ? AND key_id = ?",
        "SELECT request_id FROM activity WHERE response_id = ? AND ? IS NOT NULL",  # admin
    ):
        assert "USING INDEX activity_response" in _plan(store.path, sql), sql


async def test_an_older_postgresql_database_gains_the_fields(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("CREATE TABLE schema_migrations (version BIGINT NOT NULL)")
        for number, script in enumerate(pg.MIGRATIONS[: PG_MIGRATION_RESPONSES - 1], start=1):
            db.execute(script)
            db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
        db.execute(OLD_ROW)
    store = PostgresStore(pg_url)
    try:
        [old] = await store.find_request(None, "r")
        assert (old.api, old.response_id, old.app_title, old.cache_write_tokens) == (
            "chat",
            None,
            None,
            0,
        )
    finally:
        await store.close()
