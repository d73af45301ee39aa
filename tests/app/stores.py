"""The stores the Store contract suite runs against, and builders for its inputs.

Every store is real: the memory store, the SQLite store on a file in the test's
``tmp_path``, and the PostgreSQL store on a fresh database of the test's own in the
throwaway cluster (``pg_url``; skipped on one line where PostgreSQL is missing). The
stores one test opens share their data (one memory database, one file, one PostgreSQL
database), as the processes sharing a database do. A test that holds for one must hold
for the others; what only SQLite has (files, migrations) is tested in
``test_sqlite_store.py``, what only PostgreSQL has in ``test_postgres_store.py``.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from saferouter.storage import ActivityEntry, Settlement, Store
from saferouter.storage.memory import MemoryDatabase, MemoryStore
from saferouter.storage.postgres import PostgresStore
from saferouter.storage.sqlite import SQLiteStore

STORES = ("memory", "sqlite", "postgres")
OpenStore = Callable[..., Store]
_hashes = itertools.count()


@pytest.fixture(params=STORES)
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Opens the store under test (``**options`` as the constructors take them); every
    store opened is closed after the test."""
    opened: list[Store] = []
    database = MemoryDatabase()
    # one database for every store the test opens (as one file is for SQLite)
    pg_url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""

    def open_(**options: Any) -> Store:
        store: Store
        if request.param == "memory":
            store = MemoryStore(database=database, **options)
        elif request.param == "postgres":
            store = PostgresStore(pg_url, **options)
        else:
            store = SQLiteStore(tmp_path / "s.db", **options)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    """The store under test, with its default options."""
    return open_store()


def corrupt_balance(store: Store, key_id: str, by_micro_usd: int) -> None:
    """Move a key's balance without a ledger entry, the way each store's data could be
    damaged (a stray write to the file; a bug writing the table), to show that
    ``check_books`` reads the ledger rather than trusting the balance."""
    if isinstance(store, SQLiteStore):
        db = sqlite3.connect(store.path)
        with db:
            db.execute(
                "UPDATE keys SET balance_micro_usd = balance_micro_usd + ? WHERE id = ?",
                (by_micro_usd, key_id),
            )
        db.close()
    elif isinstance(store, PostgresStore):
        with psycopg.connect(store.url, autocommit=True) as pg:
            pg.execute(
                "UPDATE keys SET balance_micro_usd = balance_micro_usd + %s WHERE id = %s",
                (by_micro_usd, key_id),
            )
    else:
        assert isinstance(store, MemoryStore)
        with store._journal.transaction():  # the tables take writes only in a transaction
            store._keys.move(key_id, by_micro_usd, 0)


def entry(
    request_id: str, key_id: str, created_at: float, cost: int = 0, **fields: Any
) -> ActivityEntry:
    """One served attempt; ``fields`` override any of its values."""
    values: dict[str, Any] = {
        "request_id": request_id,
        "attempt": 1,
        "created_at": created_at,
        "key_id": key_id,
        "requested_model": "m",
        "served_model": "m",
        "provider": "p",
        "original_model": "m",
        "status": 200,
        "outcome": "ok",
        "cost_micro_usd": cost,
    }
    return ActivityEntry(**{**values, **fields})


T0 = 1_800_000_000.0


async def record(store: Store, key: str, request_id: str, *attempts: dict[str, object]) -> None:
    """Settle a request of no cost whose attempts are ``entry`` overrides, numbered in
    order (at :data:`T0` unless they say otherwise)."""
    await store.settle(
        Settlement(
            key_id=key,
            request_id=request_id,
            reserved_micro_usd=0,
            cost_micro_usd=0,
            tokens=0,
            attempts=tuple(
                entry(request_id, key, **{"created_at": T0, "attempt": n, **a})
                for n, a in enumerate(attempts, start=1)
            ),
            now=T0,
        )
    )


def settlement(
    key: str,
    request_id: str,
    now: float,
    *,
    reserved: int = 0,
    cost: int = 0,
    tokens: int = 1,
    created_at: float | None = None,
) -> Settlement:
    return Settlement(
        key_id=key,
        request_id=request_id,
        reserved_micro_usd=reserved,
        cost_micro_usd=cost,
        tokens=tokens,
        attempts=(entry(request_id, key, created_at or now, cost),),
        now=now,
    )


async def make_key(
    store: Store,
    credits: int | None = 1000,
    *,
    role: str = "user",
    rpm: int | None = None,
    tpm: int | None = None,
) -> str:
    record = await store.create_key(
        name="k",
        role=role,
        key_hash=f"h{next(_hashes)}-{time.time_ns()}",
        prefix="sk-sr-test",
        credits_micro_usd=credits,
        rpm_limit=rpm,
        tpm_limit=tpm,
    )
    return record.id


async def leaves(store: Store, log: str) -> list[bytes]:
    """The leaves of the log's tree, as the store serves its nodes."""
    size = await store.log_size(log)
    nodes = await store.log_nodes(log, [(0, i) for i in range(size)])
    return [nodes[(0, i)] for i in range(size)]
