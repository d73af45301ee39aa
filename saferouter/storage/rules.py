"""The store's rules, as pure functions: every decision a store makes in Python, written
once so that the SQLite store (:mod:`.sqlite`) and the memory store (:mod:`.memory`)
cannot disagree. What SQLite computes in SQL (sums, joins) the memory store computes
over its own tables; the contract suite (``tests/app/test_store.py``) holds both to the
same answers.

The rate window is a fixed minute (``WINDOW_S``) counted per key: requests at admission,
tokens at settlement. A ledger entry moves a key's balance when its kind is one of
``BALANCE_KINDS``; ``reserve`` and ``release`` also move what is reserved (see
:mod:`.ledger` for what each kind means).
"""

from __future__ import annotations

import enum
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import attrs

from ..accounting import split_charge
from .records import (
    ActivityEntry,
    ActivityFilter,
    ActivityOutcome,
    Admission,
    AdmissionRequest,
    Books,
    ByokKey,
    LedgerKind,
    Refusal,
    Settlement,
)

WINDOW_S = 60
# rate windows older than this are pruned: the current and the previous one are kept
WINDOW_KEEP_S = 2 * WINDOW_S
PRUNE_EVERY_S = 600
# the kinds that move a key's balance; ``overrun`` is the operator's, outside it
BALANCE_KINDS = frozenset(LedgerKind) - {LedgerKind.OVERRUN}
# a request with one of these in the ledger (or an attempt in the activity log) is
# settled: settling it again does nothing. Not a ``release`` alone: recovery writes one
CHARGED_KINDS = frozenset({LedgerKind.CHARGE, LedgerKind.OVERRUN})
REFUSAL_STATUS = {
    Refusal.INSUFFICIENT_QUOTA: 402,
    Refusal.REQUESTS_PER_MINUTE: 429,
    Refusal.TOKENS_PER_MINUTE: 429,
    Refusal.REVOKED: 401,
    Refusal.UNSUPPORTED_CONTENT: 400,
}


