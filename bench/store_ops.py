"""Micro-bench of the store's per-request cost: N sequential admit + settle on one key,
µs per request, on SQLite and on PostgreSQL (a throwaway cluster, tests/postgres.py),
in this process — no HTTP, no gateway, only what a request asks of the store.

    python bench/store_ops.py [--requests 400] [--rounds 3] [--stores sqlite,postgresql]

It prints the best and the median round per store, and for PostgreSQL how many
round trips an admission and a settlement make (counted on the wire from libpq's
trace of a one-connection store: a figure load does not blur) (after a warm-up, so psycopg's
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

from saferouter.storage import AdmissionRequest, Settlement, Store
from saferouter.storage.postgres import PostgresStore
from saferouter.storage.sqlite import SQLiteStore


def _settlement(key_id: str, request_id: str, now: float, reserved: int) -> Settlement:
    """A served request's settlement, as the Store contract suite builds one."""
    from tests.app.stores import settlement

    return settlement(key_id, request_id, now, reserved=reserved, cost=3, tokens=10)


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


async def _round_trips(store: PostgresStore, trace: Path) -> tuple[int, int]:
    """Round trips of one admit and one settle on ``store`` (a pool of one connection)."""
    from psycopg import pq

    key = await store.create_key(
        name="trips", role="user", key_hash="trips", prefix="sk-sr-trips", credits_micro_usd=10**6
    )
    counts = []
    with trace.open("w") as out:
        with store._pool.connection() as connection:
            connection.pgconn.trace(out.fileno())
            connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        now = time.time()
        request = AdmissionRequest(key_id=key.id, request_id="t", reserve_micro_usd=50, now=now)
        for step in (store.admit(request), store.settle(_settlement(key.id, "t", now, 50))):
            await step
            out.flush()
            counts.append(_sent(trace))
        with store._pool.connection() as connection:
            connection.pgconn.untrace()
    await store.close()
    return counts[0], counts[1] - counts[0]


def _sent(trace: Path) -> int:
    """The statements a libpq trace shows the client sent, each a round trip."""
    fields = (line.split("\t") for line in trace.read_text().splitlines())
    return sum(1 for f in fields if len(f) > 2 and f[0] == "F" and f[2] in ("Sync", "Query"))


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
    trips: tuple[int, int] | None = None
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
                    url = cluster.create_database()
                    pg = PostgresStore(url)
                    results["postgresql"] = trio.run(_measure, pg, args.requests, args.rounds)
                    one = PostgresStore(url, pool_size=1)
                    trips = trio.run(_round_trips, one, Path(tmp) / "libpq.trace")
    if trips is not None:
        admit, settle = trips
        print(f"postgresql  round trips: admit {admit}, settle {settle}")
    for name, figures in results.items():
        print(
            f"{name:<11} {min(figures):7.0f} us per admit+settle (best of {args.rounds} rounds; "
            f"median {statistics.median(figures):.0f})"
        )


if __name__ == "__main__":
    main()
