"""How many round trips a request's writes make to PostgreSQL: each is a wake-up of the
server and of a worker thread, the PostgreSQL store's cost per request (bench
``store_ops.py``). Counted on the wire, from libpq's own trace of the store's only
pooled connection: every statement the client sends ends in a ``Sync`` (extended
protocol) or is a ``Query`` (simple protocol), and waits for its answer."""

from __future__ import annotations

import time
from pathlib import Path

from psycopg import pq

from saferouter.storage import AdmissionRequest
from saferouter.storage.postgres import PostgresStore

from .stores import make_key, settlement


def _round_trips(trace: Path) -> list[str]:
    """The statements the client sent, one per round trip, from a libpq trace."""
    sent = []
    for line in trace.read_text().splitlines():
        fields = line.split("\t")
        if fields[0] == "F" and fields[2] in ("Sync", "Query"):
            sent.append(" ".join(fields[2:]))
    return sent


async def test_an_admission_is_six_round_trips(pg_url: str, tmp_path: Path) -> None:
    """An admission: the write lock with the BEGIN; the key and its rate window (ONE
    select); the rate window's count; the reserve entry with the balance it moves (one
    statement); the reservation row; the COMMIT with the lock's release. It was ten:
    the lock, the BEGIN, a select each, the entry and the balance, the unlock alone."""
    store = PostgresStore(pg_url, pool_size=1)  # every statement on one connection
    trace = tmp_path / "libpq.trace"
    try:
        key = await make_key(store, credits=10**6)
        now = time.time()
        with trace.open("w") as out:
            with store._pool.connection() as connection:
                connection.pgconn.trace(out.fileno())
                connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            admission = await store.admit(
                AdmissionRequest(key_id=key, request_id="r1", reserve_micro_usd=10, now=now)
            )
            with store._pool.connection() as connection:
                connection.pgconn.untrace()
        assert admission.admitted
        sent = _round_trips(trace)
        assert len(sent) == 6, sent
        assert "pg_advisory_lock" in sent[0] and "BEGIN ISOLATION LEVEL SERIALIZABLE" in sent[0]
        assert "COMMIT; SELECT pg_advisory_unlock" in sent[-1], sent
        await store.settle(settlement(key, "r1", now, reserved=10, cost=3))
        assert await store.check_books() == []
    finally:
        await store.close()
