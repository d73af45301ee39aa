"""Who holds what: owners, their leases, and the open reservations they hold.

Every process that serves opens its store for an *owner* (:func:`new_owner`): its
replica's id (``datadir.replica_id``, one per data dir) and a random part of its own.
While it lives it keeps a lease (``leases``: owner, ``expires_at``, renewed by
``saferouter.heartbeat``). Each reservation it opens is a row of ``reservations``
naming it, written in the admission's transaction with the ledger's ``reserve`` entry
and deleted in the settlement's with the ``release``; each receipt it leaves pending
names it too.

Recovery (:func:`abandoned`, run by ``ledger.release_abandoned``) releases only what
owners that are gone hold: no lease valid now, or — at a restart that holds the data
dir's lock — any owner of that replica. So a replica that stops mid-request has its
reservations released by whichever replica's heartbeat first sees its lease lapse, and
at once when it comes back; a live replica's in-flight requests are never touched,
however many others restart. (The decision itself is :func:`.rules.owner_is_gone`,
shared with the memory store.)

Leases are judged on **one clock, the database's**. Each replica's heartbeat reads its
own host's clock; hosts disagree (a broken NTP, a VM resumed from a pause), and a lease
written as one host's time and compared with another's would let a replica whose clock
runs ``lease_s`` ahead sweep every live replica's in-flight requests (and one whose
clock runs behind be swept while it serves). So :func:`renew` stores the lease's end
as the database's time plus what was left of it by the caller's clock, and recovery
compares on the database's time (:func:`on_db_clock`); what each host reads is used
only as a duration, in which skew cancels out.

The SQL here runs unchanged on SQLite and PostgreSQL, but for the database's clock
(:func:`db_clock_sql`, the one statement that must differ): ``?`` placeholders, an upsert by
``ON CONFLICT``, and no comparison with NULL (an owner NULL, a reservation from before
leases, is matched as ``COALESCE(owner, '')``). Every function runs inside its caller's
transaction and does no I/O beyond it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from . import rules
from .sql import Db

OWNER_RANDOM_BYTES = 6


def new_owner(replica: str) -> str:
    """A fresh owner id of a process of ``replica``: ``<replica>/<12 hex>``."""
    return f"{replica}/{secrets.token_hex(OWNER_RANDOM_BYTES)}"


def lone_owner() -> str:
    """An owner of a replica of its own: a store opened without one (the CLI, a test)."""
    return new_owner(secrets.token_hex(8))


def owner_replica(owner: str) -> str:
    """The replica an owner id (:func:`new_owner`) belongs to."""
    return owner.rpartition("/")[0]


def db_clock_sql(db: Db) -> str:
    """SQL for the database's own clock now, in seconds since the epoch."""
    if db.dialect == "postgresql":  # the statement's own time, not the transaction's start
        return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def on_db_clock(db: Db, at: float, wall_now: float) -> float:
    """``at``, a time read against the caller's clock (which read ``wall_now`` just now),
    as the database's clock has it."""
    (db_now,) = db.execute(f"SELECT {db_clock_sql(db)}").fetchone()
    return float(db_now) + (at - wall_now)


def renew(db: Db, owner: str, until: float, wall_now: float) -> None:
    """Take or extend ``owner``'s lease, to ``until`` by the caller's clock (which read
    ``wall_now`` just now): stored on the database's clock, in the same statement."""
    db.execute(
        "INSERT INTO leases (owner, expires_at) "  # noqa: S608 (constant SQL)
        f"VALUES (?, {db_clock_sql(db)} + ?) "
        "ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at",
        (owner, until - wall_now),
    )


def end(db: Db, owner: str) -> None:
    """Give ``owner``'s lease up: what it still holds is anyone's to recover."""
    db.execute("DELETE FROM leases WHERE owner = ?", (owner,))


def hold(
    db: Db, request_id: str, key_id: str, amount_micro_usd: int, owner: str, now: float
) -> None:
    """The row of a reservation just made (with the ledger's ``reserve`` entry)."""
    db.execute(
        "INSERT INTO reservations (request_id, key_id, amount_micro_usd, owner, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (request_id, key_id, amount_micro_usd, owner, now),
    )


def let_go(db: Db, request_id: str) -> None:
    """Delete a reservation's row (with the ledger's ``release`` entry)."""
    db.execute("DELETE FROM reservations WHERE request_id = ?", (request_id,))


def abandoned(
    db: Db, now: float, replica: str | None, caller: str | None = None
) -> list[str | None]:
    """The owners holding reservations or pending receipts that are gone at ``now`` (on
    the database's clock: :func:`on_db_clock`; :func:`.rules.owner_is_gone`); their
    lapsed leases are deleted on the way."""
    expiries = {row[0]: row[1] for row in db.execute("SELECT owner, expires_at FROM leases")}
    holders = db.execute(
        "SELECT owner FROM reservations UNION SELECT owner FROM receipts WHERE state = 'pending'"
    ).fetchall()
    gone = [
        row[0]
        for row in holders
        if rules.owner_is_gone(row[0], expiries.get(row[0]), now, replica=replica, caller=caller)
    ]
    for owner, expires_at in expiries.items():
        if rules.owner_is_gone(owner, expires_at, now, replica=replica, caller=caller):
            end(db, owner)
    return gone


def held_by(db: Db, owners: Iterable[str | None]) -> list[tuple[str, str, int]]:
    """``(request_id, key_id, amount_micro_usd)`` of every reservation of ``owners``."""
    held: list[tuple[str, str, int]] = []
    for owner in owners:
        rows = db.execute(
            "SELECT request_id, key_id, amount_micro_usd FROM reservations "
            "WHERE COALESCE(owner, '') = ?",
            (owner_value(owner),),
        ).fetchall()
        held += [(row[0], row[1], int(row[2])) for row in rows]
    return held


def owner_value(owner: str | None) -> str:
    """What ``COALESCE(owner, '')`` is for ``owner``: a NULL owner (a run from before
    leases) is no value ``=`` matches, and no owner id is empty."""
    return owner or ""
