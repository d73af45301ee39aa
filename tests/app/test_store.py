"""The Store contract, money half: admission, rate windows, settlement, top-ups, recovery,
the books. Every test runs against each store (``stores.STORES``: memory, and SQLite on
a real file); keys are in ``test_store_keys.py``, activity and logs in
``test_store_records.py``, what only SQLite has in ``test_sqlite_store.py``."""

from __future__ import annotations

import time

import attrs
import pytest

from saferouter.errors import StorageError
from saferouter.storage import ActivityFilter, AdmissionRequest, RateLimits, Store

from .stores import OpenStore, corrupt_balance, make_key, settlement

# the start of a rate window: the tests place requests in it by their ``now``
T0 = 1_800_000_000.0


def ask(key: str, request_id: str, now: float, reserve: int | None = 0) -> AdmissionRequest:
    return AdmissionRequest(key_id=key, request_id=request_id, reserve_micro_usd=reserve, now=now)


async def test_reserve_settle_and_books(store: Store) -> None:
    key = await make_key(store, credits=1000)
    now = time.time()
    admitted = await store.admit(ask(key, "r1", now, 600))
    assert admitted.admitted and admitted.reserved_micro_usd == 600
    assert admitted.balance_micro_usd == 400
    assert (await store.books(key)).reserved_micro_usd == 600
    refused = await store.admit(ask(key, "r2", now, 600))
    assert not refused.admitted and refused.refusal == "insufficient_quota"
    assert (refused.balance_micro_usd, refused.retry_after_s) == (400, 0)
    settled = settlement(key, "r1", now, reserved=600, cost=250)
    await store.settle(settled)
    await store.settle(settled)  # a repeat changes nothing
    books = await store.books(key)
    assert (books.balance_micro_usd, books.reserved_micro_usd, books.spent_micro_usd) == (
        750,
        0,
        250,
    )
    assert books.topped_up_micro_usd == 1000
    assert await store.check_books() == []
    rows = await store.activity(ActivityFilter(key_id=key))
    assert [(r.request_id, r.attempt, r.outcome, r.error_type) for r in rows] == [
        ("r1", 1, "ok", None),
        ("r2", 0, "rejected", "insufficient_quota"),
    ]
    assert rows[1].status == 402


async def test_cost_above_the_reservation_is_an_overrun_never_hidden(store: Store) -> None:
    key = await make_key(store, credits=1000)
    now = time.time()
    await store.admit(ask(key, "r", now, 80))
    await store.settle(settlement(key, "r", now, reserved=80, cost=500))
    books = await store.books(key)
    # the key pays what was reserved; the provider's extra 420 is the operator's loss
    assert (books.balance_micro_usd, books.spent_micro_usd, books.overrun_micro_usd) == (
        920,
        80,
        420,
    )
    (row,) = await store.activity(ActivityFilter(key_id=key))
    assert (row.cost_micro_usd, row.overrun_micro_usd) == (80, 420)
    assert await store.overrun_micro_usd() == 420
    assert await store.check_books() == []


async def test_overruns_add_up_over_keys(store: Store) -> None:
    first, second = await make_key(store, credits=100), await make_key(store, credits=100)
    now = time.time()
    for key, cost in ((first, 130), (second, 160)):
        await store.admit(ask(key, f"r-{key}", now, 100))
        await store.settle(settlement(key, f"r-{key}", now, reserved=100, cost=cost))
    assert await store.overrun_micro_usd() == 30 + 60
    assert (await store.books(first)).overrun_micro_usd == 30


async def test_a_metered_key_is_refused_a_request_with_no_bound(store: Store) -> None:
    metered, unmetered = await make_key(store, credits=10**9), await make_key(store, credits=None)
    now = time.time()
    refused = await store.admit(ask(metered, "m", now, None))
    assert not refused.admitted and refused.refusal == "unsupported_content"
    assert (await store.books(metered)).balance_micro_usd == 10**9
    (row,) = await store.activity(ActivityFilter(key_id=metered))
    assert (row.status, row.outcome, row.error_type) == (400, "rejected", "unsupported_content")
    admitted = await store.admit(ask(unmetered, "u", now, None))
    assert admitted.admitted