def window_start(now: float) -> int:
    """The start of the rate window ``now`` falls in (unix seconds)."""
    return int(now // WINDOW_S) * WINDOW_S


def balance_effect(kind: str, amount_micro_usd: int) -> tuple[int, int]:
    """How a ledger entry changes a key's ``(balance, reserved)``."""
    if kind not in BALANCE_KINDS:
        return 0, 0
    moves_reserved = kind in (LedgerKind.RESERVE, LedgerKind.RELEASE)
    return amount_micro_usd, -amount_micro_usd if moves_reserved else 0


def decide_admission(
    request: AdmissionRequest,
    *,
    metered: bool,
    balance_micro_usd: int,
    rpm_limit: int | None,
    tpm_limit: int | None,
    used_requests: int,
    used_tokens: int,
) -> Admission:
    """Admit or refuse a request of an active key, given what its rate window holds.
    An admitted request's ``reserved_micro_usd`` is what the store must reserve: the
    whole worst case, or — when only that of the attempts with the key's own provider
    keys fits — that one (``own_keys_only``)."""
    reset_s = window_start(request.now) + WINDOW_S - request.now
    refusal = None
    reserve, own_keys_only = request.reserve_micro_usd or 0, False
    own_reserve = request.own_keys_reserve_micro_usd
    if metered and request.reserve_micro_usd is None:
        refusal = Refusal.UNSUPPORTED_CONTENT  # no bound on its cost: a metered key can't pay
    elif rpm_limit is not None and used_requests >= rpm_limit:
        refusal = Refusal.REQUESTS_PER_MINUTE
    elif tpm_limit is not None and used_tokens >= tpm_limit:
        refusal = Refusal.TOKENS_PER_MINUTE
    elif metered and balance_micro_usd < reserve:
        if own_reserve is not None and balance_micro_usd >= own_reserve:
            reserve, own_keys_only = own_reserve, True
        else:
            refusal = Refusal.INSUFFICIENT_QUOTA
    if refusal is not None:
        return _refused(refusal, reset_s, rpm_limit, used_requests, balance_micro_usd)
    reserved = reserve if metered else 0
    return Admission(
        admitted=True,
        reserved_micro_usd=reserved,
        own_keys_only=own_keys_only,
        balance_micro_usd=balance_micro_usd - reserved,
        rate_remaining=rpm_limit - used_requests - 1 if rpm_limit is not None else None,
        rate_limit=rpm_limit,
        rate_reset_s=reset_s,
    )


def decide_count(now: float, *, rpm_limit: int | None, used_requests: int) -> Admission:
    """Admit or refuse a request that reserves and spends nothing (Anthropic's
    ``count_tokens``): it counts against the key's requests per minute, as every
    request does, and nothing else applies."""
    reset_s = window_start(now) + WINDOW_S - now
    if rpm_limit is not None and used_requests >= rpm_limit:
        return _refused(Refusal.REQUESTS_PER_MINUTE, reset_s, rpm_limit, used_requests, 0)
    return Admission(
        admitted=True,
        rate_remaining=rpm_limit - used_requests - 1 if rpm_limit is not None else None,
        rate_limit=rpm_limit,
        rate_reset_s=reset_s,
    )


def _refused(
    refusal: Refusal, reset_s: float, rpm_limit: int | None, used_requests: int, balance: int
) -> Admission:
    return Admission(
        admitted=False,
        refusal=refusal,
        balance_micro_usd=balance,
        rate_remaining=max(0, rpm_limit - used_requests) if rpm_limit is not None else None,
        retry_after_s=math.ceil(reset_s) if refusal is not Refusal.INSUFFICIENT_QUOTA else 0,
        rate_limit=rpm_limit,
        rate_reset_s=reset_s,
    )


def refusal_entry(request: AdmissionRequest, refusal: Refusal) -> ActivityEntry:
    """The activity entry (attempt 0) that records a refused request."""
    return ActivityEntry(
        request_id=request.request_id,
        attempt=0,
        created_at=request.now,
        key_id=request.key_id,
        requested_model=request.requested_model,
        served_model=None,
        provider=None,
        original_model=None,
        status=REFUSAL_STATUS[refusal],
        outcome=ActivityOutcome.REJECTED,
        streamed=request.streamed,
        error_type=refusal,
        api=request.api,
        app_title=request.app_title,
        app_referer=request.app_referer,
        note=request.note,
    )


class Prior(enum.Enum):
    """What the books already hold of a request a settlement comes for."""

    OPEN = "open"  # its reservation (if any) still open: release it, then charge
    SETTLED = "settled"  # settled before: never charge twice
    # its reservation released by recovery (its process looked dead: a lease that
    # lapsed in a database outage, a stalled process), yet it completed: charge it
    # now, out of what the key holds, and record its activity
    RECOVERED = "recovered"


def prior_settlement(kinds: Iterable[str], *, recorded: bool) -> Prior:
    """Where a settlement stands, from the kinds of ledger entries of its request and
    whether the activity log has an attempt of it (every settlement writes one)."""
    present = set(kinds)
    if recorded or present & CHARGED_KINDS:
        return Prior.SETTLED
    return Prior.RECOVERED if LedgerKind.RELEASE in present else Prior.OPEN


@attrs.frozen
class Charges:
    """What a settlement writes once its reservation is released."""

    charge_micro_usd: int
    overrun_micro_usd: int
    attempts: tuple[ActivityEntry, ...]


def split_settlement(
    s: Settlement, *, metered: bool, balance_micro_usd: int, prior: Prior = Prior.OPEN
) -> Charges:
    """Split the cost into the key's charge and the operator's overrun, given the key's
    balance after the release; the serving attempt's entry carries the split."""
    # A metered key pays at most what was reserved for the request (if nothing was, it
    # was unmetered at admission; if recovery released it, it was spent elsewhere
    # meanwhile: at most its balance), so it never goes below zero.
    cap = None
    if metered:
        cap = max(balance_micro_usd, 0)
        if s.reserved_micro_usd and prior is Prior.OPEN:
            cap = min(cap, s.reserved_micro_usd)
    charge, overrun = split_charge(s.cost_micro_usd, cap)
    attempts = tuple(
        attrs.evolve(a, cost_micro_usd=a.cost_micro_usd - overrun, overrun_micro_usd=overrun)
        if overrun and a.cost_micro_usd  # only the serving attempt has a cost
        else a
        for a in s.attempts
    )
    return Charges(charge_micro_usd=charge, overrun_micro_usd=overrun, attempts=attempts)


@attrs.define
class PruneSchedule:
    """When a settlement also prunes old activity and rate windows: every
    ``PRUNE_EVERY_S`` of settlement time, the first one at once."""

    next_at: float = 0.0

    def due(self, now: float) -> bool:
        """Whether to prune now (and if so, not again for ``PRUNE_EVERY_S``)."""
        if now < self.next_at:
            return False
        self.next_at = now + PRUNE_EVERY_S
        return True


def books_from_sums(
    *, metered: bool, balance_micro_usd: int, reserved_micro_usd: int, sums: Mapping[str, int]
) -> Books:
    """A key's books from its row and the sum of its ledger entries of each kind."""
    return Books(
        metered=metered,
        balance_micro_usd=balance_micro_usd,
        reserved_micro_usd=reserved_micro_usd,
        spent_micro_usd=-(sums.get(LedgerKind.CHARGE) or 0),
        topped_up_micro_usd=sums.get(LedgerKind.TOPUP) or 0,
        overrun_micro_usd=-(sums.get(LedgerKind.OVERRUN) or 0),
    )


# --- leases ---------------------------------------------------------------------------


def owner_is_gone(
    owner: str | None,
    lease_expires_at: float | None,
    now: float,
    *,
    replica: str | None,
    caller: str | None = None,
) -> bool:
    """Whether what ``owner`` holds (open reservations, pending receipts) is abandoned:
    it has no lease valid at ``now`` (none taken, ended, expired, or no owner at all, a
    run from before leases), or it is one of ``replica``'s processes, which the caller
    vouches are all gone (a restart holding the data dir's lock). A lease running at
    ``now`` is never overruled otherwise: that process is serving. Nor is the
    ``caller``'s own: a process sweeping is alive, whatever its lease (a renewal held up
    by a busy database) says."""
    if owner is not None and owner == caller:
        return False
    if owner is None:
        return True
    if replica is not None and owner.startswith(replica + "/"):
        return True
    return lease_expires_at is None or lease_expires_at <= now


# --- BYOK keys ------------------------------------------------------------------------


def replacing_byok(old: ByokKey | None, new: ByokKey) -> ByokKey:
    """What a put of ``new`` stores where ``old`` was: ``new``, but created when the
    key's first one for that provider was (a replaced key is updated, not created)."""
    return new if old is None else attrs.evolve(new, created_at=old.created_at)


def with_byok_fallback(key: ByokKey, fallback: bool, now: float) -> ByokKey:
    """``key`` with its ``fallback`` set; unchanged, ``updated_at`` included, when it
    already was (no write, so no worker's cached key is dropped for nothing)."""
    if key.fallback == fallback:
        return key
    return attrs.evolve(key, fallback=fallback, updated_at=now)


# --- activity -------------------------------------------------------------------------

ActivityField = Literal[
    "key_id", "model", "provider", "created_at", "id", "status", "outcome", "app"
]
Operator = Literal["=", "!=", ">=", "<"]


def model_of(entry: ActivityEntry) -> str:
    """The model an entry counts under: the one that served, else the one asked for."""
    return entry.served_model if entry.served_model is not None else entry.requested_model


@attrs.frozen
class Condition:
    """One test an activity entry must pass: ``field op value``."""

    field: ActivityField
    op: Operator
    value: str | int | float

    def holds(self, entry: ActivityEntry) -> bool:
        """Whether ``entry`` passes, as SQL would judge it (a NULL passes nothing)."""
        have: Any = model_of(entry) if self.field == "model" else getattr(entry, self.field)
        return have is not None and _COMPARE[self.op](have, self.value)


_COMPARE: dict[Operator, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<": operator.lt,
}


def activity_conditions(q: ActivityFilter) -> list[Condition]:
    """The tests an entry must pass to be in the answer to ``q``."""
    wanted: list[tuple[ActivityField, Operator, str | int | float | None]] = [
        ("key_id", "=", q.key_id),
        ("model", "=", q.model),
        ("provider", "=", q.provider),
        ("app", "=", q.app),
        ("created_at", ">=", q.since),
        ("created_at", "<", q.until),
        ("id", "<", q.before_id),
    ]
    conditions = [Condition(f, op, value) for f, op, value in wanted if value is not None]
    if q.status is not None:
        if q.status == "error":
            conditions.append(Condition("outcome", "!=", ActivityOutcome.OK))
        # ASCII digits only: "²".isdigit() holds but int("²") fails, and "١٢" is no status
        elif q.status.isascii() and q.status.isdigit():
            conditions.append(Condition("status", "=", int(q.status)))
        else:
            conditions.append(Condition("outcome", "=", q.status))
    return conditions


def filled_prefix(rows: Iterable[tuple[int, bytes | None]]) -> list[bytes]:
    """The leaf hashes of the longest run of filled entries from index 0, from
    ``(index, leaf hash or None while pending)`` in index order."""
    out: list[bytes] = []
    for index, leaf in rows:
        if leaf is None or index != len(out):
            break
        out.append(bytes(leaf))
    return out
