"""The SQL of receipts: one row per admitted request, and its entry in the receipt log.

A receipt's row is written *pending* inside the admission's transaction (no write of
its own), so every worker sharing the database can tell a request still in flight
(``409 receipt_pending``) from an unknown id. When the response has ended the signed
receipt is saved: its canonical bytes are appended to the ``receipts`` log through
:func:`.logs.append` — the one function every append goes through — and the row points
at that entry, in one transaction (the settlement's, when it can carry it). A row still
pending names its owner (:mod:`.leases`): once that owner is gone, the request died with
it, and :func:`mark_lost` says so for good, since its response bytes are unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from . import leases, logs
from .records import NewLogEntry, NewReceipt, ReceiptState, StoredReceipt
from .sql import Db

_SELECT = (
    "SELECT r.receipt_id, r.request_id, r.key_id, r.state, r.log_index, e.body, r.signature, "
    "r.log FROM receipts r LEFT JOIN log_entries e ON e.log = r.log AND e.idx = r.log_index"
)


def add_pending(
    db: Db, receipt_id: str, request_id: str, key_id: str, owner: str, now: float
) -> None:
    """The receipt of a request ``owner`` just admitted: pending until its response ends."""
    db.execute(
        "INSERT INTO receipts (receipt_id, request_id, key_id, created_at, state, owner) "
        "VALUES (?,?,?,?,'pending',?)",
        (receipt_id, request_id, key_id, now, owner),
    )


def save(db: Db, receipt: NewReceipt, now: float) -> int:
    """Append the receipt to the receipt log and mark its row done; its log index.
    Saving a receipt twice appends it once."""
    row = db.execute(
        "SELECT state, log_index FROM receipts WHERE receipt_id = ?", (receipt.receipt_id,)
    ).fetchone()
    if row is not None and row[0] == ReceiptState.DONE:
        return int(row[1])
    entry = logs.append(
        db, receipt.log, lambda index, previous: NewLogEntry(receipt.body, receipt.leaf_hash), now
    )
    db.execute(
        "INSERT INTO receipts (receipt_id, request_id, key_id, created_at, state, log_index, "
        "signature, audit_sample, log) VALUES (?,?,?,?,'done',?,?,?,?) ON CONFLICT (receipt_id) "
        "DO UPDATE SET state = 'done', log_index = excluded.log_index, "
        "signature = excluded.signature, audit_sample = excluded.audit_sample, "
        "log = excluded.log",
        (
            receipt.receipt_id,
            receipt.request_id,
            receipt.key_id,
            receipt.created_at,
            entry.index,
            receipt.signature,
            receipt.audit_sample,
            receipt.log,
        ),
    )
    return entry.index


def get(db: Db, receipt_id: str) -> StoredReceipt | None:
    row = db.execute(_SELECT + " WHERE r.receipt_id = ?", (receipt_id,)).fetchone()
    return _stored(row) if row is not None else None


def sampled(db: Db, log: str, start: int, limit: int, key_id: str | None) -> list[StoredReceipt]:
    """The audit samples (receipts drawn as such) of the receipt log ``log`` from its
    index ``start``, oldest first. One log: indexes repeat across replicas' logs."""
    sql = _SELECT + " WHERE r.audit_sample AND r.log = ? AND r.log_index >= ?"
    args: list[object] = [log, start]
    if key_id is not None:
        sql += " AND r.key_id = ?"
        args.append(key_id)
    rows = db.execute(sql + " ORDER BY r.log_index LIMIT ?", (*args, limit)).fetchall()
    return [_stored(row) for row in rows]


def mark_lost(db: Db, owners: Iterable[str | None]) -> int:
    """The receipts ``owners`` left pending (owners that are gone: their requests died
    with them); how many. Another owner's pending receipt is never touched."""
    lost = 0
    for owner in owners:
        lost += db.execute(
            "UPDATE receipts SET state = 'lost' WHERE state = 'pending' "
            "AND COALESCE(owner, '') = ?",
            (leases.owner_value(owner),),
        ).rowcount
    return lost


def _stored(row: Sequence[Any]) -> StoredReceipt:
    # in the SELECT's order, which is StoredReceipt's field order
    return StoredReceipt(*tuple(row))
