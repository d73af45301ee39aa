"""The memory store's receipts table: :mod:`.receipts` (SQL) answered in Python.

A row is pending from admission until its signed receipt is saved; the receipt's bytes
are an entry of its signer's receipt log (``NewReceipt.log``), appended through the
memory store's log tables in the same journal transaction, as SQLite does in one write
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from .journal import Journal
from .memory_tables import LogTables, first
from .records import NewLogEntry, NewReceipt, ReceiptState, StoredReceipt

# a pending row's log until it is saved: the column's default in SQLite (migration 11)
PENDING_LOG = "receipts"


@attrs.frozen
class _Row:
    receipt_id: str
    request_id: str
    key_id: str
    state: ReceiptState
    log_index: int | None = None
    signature: bytes | None = None
    audit_sample: bool = False
    owner: str | None = None  # while pending: who admitted it (storage.leases)
    log: str = PENDING_LOG


class ReceiptTable:
    def __init__(self, journal: Journal, logs: LogTables) -> None:
        self._journal = journal
        self._logs = logs
        self._rows: dict[str, _Row] = {}

    def add_pending(self, receipt_id: str, request_id: str, key_id: str, owner: str) -> None:
        if receipt_id in self._rows:  # SQLite's PRIMARY KEY
            raise ValueError(f"receipt {receipt_id} exists")
        row = _Row(receipt_id, request_id, key_id, ReceiptState.PENDING, owner=owner)
        self._journal.set(self._rows, receipt_id, row)

    def save(self, receipt: NewReceipt, now: float) -> int:
        row = self._rows.get(receipt.receipt_id)
        if row is not None and row.state is ReceiptState.DONE:
            assert row.log_index is not None
            return row.log_index
        entry = self._logs.append(
            receipt.log,
            lambda index, previous: NewLogEntry(receipt.body, receipt.leaf_hash),
            now,
        )
        done = _Row(
            receipt.receipt_id,
            receipt.request_id,
            receipt.key_id,
            ReceiptState.DONE,
            entry.index,
            receipt.signature,
            receipt.audit_sample,
            log=receipt.log,
        )
        self._journal.set(self._rows, receipt.receipt_id, done)
        return entry.index

    def get(self, receipt_id: str) -> StoredReceipt | None:
        row = self._rows.get(receipt_id)
        return self._stored(row) if row is not None else None

    def sampled(self, log: str, start: int, limit: int, key_id: str | None) -> list[StoredReceipt]:
        rows = sorted(
            (
                row
                for row in self._rows.values()
                if row.audit_sample
                and row.log == log
                and row.log_index is not None
                and row.log_index >= start
                and (key_id is None or row.key_id == key_id)
            ),
            key=lambda row: row.log_index or 0,
        )
        return [self._stored(row) for row in first(rows, limit)]

    def pending_owners(self) -> set[str | None]:
        return {r.owner for r in self._rows.values() if r.state is ReceiptState.PENDING}

    def mark_lost(self, owners: Iterable[str | None]) -> int:
        """The receipts ``owners`` left pending; how many."""
        wanted = set(owners)
        pending = [
            r for r in self._rows.values() if r.state is ReceiptState.PENDING and r.owner in wanted
        ]
        for row in pending:
            self._journal.set(
                self._rows, row.receipt_id, attrs.evolve(row, state=ReceiptState.LOST)
            )
        return len(pending)

    def _stored(self, row: _Row) -> StoredReceipt:
        body = None
        if row.log_index is not None:
            (entry,) = self._logs.entries(row.log, row.log_index, 1, None)
            body = entry.body
        return StoredReceipt(
            receipt_id=row.receipt_id,
            request_id=row.request_id,
            key_id=row.key_id,
            state=row.state,
            log_index=row.log_index,
            body=body,
            signature=row.signature,
            log=row.log,
        )
