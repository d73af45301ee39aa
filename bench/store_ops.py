"""Micro-bench of the store's per-request cost: N sequential admit + settle on one key,
µs per request, on SQLite and on PostgreSQL (a throwaway cluster, tests/postgres.py),
in this process — no HTTP, no gateway, only what a request asks of the store.

    python bench/store_ops.py [--requests 400] [--rounds 3] [--stores sqlite,postgresql]

It prints the best and the median round per store (after a warm-up, so psycopg's
prepared statements are in place). On a shared, loaded machine the best round is the
figure to compare: load only ever adds to it. Compare two trees with the same file:
``PYTHONPATH=/other/tree python bench/store_ops.py`` measures that tree's store.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.append(str(Path(__file__).resolve().parent.parent))  # (PYTHONPATH first: A/B runs)

from saferouter.storage import ActivityEntry, AdmissionRequest, Settlement, Store
from saferouter.storage.postgres import PostgresStore
from saferouter.storage.sqlite import SQLiteStore


def _settlement(key_id: str, request_id: str, now: float, reserved: int) -> Settlement:
    attempt = ActivityEntry(
        request_id=request_id,
        attempt=1,
        created_at=now,
        key_id=key_id,
        requested_model="m",
        served_model="m",
        provider="p",
        original_model="m",
        status=200,
        outcome="ok",
        cost_micro_usd=3,
    )
    return Settlement(
        key_id=key_id,
        request_id=request_id,
        reserved_micro_usd=reserved,
        cost_micro_usd=3,
        tokens=10,
        attempts=(attempt,),
        now=now,
    )


async def _round(store: Store, key_id: str, requests: int, tag: str) -> float:
    """µs per admit + settle, ``requests`` of them one after the other."""
    started = time.perf_counter()
    for i in range(requests):
        now = time.time()
        request_id = f"req_{tag}_{i}"
        admission = await store.admit(
            AdmissionRequest(key_id=key_id, request_id=request_id, reserve_micro_usd=50, now=now)
        )
        assert admission.admitted, admission
        await store.settle(_settlement(key_id, request_id, now, admission.reserved_micro_usd))
    return (time.perf_counter() - started) / requests * 1e6


async def _measure(store: Store, requests: int, rounds: int) -> list[float]:
    key = await store.create_key(
        name="bench",
        role="user",
        key_hash=f"bench-{time.time_ns()}",
        prefix="sk-sr-bench",
        credits_micro_usd=10**12,
    )
    await _round(store, key.id, 20, "warm")
    figures = [await _round(store, key.id, requests, f"r{r}") for r in range(rounds)]
    check = await store.check_books()
    assert not check, check
    await store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args()
    stores = args.stores.split(",")
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in stores:
            store = SQLiteStore(Path(tmp) / "bench.db")
            results["sqlite"] = trio.run(_measure, store, args.requests, args.rounds)
        if "postgresql" in stores:
            from tests.postgres import binaries, running_cluster

            bin_dir = binaries()
            if bin_dir is None:
                print("postgresql: not measured (no PostgreSQL binaries)")
            else:
                with running_cluster(bin_dir) as cluster:
                    pg = PostgresStore(cluster.create_database())
                    results["postgresql"] = trio.run(_measure, pg, args.requests, args.rounds)
    for name, figures in results.items():
        print(
            f"{name:<11} {min(figures):7.0f} us per admit+settle (best of {args.rounds} rounds; "
            f"median {statistics.median(figures):.0f})"
        )


if __name__ == "__main__":
    main()
