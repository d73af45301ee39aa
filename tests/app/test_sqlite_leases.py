"""Leases in what only SQLite has: a database from before leases (migration 11 gives its
open reservations no owner), and the lease rows themselves. The contract is
``test_store_leases.py``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from saferouter.storage import AdmissionRequest, ReceiptState
from saferouter.storage.migrations import MIGRATIONS
from saferouter.storage.sqlite import SQLiteStore

T0 = 1_800_000_000.0
# found by what it does, not by number: branches merged later may renumber migrations
MIGRATION_LEASES = next(
    n
    for n, script in enumerate(MIGRATIONS, start=1)
    if isinstance(script, str) and "CREATE TABLE leases" in script
)


def database_before_leases(path: Path) -> None:
    """A database as the last run before leases left it, killed mid-request: a key
    with 300 reserved for request ``old``, whose receipt is pending."""
    db = sqlite3.connect(path)
    for number, migration in enumerate(MIGRATIONS[: MIGRATION_LEASES - 1], start=1):
        if callable(migration):
            migration(db)
        else:
            db.executescript(migration)
        db.execute(f"PRAGMA user_version = {number}")
    db.execute(
        "INSERT INTO keys (id, name, prefix, key_hash, role, created_at, metered, "
        "balance_micro_usd, reserved_micro_usd) VALUES ('k', 'k', 'p', 'h', 'user', 0, 1, 700, 300)"
    )
    db.execute(
        "INSERT INTO ledger (key_id, kind, amount_micro_usd, request_id, created_at) "
        "VALUES ('k', 'topup', 1000, 't', 0), ('k', 'reserve', -300, 'old', 0)"
    )
    db.execute(
        "INSERT INTO receipts (receipt_id, request_id, key_id, created_at, state) "
        "VALUES ('rcpt_old', 'old', 'k', 0, 'pending')"
    )
    db.commit()
    db.close()


async def test_a_run_from_before_leases_is_recovered_and_a_live_owner_is_not(
    tmp_path: Path,
) -> None:
    database_before_leases(tmp_path / "s.db")
    live = SQLiteStore(tmp_path / "s.db", owner="aaaa/live")
    assert await live.check_books() == []  # the migration made the open reservation's row
    await live.renew_lease(T0 + 100)
    admission = AdmissionRequest(
        key_id="k", request_id="new", reserve_micro_usd=200, now=T0, receipt_id="rcpt_new"
    )
    assert (await live.admit(admission)).admitted
    assert await live.recover(T0) == 1
    books = await live.books("k")
    assert (books.balance_micro_usd, books.reserved_micro_usd) == (800, 200)
    old, new = await live.receipt("rcpt_old"), await live.receipt("rcpt_new")
    assert old is not None and old.state is ReceiptState.LOST
    assert new is not None and new.state is ReceiptState.PENDING
    assert await live.check_books() == []
    await live.close()


async def test_recovery_deletes_the_leases_that_lapsed(tmp_path: Path) -> None:
    stores = [SQLiteStore(tmp_path / "s.db", owner=f"aaaa/{n}") for n in range(3)]
    for n, store in enumerate(stores):
        await store.renew_lease(T0 + 10 * n)
    assert await stores[2].recover(T0 + 15) == 0  # (a sweeper never ends its own lease)
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("SELECT owner FROM leases").fetchall() == [("aaaa/2",)]
    db.close()
    for store in stores:
        await store.close()
