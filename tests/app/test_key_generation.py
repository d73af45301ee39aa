"""``Store.key_generation``: it moves on every change to what a cached key holds, by
any writer, and stays put under traffic. The contract runs against each store
(``stores.py``); writes by another connection and the migration are SQLite's alone."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from saferouter.storage import AdmissionRequest, RateLimits, Store
from saferouter.storage.migrations import MIGRATIONS, migration_statements
from saferouter.storage.sqlite import SQLiteStore

from .stores import make_key, settlement

MIGRATION_KEY_GENERATION = next(
    n for n, script in enumerate(MIGRATIONS, start=1) if "key_generation" in script
)


_request_ids = itertools.count()


def new_id() -> str:
    return f"req_{next(_request_ids)}"


Change = Callable[[Store, str], Awaitable[object]]

CHANGES: dict[str, Change] = {
    "create": lambda s, _: make_key(s, None),
    "rename": lambda s, k: s.update_key(k, name="renamed"),
    "limits": lambda s, k: s.update_key(k, limits=RateLimits(requests_per_minute=5)),
    "revoke": lambda s, k: s.revoke_key(k),
    "made metered": lambda s, k: s.top_up(k, 100, make_metered=True),
}

TRAFFIC: dict[str, Change] = {
    "touch": lambda s, k: s.touch_key(k, time.time()),
    "admit": lambda s, k: s.admit(
        AdmissionRequest(key_id=k, request_id=new_id(), reserve_micro_usd=10, now=time.time())
    ),
    "settle": lambda s, k: s.settle(settlement(k, new_id(), time.time(), cost=3)),
    "top up a metered key": lambda s, k: s.top_up(k, 100),
    "same name again": lambda s, k: s.update_key(k, name="k"),
    "revoke a revoked key": lambda s, k: s.revoke_key(k),
    "read": lambda s, k: s.key_by_id(k),
}


@pytest.mark.parametrize("change", CHANGES)
async def test_every_key_change_moves_the_generation(store: Store, change: str) -> None:
    key_id = await make_key(store, None)
    before = await store.key_generation()
    assert await store.key_generation() == before  # nothing happened: the same
    await CHANGES[change](store, key_id)
    assert await store.key_generation() != before


@pytest.mark.parametrize("change", TRAFFIC)
async def test_traffic_leaves_the_generation_alone(store: Store, change: str) -> None:
    key_id = await make_key(store, 1_000)
    if change == "revoke a revoked key":
        await store.revoke_key(key_id)
    before = await store.key_generation()
    await TRAFFIC[change](store, key_id)
    assert await store.key_generation() == before


@pytest.mark.parametrize("change", CHANGES)
async def test_a_change_by_another_connection_moves_it(tmp_path: Path, change: str) -> None:
    """Another worker or the CLI: another connection to the file, seen through
    ``PRAGMA data_version``."""
    here, there = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    key_id = await make_key(here, None)
    before = await here.key_generation()
    await CHANGES[change](there, key_id)
    assert await here.key_generation() != before
    before = await here.key_generation()
    for traffic in ("touch", "admit", "settle", "top up a metered key", "read"):
        await TRAFFIC[traffic](there, key_id)
    assert await here.key_generation() == before
    await here.close()
    await there.close()


async def test_an_older_database_gains_the_generation(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    for number, script in enumerate(MIGRATIONS[: MIGRATION_KEY_GENERATION - 1], start=1):
        for statement in migration_statements(script):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
    db.execute(
        "INSERT INTO keys (id, name, prefix, key_hash, role, created_at) "
        "VALUES ('k', 'old', 'p', 'h', 'user', 0)"
    )
    db.close()
    store = SQLiteStore(tmp_path / "s.db")
    before = await store.key_generation()
    assert (await store.key_by_hash("h")) is not None
    await store.revoke_key("k")
    assert await store.key_generation() != before
    await store.close()


def test_migration_statements_keep_a_trigger_body_whole() -> None:
    script = """
    CREATE TABLE t (x);
    CREATE TRIGGER t_x AFTER INSERT ON t BEGIN
        UPDATE t SET x = x + 1; UPDATE t SET x = x * 2;
    END;
    SELECT 1
    """
    statements = migration_statements(script)
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        migration_statements("CREATE TRIGGER t_y AFTER INSERT ON t BEGIN SELECT 1;")
