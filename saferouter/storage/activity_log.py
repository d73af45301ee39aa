"""The SQL of the activity log: one row per attempt of each request, written in the
transaction that admits or settles it (:mod:`.ledger`), read newest first.

A request is found by its own id (``req_…``, the ``X-SafeRouter-Request-Id``) or by the
id the upstream gave the response that served it (``chatcmpl-…``, ``resp_…``,
``msg_…``: what the client saw in the body). The partial index on ``(response_id,
key_id)`` (migration 13) answers both a key's lookup and an admin's, which names no key;
only serving attempts carry a response id, so the index holds no failed attempt."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from . import rules
from .activity_series import (
    ERROR_OUTCOMES,
    METRICS,
    PERCENTILES,
    ActivityBucket,
    BucketCounts,
    BucketGrid,
    Metric,
    assemble,
    nearest_rank,
)
from .records import ActivityEntry, ActivityFilter, ModelUsage, columns
from .sql import Db

# every field but the row id, which SQLite assigns
_WRITTEN = tuple(field.name for field in attrs.fields(ActivityEntry) if field.name != "id")
_INSERT = (
    f"INSERT INTO activity ({', '.join(_WRITTEN)}) "  # noqa: S608 (field names)
    f"VALUES ({', '.join('?' * len(_WRITTEN))}) ON CONFLICT (request_id, attempt) DO NOTHING"
)
# sums cast to BIGINT: PostgreSQL's sum of a bigint is a numeric (a Decimal in Python)
_USAGE = (
    "SELECT coalesce(served_model, requested_model) AS model, count(*) AS requests, "
    "CAST(sum(prompt_tokens) AS BIGINT) AS prompt_tokens, "
    "CAST(sum(completion_tokens) AS BIGINT) AS completion_tokens, "
    "CAST(sum(cached_tokens) AS BIGINT) AS cached_tokens, "
    "CAST(sum(reasoning_tokens) AS BIGINT) AS reasoning_tokens, "
    "CAST(sum(cost_micro_usd) AS BIGINT) AS cost_micro_usd FROM activity "
    "WHERE key_id = ? AND attempt >= 1 GROUP BY model ORDER BY cost_micro_usd DESC, model"
)
# the SQL of each field a filter tests (:func:`.rules.activity_conditions`); constants
# only, so the text built from them holds no input
_COLUMN: dict[rules.ActivityField, str] = {
    "key_id": "key_id",
    "model": "coalesce(served_model, requested_model)",
    "provider": "provider",
    "created_at": "created_at",
    "id": "id",
    "status": "status",
    "outcome": "outcome",
    "app": "coalesce(app_title, app_referer)",
}
_SELECT = f"SELECT {columns(ActivityEntry)} FROM activity"  # noqa: S608 (field names)


def record(db: Db, e: ActivityEntry) -> None:
    db.execute(_INSERT, [getattr(e, name) for name in _WRITTEN])


def activity(db: Db, q: ActivityFilter) -> list[ActivityEntry]:
    conditions = rules.activity_conditions(q)
    where = " AND ".join(["1 = 1", *(f"{_COLUMN[c.field]} {c.op} ?" for c in conditions)])
    rows = db.execute(
        f"{_SELECT} WHERE {where} ORDER BY id DESC LIMIT ?",
        (*(c.value for c in conditions), q.limit),
    ).fetchall()
    return [ActivityEntry(*row) for row in rows]


def find_request(db: Db, key_id: str | None, ref: str) -> list[ActivityEntry]:
    """The attempts (in order) of the request whose id is ``ref`` or, failing that, whose
    serving attempt produced the response ``ref`` (the newest such request: an upstream
    may reuse an id); only ``key_id``'s (None: any key's). [] when there is none."""
    mine, key = ("AND key_id = ?", (key_id,)) if key_id is not None else ("", ())
    rows = db.execute(
        f"{_SELECT} WHERE request_id = ? {mine} ORDER BY attempt", (ref, *key)
    ).fetchall()
    if not rows:
        found = db.execute(
            f"SELECT request_id FROM activity WHERE response_id = ? {mine} "  # noqa: S608
            "ORDER BY id DESC LIMIT 1",
            (ref, *key),
        ).fetchone()
        if found is None:
            return []
        rows = db.execute(
            f"{_SELECT} WHERE request_id = ? {mine} ORDER BY attempt", (found[0], *key)
        ).fetchall()
    return [ActivityEntry(*row) for row in rows]


def served_response(db: Db, key_id: str, response_id: str) -> ActivityEntry | None:
    """The newest attempt of ``key_id``'s that served the response ``response_id``."""
    row = db.execute(
        f"{_SELECT} WHERE response_id = ? AND key_id = ? ORDER BY id DESC LIMIT 1",
        (response_id, key_id),
    ).fetchone()
    return None if row is None else ActivityEntry(*row)


