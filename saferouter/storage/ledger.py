"""The SQL of the books: admission, settlement, top-ups, recovery, and the reads over
the ledger (the activity log's SQL is :mod:`.activity_log`; what is decided in Python —
the admission, the settlement's split — is :mod:`.rules`, shared with the memory store).
Every function takes a connection inside a write transaction (or a read connection) and
does no I/O of its own beyond it. An open reservation is also a row of
``reservations`` naming its owner (:mod:`.leases`), so recovery can release the
reservations of processes that are gone and only theirs.

Ledger entries (amounts signed, micro-USD): ``topup`` +credit; ``reserve`` −worst case
at admission; ``release`` +the same at settlement; ``charge`` −actual cost, at most the
reservation; ``metering`` +what a key spent while unmetered, written off when it becomes
metered so that it starts at zero. A key's ``balance_micro_usd`` is the running sum of
those entries, kept in the same transaction as each entry, so ``balance = Σ ledger``
always (:func:`unbalanced_keys` checks it), and the conditional reservation makes
overspending impossible under any concurrency.

``overrun`` −what a provider billed beyond the reservation (it reported more output than
the request allowed). It is the operator's loss, not the key's: it is recorded against
the request and the key for the books, but it is outside the key's balance sum, so a
key's balance never pays for it and never goes below zero, and the loss stays visible
(activity ``overrun_micro_usd``, :func:`books`, :func:`overrun_total`) instead of
being hidden by a capped charge.
"""

from __future__ import annotations

import secrets
from typing import Any

from ..errors import StorageError
from . import activity_log, leases, receipts, rules
from .records import Admission, AdmissionRequest, Books, LedgerKind, Refusal, Settlement
from .sql import Db

_INSERT_ENTRY = (
    "INSERT INTO ledger (key_id, kind, amount_micro_usd, request_id, created_at) VALUES (?,?,?,?,?)"
)
_MOVE_BALANCE = (
    "UPDATE keys SET balance_micro_usd = balance_micro_usd + ?, "
    "reserved_micro_usd = reserved_micro_usd + ? WHERE id = ?"
)


def _entry(
    db: Db,
    key_id: str,
    kind: LedgerKind,
    amount: int,
    request_id: str,
    now: float,
) -> None:
    entry = (key_id, kind, amount, request_id, now)
    balance_change, reserved_change = rules.balance_effect(kind, amount)
    if not (balance_change or reserved_change):
        db.execute(_INSERT_ENTRY, entry)
    elif db.dialect == "postgresql":
        # The one dialect branch of the books: the entry and the balance it moves in ONE
        # statement (a data-modifying WITH, which PostgreSQL runs to completion whether or
        # not it is read, in the same transaction), a round trip fewer per entry. SQLite
        # has no INSERT inside WITH; there a statement costs no round trip anyway.
        db.execute(
            f"WITH entry AS ({_INSERT_ENTRY}) {_MOVE_BALANCE}",
            (*entry, balance_change, reserved_change, key_id),
        )
    else:
        db.execute(_INSERT_ENTRY, entry)
        db.execute(_MOVE_BALANCE, (balance_change, reserved_change, key_id))


def top_up(db: Db, key_id: str, amount: int, now: float) -> None:
    _entry(db, key_id, LedgerKind.TOPUP, amount, "topup_" + secrets.token_hex(12), now)


def start_metering(db: Db, key_id: str, now: float) -> None:
    """Make an unmetered key metered, starting at a zero balance: what it spent while
    unmetered (its negative balance) is written off by a ``metering`` entry."""
    row = db.execute("SELECT balance_micro_usd FROM keys WHERE id = ?", (key_id,)).fetchone()
    if balance := row["balance_micro_usd"]:
        _entry(db, key_id, LedgerKind.METERING, -balance, "metering_" + secrets.token_hex(12), now)
    db.execute("UPDATE keys SET metered = TRUE WHERE id = ?", (key_id,))


