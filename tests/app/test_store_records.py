"""The Store contract, records: the activity log (filters, paging, usage by model) and
the logs (append, entries, leaves; receipts are in ``test_store_receipts.py``). Runs
against each store (``stores.py``)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest

from saferouter.errors import StorageError
from saferouter.storage import (
    ActivityEntry,
    ActivityFilter,
    AdmissionRequest,
    NewLogEntry,
    Store,
)
from saferouter.translog import merkle

from .stores import T0, leaves, make_key, record


@pytest.fixture
async def logged(store: Store) -> tuple[str, str]:
    """Two keys' activity: ``a`` (three requests, one with a fallback) and ``b``."""
    a, b = await make_key(store, credits=None), await make_key(store, credits=None)
    await record(store, a, "a1", {"created_at": T0 + 1, "cost_micro_usd": 30})
    await record(
        store,
        a,
        "a2",
        {"created_at": T0 + 2, "provider": "q", "status": 502, "outcome": "error"},
        {"created_at": T0 + 3, "served_model": "n", "cost_micro_usd": 70, "prompt_tokens": 5},
    )
    await record(
        store,
        a,
        "a3",
        {"created_at": T0 + 4, "served_model": None, "provider": None, "outcome": "cancelled"},
    )
    await record(
        store, b, "b1", {"created_at": T0 + 5, "requested_model": "x", "served_model": None}
    )
    return a, b


def ids(rows: Sequence[ActivityEntry]) -> list[tuple[str, int]]:
    return [(r.request_id, r.attempt) for r in rows]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (ActivityFilter(), [("a3", 1), ("a2", 2), ("a2", 1), ("a1", 1)]),
        (ActivityFilter(model="m"), [("a3", 1), ("a2", 1), ("a1", 1)]),  # served, else asked
        (ActivityFilter(model="n"), [("a2", 2)]),
        (ActivityFilter(provider="q"), [("a2", 1)]),
        (ActivityFilter(status="ok"), [("a2", 2), ("a1", 1)]),
        (ActivityFilter(status="error"), [("a3", 1), ("a2", 1)]),
        (ActivityFilter(status="502"), [("a2", 1)]),
        (ActivityFilter(status="cancelled"), [("a3", 1)]),
        (ActivityFilter(status="²"), []),  # a digit to str.isdigit, not a status
        (ActivityFilter(status="٢٠٠"), []),  # neither are other scripts' digits
        (ActivityFilter(since=T0 + 2, until=T0 + 4), [("a2", 2), ("a2", 1)]),
        (ActivityFilter(limit=2), [("a3", 1), ("a2", 2)]),
    ],
    ids=repr,
)
async def test_activity_filters(
    store: Store, logged: tuple[str, str], query: ActivityFilter, expected: list[tuple[str, int]]
) -> None:
    a, _ = logged
    assert ids(await store.activity(attrs.evolve(query, key_id=a))) == expected


async def test_activity_pages_newest_first_across_keys(
    store: Store, logged: tuple[str, str]
) -> None:
    a, b = logged
    everyone = await store.activity(ActivityFilter())
    assert ids(everyone) == [("b1", 1), ("a3", 1), ("a2", 2), ("a2", 1), ("a1", 1)]
    assert {r.key_id for r in everyone} == {a, b}
    page = await store.activity(ActivityFilter(limit=2))
    assert page[-1].id is not None
    rest = await store.activity(ActivityFilter(before_id=page[-1].id))
    assert ids(page) + ids(rest) == ids(everyone)
    assert [r.id for r in everyone] == sorted((r.id for r in everyone), reverse=True)


async def test_activity_since_and_usage_by_model(store: Store, logged: tuple[str, str]) -> None:
    a, b = logged
    assert ids(await store.activity_since(T0 + 3, a)) == [("a3", 1), ("a2", 2)]
    assert ids(await store.activity_since(T0 + 3, None)) == [("b1", 1), ("a3", 1), ("a2", 2)]
    refused = await make_key(store, credits=0)
    # a refusal (attempt 0) is activity, but no usage
    await store.admit(
        AdmissionRequest(key_id=refused, request_id="z", reserve_micro_usd=None, now=T0)
    )
    assert ids(await store.activity(ActivityFilter(key_id=refused))) == [("z", 0)]
    assert await store.usage_by_model(refused) == []
    usage = await store.usage_by_model(a)
    assert [(u.model, u.requests, u.cost_micro_usd, u.prompt_tokens) for u in usage] == [
        ("n", 1, 70, 5),
        ("m", 3, 30, 0),
    ]
    assert [u.model for u in await store.usage_by_model(b)] == ["x"]


async def test_an_attempt_is_recorded_once(store: Store) -> None:
    key = await make_key(store, credits=None)
    await record(store, key, "r", {"cost_micro_usd": 0})
    await record(store, key, "r", {"outcome": "error"})  # settled with no ledger entry
    (row,) = await store.activity(ActivityFilter(key_id=key))
    assert row.outcome == "ok"


def made(body: bytes) -> NewLogEntry:
    return NewLogEntry(body=body, leaf_hash=b"leaf:" + body)


async def root(store: Store, log: str) -> bytes:
    """The root of the log's tree, from the O(log n) stored nodes it needs."""
    span = (0, await store.log_size(log))
    return merkle.span_hash(span, await store.log_nodes(log, merkle.node_ids([span])))


async def test_log_append_hands_on_the_previous_body(store: Store) -> None:
    seen: list[tuple[int, bytes | None]] = []

    def make(index: int, previous: bytes | None) -> NewLogEntry:
        seen.append((index, previous))
        return made(b"e%d" % index)

    first = await store.log_append("startup", make)
    second = await store.log_append("startup", make)
    assert (first.index, first.body, second.index) == (0, b"e0", 1)
    assert seen == [(0, None), (1, b"e0")]
    assert (await store.log_append("other", make)).index == 0  # each log its own
    assert await leaves(store, "startup") == [b"leaf:e0", b"leaf:e1"]
    (entry_1,) = await store.log_entries("startup", 1, 10)
    assert (entry_1.body, entry_1.key_id, entry_1.request_id) == (b"e1", None, None)


async def test_a_failed_append_leaves_no_entry(store: Store) -> None:
    def broken(index: int, previous: bytes | None) -> NewLogEntry:
        raise ValueError("the entry could not be made")

    with pytest.raises(ValueError, match="could not be made"):
        await store.log_append("startup", broken)
    assert await store.log_entries("startup", 0, 10) == []
    assert (await store.log_append("startup", lambda i, p: made(b"ok"))).index == 0


async def test_every_node_of_the_tree_is_stored_as_its_last_leaf_arrives(store: Store) -> None:
    bodies: list[bytes] = []
    for size in range(1, 34):
        await store.log_append("startup", lambda i, previous: made(b"e%d" % i))
        bodies.append(b"leaf:e%d" % (size - 1))
        assert await store.log_size("startup") == size
        # every perfect subtree inside the tree, at every level, holds its leaves' MTH
        perfect = [
            (level, index) for level in range(size.bit_length()) for index in range(size >> level)
        ]
        nodes = await store.log_nodes("startup", perfect)
        for level, index in perfect:
            covered = bodies[index << level : (index + 1) << level]
            assert nodes[(level, index)] == merkle.root_hash(covered), (size, level, index)
        assert await root(store, "startup") == merkle.root_hash(bodies)
        # and nothing beyond it: the next subtree at each level is incomplete
        for level in range(size.bit_length() + 1):
            with pytest.raises(StorageError, match="no node"):
                await store.log_nodes("startup", [(level, size >> level)])
