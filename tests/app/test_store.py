"""The SQLite store on real files: migrations, admission, settlement, recovery, retention."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from saferouter.errors import StorageError
from saferouter.storage import ActivityEntry, ActivityFilter, AdmissionRequest, Settlement
from saferouter.storage.sqlite import MIGRATIONS, SQLiteStore
from saferouter.translog.merkle import leaf_hash

# found by what it does, not by number: branches merged later may renumber migrations
MIGRATION_SALTED_AUDIT = next(
    (n for n, script in enumerate(MIGRATIONS, start=1) if "request_sha256" in script), 0
)
MIGRATION_OVERRUN = next(n for n, script in enumerate(MIGRATIONS, start=1) if "overrun" in script)


def entry(request_id: str, key_id: str, created_at: float, cost: int = 0) -> ActivityEntry:
    return ActivityEntry(
        request_id=request_id,
        attempt=1,
        created_at=created_at,
        key_id=key_id,
        requested_model="m",
        served_model="m",
        provider="p",
        original_model="m",
        status=200,
        outcome="ok",
        cost_micro_usd=cost,
    )


def settlement(
    key: str,
    request_id: str,
    now: float,
    *,
    reserved: int = 0,
    cost: int = 0,
    created_at: float | None = None,
) -> Settlement:
    return Settlement(
        key_id=key,
        request_id=request_id,
        reserved_micro_usd=reserved,
        cost_micro_usd=cost,
        tokens=1,
        attempts=(entry(request_id, key, created_at or now, cost),),
        now=now,
    )


async def new_store(tmp_path: Path, **options: float) -> SQLiteStore:
    return SQLiteStore(tmp_path / "s.db", **options)


async def make_key(store: SQLiteStore, credits: int | None = 1000) -> str:
    record = await store.create_key(
        name="k",
        role="user",
        key_hash=f"h{time.time_ns()}",
        prefix="sk-sr-test",
        credits_micro_usd=credits,
    )
    return record.id


async def test_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    assert store.schema_version() == len(MIGRATIONS)
    await store.close()
    again = await new_store(tmp_path)  # reopening runs nothing twice
    assert again.schema_version() == len(MIGRATIONS)
    await again.close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StorageError, match="newer"):
        await new_store(tmp_path)


async def test_reserve_settle_and_books(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    key = await make_key(store, credits=1000)
    now = time.time()
    admitted = await store.admit(
        AdmissionRequest(key_id=key, request_id="r1", reserve_micro_usd=600, now=now)
    )
    assert admitted.admitted and admitted.reserved_micro_usd == 600
    refused = await store.admit(
        AdmissionRequest(key_id=key, request_id="r2", reserve_micro_usd=600, now=now)
    )
    assert not refused.admitted and refused.refusal == "insufficient_quota"
    settled = settlement(key, "r1", now, reserved=600, cost=250)
    await store.settle(settled)
    await store.settle(settled)  # a repeat changes nothing
    books = await store.books(key)
    assert (books.balance_micro_usd, books.reserved_micro_usd, books.spent_micro_usd) == (
        750,
        0,
        250,
    )
    assert await store.check_books() == []
    rows = await store.activity(ActivityFilter(key_id=key))
    assert [(r.request_id, r.attempt, r.outcome) for r in rows] == [
        ("r1", 1, "ok"),
        ("r2", 0, "rejected"),
    ]
    await store.close()


async def test_cost_above_the_reservation_is_an_overrun_never_hidden(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    key = await make_key(store, credits=1000)
    now = time.time()
    await store.admit(AdmissionRequest(key_id=key, request_id="r", reserve_micro_usd=80, now=now))
    await store.settle(settlement(key, "r", now, reserved=80, cost=500))
    books = await store.books(key)
    # the key pays what was reserved; the provider's extra 420 is the operator's loss
    assert (books.balance_micro_usd, books.spent_micro_usd, books.overrun_micro_usd) == (
        920,
        80,
        420,
    )
    (row,) = await store.activity(ActivityFilter(key_id=key))
    assert (row.cost_micro_usd, row.overrun_micro_usd) == (80, 420)
    assert await store.overrun_micro_usd() == 420
    assert await store.check_books() == []
    await store.close()


async def test_a_metered_key_is_refused_a_request_with_no_bound(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    metered, unmetered = await make_key(store, credits=10**9), await make_key(store, credits=None)
    now = time.time()
    refused = await store.admit(
        AdmissionRequest(key_id=metered, request_id="m", reserve_micro_usd=None, now=now)
    )
    assert not refused.admitted and refused.refusal == "unsupported_content"
    assert (await store.books(metered)).balance_micro_usd == 10**9
    (row,) = await store.activity(ActivityFilter(key_id=metered))
    assert (row.status, row.outcome, row.error_type) == (400, "rejected", "unsupported_content")
    admitted = await store.admit(
        AdmissionRequest(key_id=unmetered, request_id="u", reserve_micro_usd=None, now=now)
    )
    assert admitted.admitted
    await store.close()


async def test_topping_up_an_unmetered_key_is_explicit(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    key = await make_key(store, credits=None)
    now = time.time()
    await store.admit(AdmissionRequest(key_id=key, request_id="r", reserve_micro_usd=99, now=now))
    await store.settle(settlement(key, "r", now, cost=42))
    left = await store.top_up(key, 5000)
    assert left is not None and not left.metered  # nothing changed, and the caller sees it
    assert (await store.books(key)).topped_up_micro_usd == 0
    made = await store.top_up(key, 5000, make_metered=True)
    assert made is not None and made.metered
    books = await store.books(key)
    # it starts metered at zero: the 42 spent unmetered is not taken from the credit
    assert (books.balance_micro_usd, books.spent_micro_usd) == (5000, 42)
    assert await store.check_books() == []
    await store.close()


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
    store = await new_store(tmp_path)
    books = await store.books("k")
    assert (books.balance_micro_usd, books.spent_micro_usd, books.overrun_micro_usd) == (
        700,
        300,
        0,
    )
    assert await store.check_books() == []
    await store.close()


async def test_recover_releases_open_reservations(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    key = await make_key(store, credits=1000)
    for i in range(3):
        await store.admit(
            AdmissionRequest(key_id=key, request_id=f"r{i}", reserve_micro_usd=100, now=time.time())
        )
    assert (await store.books(key)).reserved_micro_usd == 300
    assert await store.recover() == 3
    assert await store.recover() == 0
    books = await store.books(key)
    assert books.balance_micro_usd == 1000 and books.reserved_micro_usd == 0
    assert await store.check_books() == []
    await store.close()


async def test_old_activity_is_pruned(tmp_path: Path) -> None:
    store = await new_store(tmp_path, activity_retention_days=1)
    key = await make_key(store, credits=None)
    now = time.time()
    await store.settle(settlement(key, "old", now, created_at=now - 2 * 86400))
    await store.settle(settlement(key, "new", now + 601, created_at=now))
    rows = await store.activity(ActivityFilter(key_id=key))
    assert [r.request_id for r in rows] == ["new"]
    await store.close()


async def test_unmetered_keys_record_spend_without_limits(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    key = await make_key(store, credits=None)
    now = time.time()
    admitted = await store.admit(
        AdmissionRequest(key_id=key, request_id="r", reserve_micro_usd=10**9, now=now)
    )
    assert admitted.admitted and admitted.reserved_micro_usd == 0
    await store.settle(settlement(key, "r", now, cost=42))
    books = await store.books(key)
    assert not books.metered and books.spent_micro_usd == 42
    assert books.balance_micro_usd == -42
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
    assert await store.log_leaves("audit") == [leaf_hash(old)]
    await store.close()
    assert audit.body is not None and b"ab" * 32 not in audit.body and b"cd" * 32 not in audit.body
    spec = json.loads(audit.body)["spec"]
    assert spec["request_id"] == "req_1" and "request_sha256" in spec["withdrawn"]
    assert startup.body == old  # other logs are untouched
