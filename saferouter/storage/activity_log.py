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