def admit(db: Db, request: AdmissionRequest, owner: str) -> Admission:
    """Admit or refuse ``request``; an admitted one's reservation and pending receipt
    are ``owner``'s."""
    window = rules.window_start(request.now)
    row = _key_and_window(db, request.key_id, window)
    if row is None or row["revoked_at"] is not None:
        return Admission(admitted=False, refusal=Refusal.REVOKED)
    admission = rules.decide_admission(
        request,
        metered=bool(row["metered"]),
        balance_micro_usd=row["balance_micro_usd"],
        rpm_limit=row["rpm_limit"],
        tpm_limit=row["tpm_limit"],
        used_requests=row["used_requests"],
        used_tokens=row["used_tokens"],
    )
    if admission.refusal is not None:
        activity_log.record(db, rules.refusal_entry(request, admission.refusal))
        return admission
    _count_request(db, request.key_id, window)
    reserved = admission.reserved_micro_usd
    if reserved:
        _entry(db, request.key_id, LedgerKind.RESERVE, -reserved, request.request_id, request.now)
        leases.hold(db, request.request_id, request.key_id, reserved, owner, request.now)
    if request.receipt_id is not None:
        receipts.add_pending(
            db, request.receipt_id, request.request_id, request.key_id, owner, request.now
        )
    return admission


def count_request(db: Db, key_id: str, now: float) -> Admission:
    """Count a request that reserves nothing against the key's requests per minute
    (:func:`.rules.decide_count`); a refusal writes nothing."""
    window = rules.window_start(now)
    row = _key_and_window(db, key_id, window)
    if row is None or row["revoked_at"] is not None:
        return Admission(admitted=False, refusal=Refusal.REVOKED)
    admission = rules.decide_count(
        now, rpm_limit=row["rpm_limit"], used_requests=row["used_requests"]
    )
    if admission.admitted:
        _count_request(db, key_id, window)
    return admission


def _key_and_window(db: Db, key_id: str, window: int) -> Any:
    """The key and its rate window starting at ``window`` (no window yet: zeros), in one
    statement: one round trip fewer on PostgreSQL, where each is a wake-up of the server."""
    return db.execute(
        "SELECT k.metered, k.balance_micro_usd, k.rpm_limit, k.tpm_limit, k.revoked_at, "
        "COALESCE(w.requests, 0) AS used_requests, COALESCE(w.tokens, 0) AS used_tokens "
        "FROM keys k LEFT JOIN rate_windows w ON w.key_id = k.id AND w.window_start = ? "
        "WHERE k.id = ?",
        (window, key_id),
    ).fetchone()


def _count_request(db: Db, key_id: str, window: int) -> None:
    db.execute(
        "INSERT INTO rate_windows (key_id, window_start, requests) VALUES (?, ?, 1) "
        "ON CONFLICT (key_id, window_start) DO UPDATE SET requests = rate_windows.requests + 1",
        (key_id, window),
    )


def settle(db: Db, s: Settlement) -> None:
    """Release the request's reservation and charge it (:func:`.rules.prior_settlement`:
    once; a request whose reservation recovery released is charged out of what its key
    holds now)."""
    kinds = db.execute("SELECT kind FROM ledger WHERE request_id = ?", (s.request_id,)).fetchall()
    recorded = db.execute(
        "SELECT 1 FROM activity WHERE request_id = ? LIMIT 1", (s.request_id,)
    ).fetchone()
    prior = rules.prior_settlement((row[0] for row in kinds), recorded=recorded is not None)
    if s.receipt is not None:
        receipts.save(db, s.receipt, s.now)
    if prior is rules.Prior.SETTLED:
        return  # never charge twice
    if s.reserved_micro_usd and prior is rules.Prior.OPEN:
        _entry(db, s.key_id, LedgerKind.RELEASE, s.reserved_micro_usd, s.request_id, s.now)
        leases.let_go(db, s.request_id)
    row = db.execute(
        "SELECT metered, balance_micro_usd FROM keys WHERE id = ?", (s.key_id,)
    ).fetchone()
    if row is None:
        raise StorageError(f"no key {s.key_id} to settle {s.request_id}")
    charges = rules.split_settlement(
        s, metered=bool(row["metered"]), balance_micro_usd=row["balance_micro_usd"], prior=prior
    )
    if charges.charge_micro_usd > 0:
        _entry(db, s.key_id, LedgerKind.CHARGE, -charges.charge_micro_usd, s.request_id, s.now)
    if charges.overrun_micro_usd > 0:
        _entry(db, s.key_id, LedgerKind.OVERRUN, -charges.overrun_micro_usd, s.request_id, s.now)
    for attempt in charges.attempts:
        activity_log.record(db, attempt)
    if s.tokens:
        db.execute(
            "INSERT INTO rate_windows (key_id, window_start, tokens) VALUES (?, ?, ?) "
            "ON CONFLICT (key_id, window_start) DO UPDATE "
            "SET tokens = rate_windows.tokens + excluded.tokens",
            (s.key_id, rules.window_start(s.now), s.tokens),
        )


