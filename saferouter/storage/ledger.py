"""The SQL of the books: admission, settlement, top-ups, recovery, and the reads over
the ledger (the activity log's SQL is :mod:`.activity_log`). Every function takes a
connection inside a write transaction (or a read connection) and does no I/O of its
own beyond it.

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

import math
import secrets
import sqlite3

import attrs

from ..accounting import split_charge
from . import activity_log
from .records import ActivityEntry, Admission, AdmissionRequest, Books, Settlement

WINDOW_S = 60
# the kinds that move a key's balance; ``overrun`` is the operator's, outside it
BALANCE_KINDS = ("topup", "reserve", "release", "charge", "metering")
_REFUSAL_STATUS = {
    "insufficient_quota": 402,
    "requests_per_minute": 429,
    "tokens_per_minute": 429,
    "revoked": 401,
    "unsupported_content": 400,
}


def _entry(
    db: sqlite3.Connection, key_id: str, kind: str, amount: int, request_id: str, now: float
) -> None:
    db.execute(
        "INSERT INTO ledger (key_id, kind, amount_micro_usd, request_id, created_at) "
        "VALUES (?,?,?,?,?)",
        (key_id, kind, amount, request_id, now),
    )
    if kind not in BALANCE_KINDS:
        return
    reserved_change = -amount if kind in ("reserve", "release") else 0
    db.execute(
        "UPDATE keys SET balance_micro_usd = balance_micro_usd + ?, "
        "reserved_micro_usd = reserved_micro_usd + ? WHERE id = ?",
        (amount, reserved_change, key_id),
    )


def top_up(db: sqlite3.Connection, key_id: str, amount: int, now: float) -> None:
    _entry(db, key_id, "topup", amount, "topup_" + secrets.token_hex(12), now)


def start_metering(db: sqlite3.Connection, key_id: str, now: float) -> None:
    """Make an unmetered key metered, starting at a zero balance: what it spent while
    unmetered (its negative balance) is written off by a ``metering`` entry."""
    (balance,) = db.execute("SELECT balance_micro_usd FROM keys WHERE id = ?", (key_id,)).fetchone()
    if balance:
        _entry(db, key_id, "metering", -balance, "metering_" + secrets.token_hex(12), now)
    db.execute("UPDATE keys SET metered = 1 WHERE id = ?", (key_id,))


def admit(db: sqlite3.Connection, request: AdmissionRequest) -> Admission:
    row = db.execute(
        "SELECT metered, balance_micro_usd, rpm_limit, tpm_limit, revoked_at FROM keys "
        "WHERE id = ?",
        (request.key_id,),
    ).fetchone()
    if row is None or row[4] is not None:
        return Admission(admitted=False, refusal="revoked")
    metered, balance, rpm, tpm, _ = row
    window = int(request.now // WINDOW_S) * WINDOW_S
    reset_s = window + WINDOW_S - request.now
    used = db.execute(
        "SELECT requests, tokens FROM rate_windows WHERE key_id = ? AND window_start = ?",
        (request.key_id, window),
    ).fetchone() or (0, 0)
    refusal = None
    if metered and request.reserve_micro_usd is None:
        refusal = "unsupported_content"  # no bound on its cost: a metered key cannot pay it
    elif rpm is not None and used[0] >= rpm:
        refusal = "requests_per_minute"
    elif tpm is not None and used[1] >= tpm:
        refusal = "tokens_per_minute"
    elif metered and balance < (request.reserve_micro_usd or 0):
        refusal = "insufficient_quota"
    if refusal is not None:
        activity_log.record(
            db,
            ActivityEntry(
                request_id=request.request_id,
                attempt=0,
                created_at=request.now,
                key_id=request.key_id,
                requested_model=request.requested_model,
                served_model=None,
                provider=None,
                original_model=None,
                status=_REFUSAL_STATUS[refusal],
                outcome="rejected",
                streamed=request.streamed,
                error_type=refusal,
            ),
        )
        return Admission(
            admitted=False,
            refusal=refusal,
            balance_micro_usd=balance,
            rate_remaining=max(0, rpm - used[0]) if rpm is not None else None,
            retry_after_s=math.ceil(reset_s) if refusal != "insufficient_quota" else 0,
            rate_limit=rpm,
            rate_reset_s=reset_s,
        )
    db.execute(
        "INSERT INTO rate_windows (key_id, window_start, requests) VALUES (?, ?, 1) "
        "ON CONFLICT (key_id, window_start) DO UPDATE SET requests = requests + 1",
        (request.key_id, window),
    )
    reserved = (request.reserve_micro_usd or 0) if metered else 0
    if reserved:
        _entry(db, request.key_id, "reserve", -reserved, request.request_id, request.now)
    return Admission(
        admitted=True,
        reserved_micro_usd=reserved,
        balance_micro_usd=balance - reserved,
        rate_remaining=rpm - used[0] - 1 if rpm is not None else None,
        rate_limit=rpm,
        rate_reset_s=reset_s,
    )


def settle(db: sqlite3.Connection, s: Settlement) -> None:
    already = db.execute(
        "SELECT 1 FROM ledger WHERE request_id = ? AND kind IN ('release', 'charge', 'overrun')",
        (s.request_id,),
    ).fetchone()
    if already is not None:
        return  # settled before: never charge twice
    if s.reserved_micro_usd:
        _entry(db, s.key_id, "release", s.reserved_micro_usd, s.request_id, s.now)
    metered, balance = db.execute(
        "SELECT metered, balance_micro_usd FROM keys WHERE id = ?", (s.key_id,)
    ).fetchone()
    # A metered key pays at most what was reserved for the request (if nothing was, it
    # was unmetered at admission: at most its balance), so it never goes below zero.
    cap = None
    if metered:
        cap = max(balance, 0)
        if s.reserved_micro_usd:
            cap = min(cap, s.reserved_micro_usd)
    charge, overrun = split_charge(s.cost_micro_usd, cap)
    if charge > 0:
        _entry(db, s.key_id, "charge", -charge, s.request_id, s.now)
    if overrun > 0:
        _entry(db, s.key_id, "overrun", -overrun, s.request_id, s.now)
    for attempt in s.attempts:
        if overrun and attempt.cost_micro_usd:  # only the serving attempt has a cost
            attempt = attrs.evolve(
                attempt, cost_micro_usd=attempt.cost_micro_usd - overrun, overrun_micro_usd=overrun
            )
        activity_log.record(db, attempt)
    if s.tokens:
        window = int(s.now // WINDOW_S) * WINDOW_S
        db.execute(
            "INSERT INTO rate_windows (key_id, window_start, tokens) VALUES (?, ?, ?) "
            "ON CONFLICT (key_id, window_start) DO UPDATE SET tokens = tokens + ?",
            (s.key_id, window, s.tokens, s.tokens),
        )


def release_abandoned(db: sqlite3.Connection, now: float) -> int:
    rows = db.execute(
        "SELECT key_id, request_id, -amount_micro_usd FROM ledger r WHERE kind = 'reserve' "
        "AND NOT EXISTS (SELECT 1 FROM ledger x WHERE x.request_id = r.request_id "
        "AND x.kind = 'release')"
    ).fetchall()
    for key_id, request_id, amount in rows:
        _entry(db, key_id, "release", amount, request_id, now)
    return len(rows)


def prune(db: sqlite3.Connection, now: float, retention_s: float) -> None:
    db.execute("DELETE FROM activity WHERE created_at < ?", (now - retention_s,))
    db.execute("DELETE FROM rate_windows WHERE window_start < ?", (now - 2 * WINDOW_S,))


def books(db: sqlite3.Connection, key_id: str) -> Books:
    row = db.execute(
        "SELECT metered, balance_micro_usd, reserved_micro_usd FROM keys WHERE id = ?", (key_id,)
    ).fetchone()
    sums = dict(
        db.execute(
            "SELECT kind, SUM(amount_micro_usd) FROM ledger WHERE key_id = ? GROUP BY kind",
            (key_id,),
        ).fetchall()
    )
    return Books(
        metered=bool(row[0]),
        balance_micro_usd=row[1],
        reserved_micro_usd=row[2],
        spent_micro_usd=-(sums.get("charge") or 0),
        topped_up_micro_usd=sums.get("topup") or 0,
        overrun_micro_usd=-(sums.get("overrun") or 0),
    )


def overrun_total(db: sqlite3.Connection) -> int:
    """What providers billed beyond every key's charges, all keys together."""
    (total,) = db.execute(
        "SELECT -COALESCE(SUM(amount_micro_usd), 0) FROM ledger WHERE kind = 'overrun'"
    ).fetchone()
    return int(total)


def unbalanced_keys(db: sqlite3.Connection) -> list[str]:
    rows = db.execute(
        "SELECT k.id FROM keys k LEFT JOIN ("
        "  SELECT key_id, SUM(CASE WHEN kind = 'overrun' THEN 0 ELSE amount_micro_usd END)"
        "  AS total, "
        "  -SUM(CASE WHEN kind IN ('reserve', 'release') THEN amount_micro_usd ELSE 0 END)"
        "  AS open FROM ledger GROUP BY key_id) l ON l.key_id = k.id "
        "WHERE k.balance_micro_usd != COALESCE(l.total, 0) "
        "OR k.reserved_micro_usd != COALESCE(l.open, 0) "
        "OR (k.metered AND k.balance_micro_usd < 0) "
        "OR EXISTS (SELECT 1 FROM ledger o WHERE o.key_id = k.id AND o.kind = 'overrun' "
        "AND o.amount_micro_usd >= 0)"
    ).fetchall()
    return [row[0] for row in rows]