def spent_since(db: Db, key_id: str, since: Sequence[float]) -> list[int]:
    """What ``key_id``'s attempts created at or after each of ``since`` cost (charged,
    overruns aside), in one indexed read (``activity_key_time``) back to the earliest."""
    if not since:
        return []
    sums = ", ".join(
        "CAST(coalesce(sum(CASE WHEN created_at >= ? THEN cost_micro_usd ELSE 0 END), 0) AS BIGINT)"
        for _ in since
    )
    row = db.execute(
        f"SELECT {sums} FROM activity WHERE key_id = ? AND created_at >= ?",  # noqa: S608
        (*since, key_id, min(since)),
    ).fetchone()
    return [int(value) for value in row]


def usage_by_model(db: Db, key_id: str) -> list[ModelUsage]:
    rows = db.execute(_USAGE, (key_id,)).fetchall()
    return [ModelUsage(**dict(zip(row.keys(), row, strict=True))) for row in rows]


# The grid's entries, each with its bucket: floor((created_at - start) / width_s), in
# doubles, as activity_series.BucketGrid.index computes it. CAST to an integer
# truncates in SQLite but rounds in PostgreSQL; taking one off where the cast came out
# above the value makes both a floor (SQLite's floor() is an optional build feature).
# An entry a hair before the grid's end may round up to bucket ``count``: the last's.
_PLACED = (
    "WITH scaled AS (SELECT (created_at - ?) / ? AS x, outcome, latency_ms, ttfb_ms, "
    "cost_micro_usd FROM activity WHERE created_at >= ? AND created_at < ? {mine}), "
    "floored AS (SELECT CAST(x AS BIGINT) - CASE WHEN CAST(x AS BIGINT) > x THEN 1 ELSE 0 END "
    "AS bucket, outcome, latency_ms, ttfb_ms, cost_micro_usd FROM scaled), "
    "placed AS (SELECT CASE WHEN bucket > ? THEN ? ELSE bucket END AS bucket, outcome, "
    "latency_ms, ttfb_ms, cost_micro_usd FROM floored) "
)
_COUNTS = (
    "SELECT bucket, count(*) AS requests, "  # noqa: S608 (constants)
    f"CAST(sum(CASE WHEN outcome IN ({', '.join('?' * len(ERROR_OUTCOMES))}) THEN 1 ELSE 0 END) "
    "AS BIGINT) AS errors, CAST(sum(cost_micro_usd) AS BIGINT) AS cost_micro_usd "
    "FROM placed GROUP BY bucket"
)
# each measure's values ranked within their bucket; only the ranks of the percentiles
# come back (nearest rank, ceil(pct * n / 100) in integers: activity_series.nearest_rank)
_RANKED = " UNION ALL ".join(
    f"SELECT bucket, '{metric}' AS metric, {metric}_ms AS value, "  # noqa: S608 (constants)
    f"ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY {metric}_ms) AS place, "
    f"count(*) OVER (PARTITION BY bucket) AS counted FROM placed WHERE {metric}_ms IS NOT NULL"
    for metric in METRICS
)
_PICKS = (
    f", ranked AS ({_RANKED}) SELECT bucket, metric, value, place, counted FROM ranked "  # noqa: S608
    "WHERE " + " OR ".join(f"place = ({pct} * counted + 99) / 100" for pct in PERCENTILES)
)


def series(db: Db, key_id: str | None, grid: BucketGrid) -> list[ActivityBucket]:
    """Every bucket of ``grid`` (:mod:`.activity_series`), of ``key_id``'s entries (None:
    every key's), aggregated in the database: an indexed range read of the grid's
    span (``activity_time`` / ``activity_key_time``), at most a few rows per bucket back."""
    mine, key = ("AND key_id = ?", (key_id,)) if key_id is not None else ("", ())
    placed = _PLACED.format(mine=mine)
    last = grid.count - 1
    start, width_s, end = float(grid.start), float(grid.width_s), float(grid.end)
    within = (start, width_s, start, end, *key, last, last)
    counts = {
        row["bucket"]: BucketCounts(
            requests=int(row["requests"]),
            errors=int(row["errors"]),
            cost_micro_usd=int(row["cost_micro_usd"]),
        )
        for row in db.execute(placed + _COUNTS, (*within, *ERROR_OUTCOMES))
    }
    picks: dict[tuple[int, Metric, int], float] = {}
    for row in db.execute(placed + _PICKS, within):
        for pct in PERCENTILES:
            if row["place"] == nearest_rank(row["counted"], pct):
                picks[(row["bucket"], row["metric"], pct)] = row["value"]
    return assemble(grid, counts, picks)
