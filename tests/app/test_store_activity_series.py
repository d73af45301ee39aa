"""The Store contract, the activity series (``/v1/activity/stats``' charts): fixed
buckets with counts, errors, nearest-rank p50/p95 latency and TTFB, and spend, empty
buckets included. Runs against each store (``stores.py``): the SQL twins aggregate in
the database and must agree with the memory store's Python to the bit."""

from __future__ import annotations

import math
import random
import sqlite3
from pathlib import Path

import pytest
import trio

from saferouter.storage import ActivityBucket, ActivityFilter, BucketGrid, Store, activity_log
from saferouter.storage.activity_series import bucket_entries
from saferouter.storage.sqlite import SQLiteStore

from .stores import T0, make_key, record, settlement

GRID = BucketGrid(start=int(T0), width_s=60, count=5)


async def test_buckets_count_place_and_rank_each_entry(store: Store) -> None:
    a, b = await make_key(store, credits=None), await make_key(store, credits=None)
    await record(store, a, "before", {"created_at": T0 - 0.001, "latency_ms": 1.0})
    # bucket 0: a served attempt, a failed one, a race's cancelled loser (no error)
    await record(
        store,
        a,
        "r0",
        {"created_at": T0, "latency_ms": 100.0, "ttfb_ms": 10.0, "cost_micro_usd": 5},
        {"created_at": T0 + 59.999, "status": 502, "outcome": "error", "latency_ms": 300.0},
        {"created_at": T0 + 30, "outcome": "cancelled", "latency_ms": 200.0},
    )
    # bucket 1: on its first instant, and at 58 % and 70 % of it — a rounding cast
    # (PostgreSQL's) would put the last two in bucket 2; a floor keeps them here
    for n, offset in enumerate((60.0, 95.0, 102.0)):
        await record(store, a, f"r1-{n}", {"created_at": T0 + offset, "cost_micro_usd": 1})
    # bucket 3: twenty latencies (p50 is the 10th, p95 the 19th), ten TTFBs (5th, 10th)
    values = list(range(1, 21))
    random.Random(3).shuffle(values)
    for n, value in enumerate(values):
        ttfb = {"ttfb_ms": value / 2} if value % 2 == 0 else {}
        await record(
            store, a, f"r3-{n}", {"created_at": T0 + 180 + n, "latency_ms": float(value), **ttfb}
        )
    # bucket 4: another key's refusal, and one a hair before the grid ends
    await record(store, b, "r4", {"created_at": T0 + 240, "outcome": "rejected", "status": 429})
    await record(
        store, b, "r4-last", {"created_at": math.nextafter(T0 + 300, 0), "cost_micro_usd": 7}
    )
    await record(store, a, "after", {"created_at": T0 + 300, "latency_ms": 1.0})

    starts = [GRID.start + 60 * i for i in range(5)]
    first = ActivityBucket(
        starts[0], 3, 1, 200.0, 300.0, ttfb_p50_ms=10.0, ttfb_p95_ms=10.0, cost_micro_usd=5
    )
    second = ActivityBucket(starts[1], requests=3, cost_micro_usd=3)
    fourth = ActivityBucket(starts[3], 20, 0, 10.0, 19.0, 5.0, 10.0, 0)
    fifth = ActivityBucket(starts[4], requests=2, errors=1, cost_micro_usd=7)
    empty = ActivityBucket(starts[2])
    assert await store.activity_series(None, GRID) == [first, second, empty, fourth, fifth]
    only_a = [first, second, empty, fourth, ActivityBucket(starts[4])]
    assert await store.activity_series(a, GRID) == only_a
    only_b = [ActivityBucket(s) for s in starts[:4]] + [fifth]
    assert await store.activity_series(b, GRID) == only_b


async def test_an_empty_log_still_has_every_bucket(store: Store) -> None:
    key = await make_key(store, credits=None)
    assert await store.activity_series(key, GRID) == [
        ActivityBucket(GRID.start + 60 * i) for i in range(5)
    ]
    assert await store.activity_series(None, BucketGrid(start=int(T0), width_s=60, count=0)) == []


async def test_an_entry_that_divides_to_the_grids_end_is_in_its_last_bucket(store: Store) -> None:
    """Where ``created_at - start`` is inexact, an instant before the end may divide to
    exactly ``count``: it still belongs to the last bucket, not past the series."""
    key = await make_key(store, credits=None)
    edge = math.nextafter(3.0, 0)  # (edge + 3) / 3 rounds to 2.0
    await store.settle(settlement(key, "edge", 10.0, created_at=edge, cost=4))
    grid = BucketGrid(start=-3, width_s=3, count=2)
    assert await store.activity_series(key, grid) == [
        ActivityBucket(-3),
        ActivityBucket(0, requests=1, cost_micro_usd=4),
    ]


async def test_the_database_aggregates_as_the_python_does(store: Store) -> None:
    """Hundreds of entries at random instants (any fraction of a bucket), outcomes,
    latencies and TTFBs: every store's series is the Python one of its own entries."""
    key = await make_key(store, credits=None)
    rng = random.Random(16)
    grid = BucketGrid(start=int(T0), width_s=7, count=9)
    for n in range(150):
        attempts = [
            {
                "created_at": T0 - 5 + rng.random() * 75,
                "outcome": rng.choice(["ok", "ok", "error", "rejected", "cancelled"]),
                "latency_ms": rng.choice([None, round(rng.random() * 900, 3)]),
                "ttfb_ms": rng.choice([None, rng.randrange(1, 50)]),
                "cost_micro_usd": rng.randrange(0, 1000),
            }
            for _ in range(rng.choice([1, 1, 2]))
        ]
        await record(store, key, f"r{n}", *attempts)
    within = await store.activity(ActivityFilter(since=grid.start, until=grid.end, limit=1000))
    assert len(within) > 100
    expected = bucket_entries(grid, within)
    assert await store.activity_series(None, grid) == expected
    assert await store.activity_series(key, grid) == expected
    assert sum(b.requests for b in expected) == len(within)


@pytest.mark.parametrize("key_id", ["k", None], ids=["a key's", "every key's"])
def test_sqlite_reads_only_the_grids_span_by_an_index(tmp_path: Path, key_id: str | None) -> None:
    """The work is bounded by the window: both queries range over an index on
    ``created_at`` (the key's own, for a key), never a scan of the whole log."""
    path = tmp_path / "s.db"
    trio.run(SQLiteStore(path).close)
    mine, key = ("AND key_id = ?", (key_id,)) if key_id is not None else ("", ())
    placed = activity_log._PLACED.format(mine=mine)
    within = (0.0, 60.0, 0.0, 300.0, *key, 4, 4)
    index = "activity_key_time" if key_id is not None else "activity_time"
    db = sqlite3.connect(path)
    try:
        for sql, parameters in (
            (placed + activity_log._COUNTS, (*within, "error", "rejected")),
            (placed + activity_log._PICKS, within),
        ):
            plan = " ".join(row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql, parameters))
            assert f"USING INDEX {index} (" in plan and "SCAN activity" not in plan, plan
    finally:
        db.close()
