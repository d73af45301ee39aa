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

The SQL here runs unchanged on SQLite and PostgreSQL: ``?`` placeholders, an upsert by
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


def renew(db: Db, owner: str, until: float) -> None:
    """Take or extend ``owner``'s lease, to ``until``."""
    db.execute(
        "INSERT INTO leases (owner, expires_at) VALUES (?, ?) "
        "ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at",
        (owner, until),
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


def abandoned(db: Db, now: float, replica: str | None) -> list[str | None]:
    """The owners holding reservations or pending receipts that are gone at ``now``
    (:func:`.rules.owner_is_gone`); their lapsed leases are deleted on the way."""
    expiries = {row[0]: row[1] for row in db.execute("SELECT owner, expires_at FROM leases")}
    holders = db.execute(
        "SELECT owner FROM reservations UNION SELECT owner FROM receipts WHERE state = 'pending'"
    ).fetchall()
    gone = [
        row[0]
        for row in holders
        if rules.owner_is_gone(row[0], expiries.get(row[0]), now, replica=replica)
    ]
    for owner, expires_at in expiries.items():
        if rules.owner_is_gone(owner, expires_at, now, replica=replica):
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
