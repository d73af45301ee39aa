"""What only the SQLite store has — a file, numbered migrations — and so is tested on
SQLite alone. Its behaviour as a Store is the contract suite's (``test_store*.py``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import trio

from saferouter.errors import StorageError
from saferouter.storage import NewLogEntry
from saferouter.storage.migrations import MIGRATIONS
from saferouter.storage.sqlite import SQLiteStore
from saferouter.translog import merkle
from saferouter.translog.merkle import leaf_hash

# found by what it does, not by number: branches merged later may renumber migrations
MIGRATION_SALTED_AUDIT = next(
    (n for n, script in enumerate(MIGRATIONS, start=1) if "request_sha256" in script), 0
)
MIGRATION_OVERRUN = next(n for n, script in enumerate(MIGRATIONS, start=1) if "overrun" in script)
MIGRATION_LOG_NODES = next(
    n for n, script in enumerate(MIGRATIONS, start=1) if "CREATE TABLE log_nodes" in script
)


async def test_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    assert store.schema_version() == len(MIGRATIONS)
    await store.close()
    again = SQLiteStore(tmp_path / "s.db")  # reopening runs nothing twice
    assert again.schema_version() == len(MIGRATIONS)
    await again.close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StorageError, match="newer"):
        SQLiteStore(tmp_path / "s.db")


async def test_the_overrun_migration_keeps_the_ledger(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "s.db")
    for number, script in enumerate(MIGRATIONS[: MIGRATION_OVERRUN - 1], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {number}")
    db.execute(
        "INSERT INTO keys (id, name, prefix, key_hash, role, created_at, metered, "
        "balance_micro_usd) VALUES ('k', 'k', 'p', 'h', 'user', 0, 1, 700)"
    )
    db.execute(
        "INSERT INTO ledger (key_id, kind, amount_micro_usd, request_id, created_at) "
        "VALUES ('k', 'topup', 1000, 't', 0), ('k', 'charge', -300, 'r', 0)"
    )
    db.commit()
    db.close()
    store = SQLiteStore(tmp_path / "s.db")
    books = await store.books("k")
    assert (books.balance_micro_usd, books.spent_micro_usd, books.overrun_micro_usd) == (
        700,
        300,
        0,
    )
    assert await store.check_books() == []
    await store.close()


async def test_migration_withdraws_the_plain_hashes_of_old_audit_entries(tmp_path: Path) -> None:
    """Audit entries of a database from before salted commitments lose their plain
    hashes; their leaf hashes (so the log's checkpoints and proofs) stay as they were."""
    assert MIGRATION_SALTED_AUDIT, "no migration withdraws the plain hashes"
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)  # the schema as it was just before (later ones run after)
    for number, script in enumerate(MIGRATIONS[: MIGRATION_SALTED_AUDIT - 1], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {number}")
    db.close()
    old = json.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "saferouter-audit",
            "signature": "c2ln",
            "spec": {
                "request_id": "req_1",
                "status": 200,
                "request_sha256": "ab" * 32,
                "response_sha256": "cd" * 32,
            },
        }
    ).encode()
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO log_entries (log, idx, body, leaf_hash, created_at) VALUES "
        "('audit', 0, ?, ?, 1.0), ('startup', 0, ?, ?, 1.0)",
        (old, leaf_hash(old), old, leaf_hash(old)),
    )
    db.execute(f"PRAGMA user_version = {MIGRATION_SALTED_AUDIT - 1}")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    (audit,) = await store.log_entries("audit", 0, 1)
    (startup,) = await store.log_entries("startup", 0, 1)
    assert await store.log_nodes("audit", [(0, 0)]) == {(0, 0): leaf_hash(old)}
    await store.close()
    assert audit.body is not None and b"ab" * 32 not in audit.body and b"cd" * 32 not in audit.body
    spec = json.loads(audit.body)["spec"]
    assert spec["request_id"] == "req_1" and "request_sha256" in spec["withdrawn"]
    assert startup.body == old  # other logs are untouched


async def test_migration_stores_the_trees_of_logs_written_before(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)  # the schema just before stored trees
    for number, script in enumerate(MIGRATIONS[: MIGRATION_LOG_NODES - 1], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {number}")
    leaves = [leaf_hash(b"%d" % i) for i in range(37)]
    db.executemany(
        "INSERT INTO log_entries (log, idx, body, leaf_hash, created_at) VALUES (?,?,?,?,1.0)",
        [("startup", i, b"%d" % i, leaf) for i, leaf in enumerate(leaves)],
    )
    # an audit log with a pending entry at 5: its tree is the 5 before it
    db.executemany(
        "INSERT INTO log_entries (log, idx, body, leaf_hash, created_at) VALUES (?,?,?,?,1.0)",
        [("audit", i, None if i == 5 else b"a", None if i == 5 else leaves[i]) for i in range(9)],
    )
    db.commit()
    db.close()
    store = SQLiteStore(path)
    try:
        for log, size in (("startup", 37), ("audit", 5)):
            assert await store.log_size(log) == size
            span = (0, size)
            nodes = await store.log_nodes(log, merkle.node_ids([span]))
            assert merkle.span_hash(span, nodes) == merkle.root_hash(leaves[:size])
        await store.log_append("startup", lambda i, p: NewLogEntry(b"37", leaf_hash(b"37")))
        span = (0, 38)  # the stored tree goes on growing from the backfilled one
        nodes = await store.log_nodes("startup", merkle.node_ids([span]))
        assert merkle.span_hash(span, nodes) == merkle.root_hash([*leaves, leaf_hash(b"37")])
    finally:
        await store.close()


@pytest.mark.parametrize("held_s", [0.004, 0.3], ids=["retried-in-the-loop", "waited-in-a-thread"])
async def test_writes_wait_out_another_process_holding_the_write_lock(
    tmp_path: Path, held_s: float
) -> None:
    """Another process's write transaction (a raw connection holding the lock): writes
    queued meanwhile commit once it is released — briefly held, by the event loop trying
    again; held long, by the waiting connection in a thread — every one of them."""
    store = SQLiteStore(tmp_path / "s.db")
    other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    names = [f"key {i}" for i in range(5)]

    async def create(name: str) -> None:
        await store.create_key(name=name, role="user", key_hash=name, prefix="sk-sr-x")

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(create, name)
        await trio.sleep(held_s)
        assert await store.count_keys() == 0  # nothing got past the lock
        other.execute("COMMIT")
    assert sorted(k.name for k in await store.list_keys()) == names
    other.close()
    await store.close()
