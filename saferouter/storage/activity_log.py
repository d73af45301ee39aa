"""The SQL of the activity log: one row per attempt of each request, written in the
transaction that admits or settles it (:mod:`.ledger`), read newest first."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from . import rules
from .records import ActivityEntry, ActivityFilter, ModelUsage

_ACTIVITY_COLUMNS = (
    "request_id, attempt, created_at, key_id, requested_model, served_model, provider, "
    "original_model, status, outcome, latency_ms, ttfb_ms, prompt_tokens, "
    "completion_tokens, cached_tokens, reasoning_tokens, cost_micro_usd, streamed, "
    "estimated, error_type, overrun_micro_usd"
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


def record(db: sqlite3.Connection, e: ActivityEntry) -> None:
    db.execute(
        f"INSERT OR IGNORE INTO activity ({_ACTIVITY_COLUMNS}) "  # noqa: S608 (constant)
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            e.request_id,
            e.attempt,
            e.created_at,
            e.key_id,
            e.requested_model,
            e.served_model,
            e.provider,
            e.original_model,
            e.status,
            e.outcome,
            e.latency_ms,
            e.ttfb_ms,
            e.prompt_tokens,
            e.completion_tokens,
            e.cached_tokens,
            e.reasoning_tokens,
            e.cost_micro_usd,
            e.streamed,
            e.estimated,
            e.error_type,
            e.overrun_micro_usd,
        ),
    )


def activity(db: sqlite3.Connection, q: ActivityFilter) -> list[ActivityEntry]:
    conditions = rules.activity_conditions(q)
    where = " AND ".join(["1 = 1", *(f"{_COLUMN[c.field]} {c.op} ?" for c in conditions)])
    rows = db.execute(
        f"SELECT {_ACTIVITY_COLUMNS}, id FROM activity WHERE {where} "  # noqa: S608
        "ORDER BY id DESC LIMIT ?",
        (*(c.value for c in conditions), q.limit),
    ).fetchall()
    return [_activity_entry(row) for row in rows]


def usage_by_model(db: sqlite3.Connection, key_id: str) -> list[ModelUsage]:
    rows = db.execute(
        "SELECT coalesce(served_model, requested_model), count(*), sum(prompt_tokens), "
        "sum(completion_tokens), sum(cached_tokens), sum(reasoning_tokens), "
        "sum(cost_micro_usd) FROM activity WHERE key_id = ? AND attempt >= 1 "
        "GROUP BY 1 ORDER BY 7 DESC, 1",
        (key_id,),
    ).fetchall()
    return [ModelUsage(*row) for row in rows]


def _activity_entry(row: Sequence[Any]) -> ActivityEntry:
    values = list(row)
    values[17] = bool(values[17])
    values[18] = bool(values[18])
    return ActivityEntry(*values)
