"""The Store contract, one request's record (issue 15): the fields every attempt carries
(the API, the response id, the finish reason, the calling app, routing's note, the
cache-write tokens), the lookups by request id or response id — never across keys —
and the filter by app. Runs against each store (``stores.py``), PostgreSQL included."""

from __future__ import annotations

import attrs
import pytest

from saferouter.storage import ActivityEntry, ActivityFilter, AdmissionRequest, Settlement, Store

from .stores import T0, entry, make_key, record

FAILED = {"status": 502, "outcome": "error", "provider": "q"}
SERVED = {"response_id": "chatcmpl-1", "finish_reason": "stop"}


@pytest.fixture
async def two_keys(store: Store) -> tuple[str, str]:
    """Key ``a``: request ``r1`` (a failed attempt, then one serving ``chatcmpl-1``) and
    ``r2`` (serving ``resp_2``); key ``b``: ``r3`` (serving ``msg_3``)."""
    a, b = await make_key(store, credits=None), await make_key(store, credits=None)
    await record(store, a, "r1", FAILED, SERVED)
    await record(store, a, "r2", {"response_id": "resp_2", "api": "responses"})
    await record(store, b, "r3", {"response_id": "msg_3", "api": "messages"})
    return a, b


def attempts(rows: list[ActivityEntry]) -> list[tuple[str, int]]:
    return [(r.request_id, r.attempt) for r in rows]


async def test_every_new_field_reads_back(store: Store) -> None:
    key = await make_key(store, credits=None)
    written = entry(
        "r",
        key,
        T0,
        api="messages",
        response_id="msg_01",
        finish_reason="end_turn",
        app_title="Claude Code",
        app_referer="https://example.com/app",
        note="skipped models: foo (not in the catalog)",
        cache_write_tokens=41,
        prompt_tokens=100,
    )
    await store.settle(
        Settlement(
            key_id=key,
            request_id="r",
            reserved_micro_usd=0,
            cost_micro_usd=0,
            tokens=0,
            attempts=(written,),
            now=T0,
        )
    )
    (read,) = await store.activity(ActivityFilter(key_id=key))
    assert attrs.evolve(read, id=None) == written
    assert read.app == "Claude Code"


async def test_an_entry_without_them_reads_as_chat_from_no_app(store: Store) -> None:
    key = await make_key(store, credits=None)
    await record(store, key, "r", {})
    (read,) = await store.activity(ActivityFilter(key_id=key))
    assert (read.api, read.response_id, read.finish_reason, read.app, read.note) == (
        "chat",
        None,
        None,
        None,
        None,
    )
    assert read.cache_write_tokens == 0


async def test_a_request_is_found_by_its_id_or_its_response_id(
    store: Store, two_keys: tuple[str, str]
) -> None:
    a, _ = two_keys
    by_request = await store.find_request(a, "r1")
    assert attempts(by_request) == [("r1", 1), ("r1", 2)]  # every attempt, in order
    assert attempts(await store.find_request(a, "chatcmpl-1")) == attempts(by_request)
    (served,) = await store.find_request(a, "resp_2")
    assert (served.request_id, served.api) == ("r2", "responses")
    assert await store.find_request(a, "nothing") == []


async def test_another_keys_request_is_not_found_but_an_admin_finds_any(
    store: Store, two_keys: tuple[str, str]
) -> None:
    a, b = two_keys
    assert await store.find_request(a, "r3") == []
    assert await store.find_request(a, "msg_3") == []
    assert await store.find_request(b, "chatcmpl-1") == []
    assert attempts(await store.find_request(None, "msg_3")) == [("r3", 1)]
    assert attempts(await store.find_request(None, "r1")) == [("r1", 1), ("r1", 2)]


async def test_a_reused_response_id_finds_the_newest_request(store: Store) -> None:
    key = await make_key(store, credits=None)
    await record(store, key, "old", {"response_id": "same"})
    await record(store, key, "new", {"response_id": "same"})
    assert attempts(await store.find_request(key, "same")) == [("new", 1)]
    served = await store.served_response(key, "same")
    assert served is not None and served.request_id == "new"


async def test_the_served_response_is_the_keys_own(store: Store, two_keys: tuple[str, str]) -> None:
    a, b = two_keys
    served = await store.served_response(a, "chatcmpl-1")
    assert served is not None
    assert (served.request_id, served.attempt, served.finish_reason) == ("r1", 2, "stop")
    assert await store.served_response(b, "chatcmpl-1") is None  # b never served it
    assert await store.served_response(a, "msg_3") is None
    assert await store.served_response(a, "r1") is None  # a request id is no response id


async def test_a_refusal_records_the_api_and_the_app(store: Store) -> None:
    key = await make_key(store, credits=0)
    admission = await store.admit(
        AdmissionRequest(
            key_id=key,
            request_id="z",
            reserve_micro_usd=5,
            now=T0,
            api="responses",
            app_title="My App",
            app_referer="https://my.app",
            note="skipped models: x (not in the catalog)",
        )
    )
    assert not admission.admitted
    (refused,) = await store.find_request(key, "z")
    assert (refused.attempt, refused.api, refused.app_title, refused.app_referer) == (
        0,
        "responses",
        "My App",
        "https://my.app",
    )
    assert refused.note == "skipped models: x (not in the catalog)"


async def test_activity_filters_by_app_title_else_referer(store: Store) -> None:
    key = await make_key(store, credits=None)
    await record(store, key, "titled", {"app_title": "Cline", "app_referer": "https://c"})
    await record(store, key, "referred", {"app_referer": "https://r.example"})
    await record(store, key, "anonymous", {})

    async def found(app: str) -> list[str]:
        rows = await store.activity(ActivityFilter(key_id=key, app=app))
        return [r.request_id for r in rows]

    assert await found("Cline") == ["titled"]
    assert await found("https://r.example") == ["referred"]
    assert await found("https://c") == []  # a titled app goes by its title


async def test_spent_since_sums_the_keys_costs_from_each_time(store: Store) -> None:
    a, b = await make_key(store, credits=None), await make_key(store, credits=None)
    await record(store, a, "day1", {"created_at": T0, "cost_micro_usd": 5})
    await record(store, a, "day2", {"created_at": T0 + 86400, "cost_micro_usd": 7})
    await record(store, b, "other", {"created_at": T0 + 86400, "cost_micro_usd": 1000})
    assert await store.spent_since(a, [T0, T0 + 1, T0 + 86400, T0 + 86401]) == [12, 7, 7, 0]
    assert await store.spent_since(b, [T0 + 2 * 86400]) == [0]
    assert await store.spent_since(a, []) == []