def release_abandoned(db: Db, now: float, replica: str | None, caller: str | None = None) -> int:
    """Release the reservations of every owner that is gone at ``now`` (with ``replica``:
    and of every owner of that replica), as a settlement would but charging nothing, and
    mark those owners' pending receipts lost; how many reservations were released. A
    request that completes after all is charged when it settles (``settle``)."""
    gone = leases.abandoned(db, now, replica, caller)
    held = leases.held_by(db, gone)
    for request_id, key_id, amount_micro_usd in held:
        _entry(db, key_id, LedgerKind.RELEASE, amount_micro_usd, request_id, now)
        leases.let_go(db, request_id)
    receipts.mark_lost(db, gone)
    return len(held)


def prune(db: Db, now: float, retention_s: float) -> None:
    db.execute("DELETE FROM activity WHERE created_at < ?", (now - retention_s,))
    db.execute("DELETE FROM rate_windows WHERE window_start < ?", (now - rules.WINDOW_KEEP_S,))


def books(db: Db, key_id: str) -> Books:
    row = db.execute(
        "SELECT metered, balance_micro_usd, reserved_micro_usd FROM keys WHERE id = ?", (key_id,)
    ).fetchone()
    if row is None:
        raise StorageError(f"no key {key_id}")
    sums = {
        sum_row["kind"]: sum_row["total"]
        for sum_row in db.execute(
            "SELECT kind, CAST(SUM(amount_micro_usd) AS BIGINT) AS total FROM ledger "
            "WHERE key_id = ? "
            "GROUP BY kind",
            (key_id,),
        )
    }
    return rules.books_from_sums(
        metered=bool(row["metered"]),
        balance_micro_usd=row["balance_micro_usd"],
        reserved_micro_usd=row["reserved_micro_usd"],
        sums=sums,
    )


def overrun_total(db: Db) -> int:
    """What providers billed beyond every key's charges, all keys together."""
    (total,) = db.execute(
        "SELECT -CAST(COALESCE(SUM(amount_micro_usd), 0) AS BIGINT) FROM ledger "
        "WHERE kind = 'overrun'"
    ).fetchone()
    return int(total)


def unbalanced_keys(db: Db) -> list[str]:
    rows = db.execute(
        "SELECT k.id FROM keys k LEFT JOIN ("
        "  SELECT key_id, SUM(CASE WHEN kind = 'overrun' THEN 0 ELSE amount_micro_usd END)"
        "  AS total, "
        "  -SUM(CASE WHEN kind IN ('reserve', 'release') THEN amount_micro_usd ELSE 0 END)"
        "  AS open FROM ledger GROUP BY key_id) l ON l.key_id = k.id "
        "WHERE k.balance_micro_usd != COALESCE(l.total, 0) "
        "OR k.reserved_micro_usd != COALESCE(l.open, 0) "
        "OR k.reserved_micro_usd != COALESCE((SELECT CAST(SUM(r.amount_micro_usd) AS BIGINT) "
        "FROM reservations r WHERE r.key_id = k.id), 0) "
        "OR (k.metered AND k.balance_micro_usd < 0) "
        "OR EXISTS (SELECT 1 FROM ledger o WHERE o.key_id = k.id AND o.kind = 'overrun' "
        "AND o.amount_micro_usd >= 0)"
    ).fetchall()
    return [row["id"] for row in rows]
