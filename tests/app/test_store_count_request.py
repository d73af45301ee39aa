"""The Store contract for a request that reserves nothing (``count_request``, Anthropic's
``count_tokens``): it counts against the key's requests per minute in the same window
as admitted requests, is refused when they are used up, writes no activity and moves no
money. Every test runs against each store (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from saferouter.storage import ActivityFilter, AdmissionRequest, Store

from .stores import make_key

T0 = 1_800_000_000.0  # the start of a rate window


def ask(key: str, request_id: str, now: float) -> AdmissionRequest:
    return AdmissionRequest(key_id=key, request_id=request_id, reserve_micro_usd=0, now=now)


async def test_counted_requests_use_the_requests_per_minute_until_the_next_window(
    store: Store,
) -> None:
    key = await make_key(store, credits=1000, rpm=2)
    first = await store.count_request(key, T0 + 10)
    assert first.admitted and (first.rate_limit, first.rate_remaining) == (2, 1)
    assert first.rate_reset_s == 50.0
    assert (await store.count_request(key, T0 + 20)).admitted
    refused = await store.count_request(key, T0 + 30.5)
    assert not refused.admitted and refused.refusal == "requests_per_minute"
    assert (refused.rate_limit, refused.rate_remaining, refused.retry_after_s) == (2, 0, 30)
    # the window is the one every request of the key counts in: an admission too
    assert (await store.admit(ask(key, "r", T0 + 40))).refusal == "requests_per_minute"
    # nothing written of the counted ones (the refused admission's entry alone), and
    # no money moved
    assert [e.request_id for e in await store.activity(ActivityFilter(key_id=key))] == ["r"]
    books = await store.books(key)
    assert (books.balance_micro_usd, books.reserved_micro_usd) == (1000, 0)
    assert (await store.count_request(key, T0 + 60)).rate_remaining == 1  # a new window


async def test_an_admitted_request_uses_up_what_count_request_may_use(store: Store) -> None:
    key = await make_key(store, credits=None, rpm=1)
    assert (await store.admit(ask(key, "r", T0))).admitted
    refused = await store.count_request(key, T0 + 1)
    assert refused.refusal == "requests_per_minute" and refused.retry_after_s == 59


async def test_without_a_limit_every_count_is_admitted_and_counted(store: Store) -> None:
    key = await make_key(store, credits=None)
    for i in range(5):
        counted = await store.count_request(key, T0 + i)
        assert counted.admitted and counted.rate_limit is None
    assert await store.activity(ActivityFilter(key_id=key)) == []


async def test_a_revoked_or_unknown_key_is_refused(store: Store) -> None:
    key = await make_key(store, rpm=10)
    await store.revoke_key(key)
    for key_id in (key, "key_none"):
        refused = await store.count_request(key_id, T0)
        assert (refused.admitted, refused.refusal) == (False, "revoked")
    assert await store.activity(ActivityFilter()) == []
