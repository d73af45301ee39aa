"""The SQL of the logs — startup and receipts — (one table, one row per entry).

An entry's index is assigned inside the write transaction that appends it, so workers
sharing the database never hand out the same index. Leaf hashes are made by the log
above (``translog.log``) and only kept here. (Rows of the retired ``audit`` log may
still be pending from before receipts: the tree covers the longest filled prefix.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .records import LogEntry, NewLogEntry
from .rules import filled_prefix


def append(
    db: sqlite3.Connection,
    log: str,
    make_entry: Callable[[int, bytes | None], NewLogEntry],
    now: float,
) -> LogEntry:
    """Append the entry ``make_entry(index, previous entry's body)`` returns."""
    row = db.execute(
        "SELECT idx, body FROM log_entries WHERE log = ? ORDER BY idx DESC LIMIT 1", (log,)
    ).fetchone()
    index = 0 if row is None else row["idx"] + 1
    new = make_entry(index, None if row is None else row["body"])
    db.execute(
        "INSERT INTO log_entries (log, idx, body, leaf_hash, created_at) VALUES (?,?,?,?,?)",
        (log, index, new.body, new.leaf_hash, now),
    )
    return LogEntry(log=log, index=index, body=new.body, created_at=now)


def leaves(db: sqlite3.Connection, log: str) -> list[bytes]:
    """Leaf hashes of the longest prefix of filled entries."""
    return filled_prefix(
        db.execute("SELECT idx, leaf_hash FROM log_entries WHERE log = ? ORDER BY idx", (log,))
    )


def entries(
    db: sqlite3.Connection, log: str, start: int, limit: int, key_id: str | None = None
) -> list[LogEntry]:
    sql = (
        "SELECT idx, body, created_at, key_id, request_id FROM log_entries "
        "WHERE log = ? AND idx >= ?"
    )
    args: list[object] = [log, start]
    if key_id is not None:
        sql += " AND key_id = ?"
        args.append(key_id)
    rows = db.execute(sql + " ORDER BY idx LIMIT ?", (*args, limit)).fetchall()
    return [
        LogEntry(
            log=log,
            index=row["idx"],
            body=None if row["body"] is None else bytes(row["body"]),
            created_at=row["created_at"],
            key_id=row["key_id"],
            request_id=row["request_id"],
        )
        for row in rows
    ]
