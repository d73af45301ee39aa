"""The SQL of the logs — startup and receipts: one row per entry, and the log's Merkle
tree as stored nodes.

An entry's index is assigned inside the write transaction that appends it, so workers
sharing the database never hand out the same index. Leaf hashes are made by the log
above (``translog.log``) and only kept here. (Rows of the retired ``audit`` log may
still be pending from before receipts: a tree covers the longest filled prefix.)

The tree: every node, from the leaves (level 0, each entry's ``leaf_hash`` again) up
through every perfect subtree, is a row of ``log_nodes``, written in the same
transaction as the leaf that completes it
(:func:`~saferouter.translog.merkle.completed_nodes`; amortized two rows per entry). A
node never changes once written, so a head or proof of any size up to the tree's reads
the O(log n) nodes it needs by key (:func:`nodes`) instead of every leaf. The leaves are
kept there as well as in the entries because proofs then read only small rows, packed
~60 to a page, never the entries' pages (a receipt is ~1 KB).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import StorageError
from ..translog import merkle
from ..translog.merkle import NodeId
from .records import LogEntry, NewLogEntry
from .rules import filled_prefix
from .sql import Db


def append(
    db: Db,
    log: str,
    make_entry: Callable[[int, bytes | None], NewLogEntry],
    now: float,
) -> LogEntry:
    """Append the entry ``make_entry(index, previous entry's body)`` returns."""
    row = db.execute(
        "SELECT idx, body, "
        "(SELECT min(idx) FROM log_entries WHERE log = ? AND body IS NULL) AS pending "
        "FROM log_entries WHERE log = ? ORDER BY idx DESC LIMIT 1",
        (log, log),
    ).fetchone()
    index = 0 if row is None else row["idx"] + 1
    new = make_entry(index, None if row is None else row["body"])
    db.execute(
        "INSERT INTO log_entries (log, idx, body, leaf_hash, created_at) VALUES (?,?,?,?,?)",
        (log, index, new.body, new.leaf_hash, now),
    )
    if row is None or row["pending"] is None:  # no gap before it: the tree takes the leaf
        # half the appends merge with nothing and read nothing; a quarter one node …
        edge = nodes(db, log, merkle.merge_ids(index))
        _write_nodes(db, log, merkle.completed_nodes(index, edge, [new.leaf_hash]))
    return LogEntry(log=log, index=index, body=new.body, created_at=now)


def size(db: Db, log: str) -> int:
    """The tree's size: the length of the longest prefix of filled entries."""
    (tree_size,) = db.execute(
        "SELECT coalesce((SELECT min(idx) FROM log_entries WHERE log = ? AND body IS NULL), "
        "(SELECT max(idx) + 1 FROM log_entries WHERE log = ?), 0)",
        (log, log),
    ).fetchone()
    return int(tree_size)


def nodes(db: Db, log: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
    """The hashes of stored nodes ``ids``, in one query of keyed searches; StorageError
    when one is not stored."""
    if not ids:
        return {}
    # The wanted keys drive the loop (CROSS JOIN fixes the order), each a search of the
    # primary key: SQLite judged an OR of six keys costlier than walking the log's
    # whole range of nodes, and read them all. The join's condition is in WHERE, not
    # ON: SQLite keeps the order either way, and PostgreSQL has no CROSS JOIN … ON.
    wanted = ",".join(["(?,?)"] * len(ids))
    rows = db.execute(
        f"WITH wanted(level, idx) AS (VALUES {wanted}) "  # noqa: S608 (only "?" marks are interpolated)
        "SELECT w.level, w.idx, n.hash FROM wanted AS w CROSS JOIN log_nodes AS n "
        "WHERE n.log = ? AND n.level = w.level AND n.idx = w.idx",
        [*(value for node in ids for value in node), log],
    )
    found = {(level, index): bytes(digest) for level, index, digest in rows}
    if len(found) != len(set(ids)):
        missing = sorted(set(ids) - found.keys())[:3]
        raise StorageError(f"the {log} log's tree has no node {missing}")
    return found


def rebuild_trees(db: Db) -> None:
    """Write every log's tree anew from its leaves (the migration that added stored
    trees; O(n), run once). Reads rows by position: migrations run on a plain cursor."""
    db.execute("DELETE FROM log_nodes")
    for (log,) in db.execute("SELECT DISTINCT log FROM log_entries").fetchall():
        rows = db.execute(
            "SELECT idx, leaf_hash FROM log_entries WHERE log = ? ORDER BY idx", (log,)
        )
        _write_nodes(db, log, merkle.completed_nodes(0, {}, filled_prefix(rows)))


def _write_nodes(db: Db, log: str, new: dict[NodeId, bytes]) -> None:
    if new:
        db.executemany(
            "INSERT INTO log_nodes (log, level, idx, hash) VALUES (?,?,?,?)",
            [(log, level, index, digest) for (level, index), digest in new.items()],
        )


def entries(db: Db, log: str, start: int, limit: int, key_id: str | None = None) -> list[LogEntry]:
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