async def test_a_key_with_zero_credits_is_metered(store: Store) -> None:
    key = await make_key(store, credits=0)
    record = await store.key_by_id(key)
    assert record is not None and record.metered and record.balance_micro_usd == 0
    assert (await store.admit(ask(key, "free", time.time(), 0))).admitted
    refused = await store.admit(ask(key, "paid", time.time(), 1))
    assert refused.refusal == "insufficient_quota"


async def test_only_the_own_keys_worst_case_is_reserved_when_the_whole_does_not_fit(
    store: Store,
) -> None:
    key = await make_key(store, credits=100)
    now = time.time()

    def narrowable(request_id: str, reserve: int, own: int) -> AdmissionRequest:
        return attrs.evolve(ask(key, request_id, now, reserve), own_keys_reserve_micro_usd=own)

    whole = await store.admit(narrowable("whole", 60, 10))  # it fits: all of it is held
    assert (whole.admitted, whole.own_keys_only, whole.reserved_micro_usd) == (True, False, 60)
    narrowed = await store.admit(narrowable("own", 90, 30))  # 40 left: only 30 fit
    assert (narrowed.admitted, narrowed.own_keys_only, narrowed.reserved_micro_usd) == (
        True,
        True,
        30,
    )
    assert (await store.books(key)).reserved_micro_usd == 90
    refused = await store.admit(narrowable("none", 90, 20))  # 10 left: not even that
    assert refused.refusal == "insufficient_quota" and not refused.own_keys_only
    rows = await store.activity(ActivityFilter(key_id=key))
    assert [(r.request_id, r.outcome) for r in rows] == [("none", "rejected")]  # one refusal


async def test_topping_up_an_unmetered_key_is_explicit(store: Store) -> None:
    key = await make_key(store, credits=None)
    now = time.time()
    await store.admit(ask(key, "r", now, 99))
    await store.settle(settlement(key, "r", now, cost=42))
    left = await store.top_up(key, 5000)
    assert left is not None and not left.metered  # nothing changed, and the caller sees it
    assert (await store.books(key)).topped_up_micro_usd == 0
    made = await store.top_up(key, 5000, make_metered=True)
    assert made is not None and made.metered and made.balance_micro_usd == 5000
    books = await store.books(key)
    # it starts metered at zero: the 42 spent unmetered is not taken from the credit
    assert (books.balance_micro_usd, books.spent_micro_usd) == (5000, 42)
    assert await store.check_books() == []


async def test_top_up_adds_to_a_metered_key_and_names_no_stranger(store: Store) -> None:
    key = await make_key(store, credits=100)
    topped = await store.top_up(key, 250)
    assert topped is not None and topped.balance_micro_usd == 350
    assert (await store.books(key)).topped_up_micro_usd == 350
    assert await store.top_up("key_none", 250) is None


async def test_recover_releases_open_reservations(open_store: OpenStore) -> None:
    store, survivor = open_store(), open_store()  # (a sweep never releases its own)
    key = await make_key(store, credits=1000)
    for i in range(3):
        await store.admit(ask(key, f"r{i}", time.time(), 100))
    await store.settle(settlement(key, "r0", time.time(), reserved=100, cost=10))
    assert (await store.books(key)).reserved_micro_usd == 200
    assert await survivor.recover() == 2
    assert await survivor.recover() == 0
    books = await store.books(key)
    assert books.balance_micro_usd == 990 and books.reserved_micro_usd == 0
    assert await store.check_books() == []


async def test_old_activity_is_pruned(open_store: OpenStore) -> None:
    store = open_store(activity_retention_days=1)
    key = await make_key(store, credits=None)
    now = time.time()
    await store.settle(settlement(key, "old", now, created_at=now - 2 * 86400))
    await store.settle(settlement(key, "new", now + 601, created_at=now))
    rows = await store.activity(ActivityFilter(key_id=key))
    assert [r.request_id for r in rows] == ["new"]


async def test_unmetered_keys_record_spend_without_limits(store: Store) -> None:
    key = await make_key(store, credits=None)
    now = time.time()
    admitted = await store.admit(ask(key, "r", now, 10**9))
    assert admitted.admitted and admitted.reserved_micro_usd == 0
    await store.settle(settlement(key, "r", now, cost=42))
    books = await store.books(key)
    assert not books.metered and books.spent_micro_usd == 42
    assert books.balance_micro_usd == -42
    assert await store.check_books() == []


