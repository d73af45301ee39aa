"""The SQL of replicas sharing one database: each log's published head, and who serves.

Every replica is a TEE of its own identity and signs its own logs (``startup/<id>``,
``receipts/<id>``: :func:`log_name`). Only it can sign a head
of them, so to let any replica prove a receipt of another's log, each publishes the
heads it signs here (``log_heads``), and its heartbeat publishes its current ones: a
replica that dies leaves its newest head behind. A published head only ever grows: a
slower writer's older head never replaces a newer one (the ``WHERE`` of the upsert).
``replicas`` says who has served and when its heartbeat was last seen.

The SQL is portable (SQLite and PostgreSQL 15: ``?`` marks, ``ON CONFLICT … DO
UPDATE``, ``excluded.``), and every write is one statement, safe to run again.
"""

from __future__ import annotations

from .records import PublishedHead, Replica, columns
from .sql import Db


def log_name(kind: str, identity: bytes) -> str:
    """The store's name for the ``kind`` log (``startup``, ``receipts``) of the replica
    whose identity key is ``identity``: each replica is a TEE of its own, and its logs
    are its own, signed by it alone, even when replicas share one database. (The store
    names its rows; the log above, ``translog.log``, signs them.)"""
    return f"{kind}/{identity.hex()}"


def log_signer(name: str) -> str | None:
    """The hex identity a :func:`log_name` names (None for a name of no replica's)."""
    _, _, identity = name.partition("/")
    return identity or None


_SELECT_HEAD = f"SELECT {columns(PublishedHead)} FROM log_heads WHERE log = ?"  # noqa: S608 (field names)
_SELECT_REPLICAS = f"SELECT {columns(Replica)} FROM replicas"  # noqa: S608 (field names)


def publish_head(db: Db, log: str, size: int, checkpoint: str, now: float) -> None:
    """Keep ``checkpoint`` (of ``size`` entries) as the log's published head, unless
    one at least as large is kept already."""
    db.execute(
        "INSERT INTO log_heads (log, size, checkpoint, published_at) VALUES (?,?,?,?) "
        "ON CONFLICT (log) DO UPDATE SET size = excluded.size, "
        "checkpoint = excluded.checkpoint, published_at = excluded.published_at "
        "WHERE excluded.size > log_heads.size",
        (log, size, checkpoint, now),
    )


def published_head(db: Db, log: str) -> PublishedHead | None:
    """The log's newest published head; None when none was published."""
    row = db.execute(_SELECT_HEAD, (log,)).fetchone()
    return None if row is None else PublishedHead(*row)


def see_replica(db: Db, identity: str, now: float) -> None:
    """Record that the replica ``identity`` (hex) is alive at ``now``: its first sight
    is its ``started_at``, kept ever after."""
    db.execute(
        "INSERT INTO replicas (identity, started_at, last_seen) VALUES (?,?,?) "
        "ON CONFLICT (identity) DO UPDATE SET last_seen = excluded.last_seen",
        (identity, now, now),
    )


def replicas(db: Db) -> list[Replica]:
    """Every replica seen, first started first."""
    rows = db.execute(_SELECT_REPLICAS + " ORDER BY started_at, identity").fetchall()
    return [Replica(*row) for row in rows]
