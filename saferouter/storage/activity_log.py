"""The SQL of the activity log: one row per attempt of each request, written in the
transaction that admits or settles it (:mod:`.ledger`), read newest first."""

from __future__ import annotations

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
}


def record(db: Db, e: ActivityEntry) -> None:
    db.execute(_INSERT, [getattr(e, name) for name in _WRITTEN])


def activity(db: Db, q: ActivityFilter) -> list[ActivityEntry]:
    conditions = rules.activity_conditions(q)
    where = " AND ".join(["1 = 1", *(f"{_COLUMN[c.field]} {c.op} ?" for c in conditions)])
    rows = db.execute(
        f"SELECT {columns(ActivityEntry)} FROM activity "  # noqa: S608 (field names)
        f"WHERE {where} ORDER BY id DESC LIMIT ?",
        (*(c.value for c in conditions), q.limit),
    ).fetchall()
    return [ActivityEntry(*row) for row in rows]


def usage_by_model(db: Db, key_id: str) -> list[ModelUsage]:
    rows = db.execute(_USAGE, (key_id,)).fetchall()
    return [ModelUsage(**dict(zip(row.keys(), row, strict=True))) for row in rows]