async def test_requests_per_minute_refuse_until_the_next_window(store: Store) -> None:
    key = await make_key(store, credits=None, rpm=2)
    first = await store.admit(ask(key, "a", T0 + 10))
    assert (first.rate_limit, first.rate_remaining, first.rate_reset_s) == (2, 1, 50.0)
    second = await store.admit(ask(key, "b", T0 + 20))
    assert second.admitted and second.rate_remaining == 0
    refused = await store.admit(ask(key, "c", T0 + 30.5))
    assert not refused.admitted and refused.refusal == "requests_per_minute"
    assert (refused.rate_limit, refused.rate_remaining, refused.retry_after_s) == (2, 0, 30)
    assert refused.rate_reset_s == 29.5
    (row,) = await store.activity(ActivityFilter(key_id=key, status="429"))
    assert (row.request_id, row.error_type) == ("c", "requests_per_minute")
    # a refusal is not counted: the next window starts empty
    assert (await store.admit(ask(key, "d", T0 + 60))).rate_remaining == 1


async def test_tokens_per_minute_count_what_settlements_used(store: Store) -> None:
    key = await make_key(store, credits=None, tpm=100)
    await store.admit(ask(key, "a", T0))
    await store.settle(settlement(key, "a", T0 + 1, tokens=99))
    assert (await store.admit(ask(key, "b", T0 + 2))).admitted
    await store.settle(settlement(key, "b", T0 + 3, tokens=1))
    refused = await store.admit(ask(key, "c", T0 + 4))
    assert refused.refusal == "tokens_per_minute" and refused.retry_after_s == 56
    assert refused.rate_limit is None  # the headers speak of requests per minute only
    assert (await store.admit(ask(key, "d", T0 + 60))).admitted


async def test_new_limits_apply_to_the_current_window(store: Store) -> None:
    key = await make_key(store, credits=None)
    for i in range(3):
        await store.admit(ask(key, f"r{i}", T0 + i))
    await store.update_key(key, limits=RateLimits(requests_per_minute=3))
    assert (await store.admit(ask(key, "r3", T0 + 5))).refusal == "requests_per_minute"
    await store.update_key(key, limits=RateLimits())
    assert (await store.admit(ask(key, "r4", T0 + 6))).admitted


async def test_a_revoked_or_unknown_key_is_refused_without_a_trace(store: Store) -> None:
    key = await make_key(store, credits=1000)
    await store.revoke_key(key)
    for key_id in (key, "key_none"):
        refused = await store.admit(ask(key_id, f"r-{key_id}", time.time(), 10))
        assert (refused.admitted, refused.refusal) == (False, "revoked")
    assert await store.activity(ActivityFilter()) == []
    assert (await store.books(key)).balance_micro_usd == 1000


async def test_a_failed_admission_leaves_nothing_behind(store: Store) -> None:
    key = await make_key(store, credits=1000, rpm=5)
    await store.admit(ask(key, "same", T0, 100))
    # the same request id reserved twice: the ledger refuses the second, and the
    # request it counted in the rate window goes with it
    with pytest.raises(StorageError):
        await store.admit(ask(key, "same", T0 + 1, 100))
    assert (await store.admit(ask(key, "next", T0 + 2, 100))).rate_remaining == 3
    books = await store.books(key)
    assert (books.balance_micro_usd, books.reserved_micro_usd) == (800, 200)
    assert await store.check_books() == []


async def test_settling_for_no_key_fails_and_the_store_goes_on(store: Store) -> None:
    with pytest.raises(StorageError):
        await store.settle(settlement("key_none", "r", time.time(), cost=5))
    key = await make_key(store, credits=None)  # a write after the failed one works
    await store.settle(settlement(key, "r", time.time(), cost=5))
    assert (await store.books(key)).spent_micro_usd == 5
    with pytest.raises(StorageError):
        await store.books("key_none")


async def test_check_books_reads_the_ledger(store: Store) -> None:
    await make_key(store, credits=500)  # sound: never listed
    damaged = await make_key(store, credits=500)
    await store.admit(ask(damaged, "r", time.time(), 100))
    corrupt_balance(store, damaged, 1)
    assert await store.check_books() == [damaged]
    corrupt_balance(store, damaged, -1)
    assert await store.check_books() == []
