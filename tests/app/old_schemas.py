"""Databases as an older build left them: the SQLite schema at a past version, made by
the migrations up to it, for the tests of the migrations after it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from saferouter.storage.migrations import MIGRATIONS, migration_statements


def schema_at(path: Path, version: int) -> sqlite3.Connection:
    """A connection (autocommit, rows by name) to a new database at ``version``."""
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row  # the store's SQL modules read rows by name
    for number, migration in enumerate(MIGRATIONS[:version], start=1):
        if callable(migration):
            migration(db)
        else:
            for statement in migration_statements(migration):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
    return db
