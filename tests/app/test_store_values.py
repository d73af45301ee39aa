"""States are enums whose values are the strings they always were, and SQLite rows are
read into records by name: on a real SQLite file, read back both through the store and
raw, so that neither the stored strings nor a field's place can change unseen."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

from saferouter.storage import (
    ActivityEntry,
    ActivityFilter,
    ActivityOutcome,
    AdmissionRequest,
    KeyRecord,
    KeyRole,
    Refusal,
    Settlement,
)
from saferouter.storage.records import LedgerKind
from saferouter.storage.sqlite import SQLiteStore

# every field a distinct value: a field read from another's column cannot go unnoticed
DISTINCT = ActivityEntry(
    request_id="req_distinct",
    attempt=3,
    created_at=1_700_000_000.25,
    key_id="",  # set per test
    requested_model="requested",
    served_model="served",
    provider="provider",
    original_model="original",
    status=207,
    outcome="client_stalled",
    latency_ms=11.5,
    ttfb_ms=7.25,
    prompt_tokens=13,
    completion_tokens=17,
    cached_tokens=19,
    reasoning_tokens=23,
    cost_micro_usd=29,
    streamed=True,
    estimated=False,
    error_type="error_type",
    overrun_micro_usd=0,
)


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    """What is on disk, read by a plain connection (no row factory, no records)."""
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "values.db")
    yield opened
    await opened.close()


async def settle_one(store: SQLiteStore, entry: ActivityEntry, *, reserved: int = 0) -> None:
    """Settle a request of one attempt, ``entry``, charging its cost."""
    await store.settle(
        Settlement(
            key_id=entry.key_id,
            request_id=entry.request_id,
            reserved_micro_usd=reserved,
            cost_micro_usd=entry.cost_micro_usd,
            tokens=30,
            attempts=(entry,),
            now=entry.created_at,
        )
    )


async def new_key(store: SQLiteStore, role: KeyRole, **limits: int) -> KeyRecord:
    return await store.create_key(
        name=f"{role}-key",
        role=role,
        key_hash=f"hash-{role}",
        prefix="sk-sr-test",
        credits_micro_usd=5_000,
        **limits,
    )


async def test_a_key_reads_back_every_field_by_name(store: SQLiteStore) -> None:
    created = await new_key(store, KeyRole.USER, rpm_limit=7, tpm_limit=9)
    found = await store.key_by_hash("hash-user")
    assert found == created
    assert found is not None
    assert (found.name, found.prefix, found.rpm_limit, found.tpm_limit) == (
        "user-key",
        "sk-sr-test",
        7,
        9,
    )
    assert (found.metered, found.balance_micro_usd, found.reserved_micro_usd) == (True, 5_000, 0)
    assert found.role is KeyRole.USER and found.last_used_at is None and found.revoked_at is None
    assert raw(store.path, "SELECT role, typeof(role) FROM keys") == [("user", "text")]


async def test_an_activity_entry_reads_back_every_field_by_name(store: SQLiteStore) -> None:
    key = await new_key(store, KeyRole.ADMIN)
    written = attrs.evolve(DISTINCT, key_id=key.id)
    await settle_one(store, written)
    (read,) = await store.activity(ActivityFilter(key_id=key.id))
    assert read.id is not None
    assert attrs.evolve(read, id=None) == written
    assert read.outcome is ActivityOutcome.CLIENT_STALLED
    assert read.streamed is True and read.estimated is False


@pytest.mark.parametrize("outcome", list(ActivityOutcome))
async def test_outcomes_are_stored_and_rendered_as_the_same_strings(
    store: SQLiteStore, outcome: ActivityOutcome
) -> None:
    key = await new_key(store, KeyRole.USER)
    await settle_one(store, attrs.evolve(DISTINCT, key_id=key.id, outcome=outcome))
    assert raw(store.path, "SELECT outcome, typeof(outcome) FROM activity") == [
        (outcome.value, "text")
    ]
    (read,) = await store.activity(ActivityFilter(status=outcome.value))
    assert read.outcome is outcome
    rendered = json.loads(json.dumps(attrs.asdict(read)))
    assert rendered["outcome"] == outcome.value


async def test_the_stored_strings_are_the_ones_the_api_has_always_used(
    store: SQLiteStore,
) -> None:
    # the contract with existing databases and API clients: these never change
    assert [o.value for o in ActivityOutcome] == [
        "ok",
        "error",
        "client_closed",
        "client_stalled",
        "cancelled",
        "rejected",
    ]
    assert [r.value for r in Refusal] == [
        "revoked",
        "unsupported_content",
        "requests_per_minute",
        "tokens_per_minute",
        "insufficient_quota",
    ]
    assert [k.value for k in KeyRole] == ["admin", "user"]
    assert {k.value for k in LedgerKind} == {
        "topup",
        "metering",
        "reserve",
        "release",
        "charge",
        "overrun",
    }


async def test_a_refusal_is_an_enum_and_its_row_keeps_the_old_strings(store: SQLiteStore) -> None:
    key = await new_key(store, KeyRole.USER, rpm_limit=1)
    request = AdmissionRequest(
        key_id=key.id, request_id="req_a", reserve_micro_usd=10, now=1_700_000_000.0
    )
    first = await store.admit(request)
    second = await store.admit(attrs.evolve(request, request_id="req_b"))
    assert first.admitted and first.refusal is None
    assert not second.admitted and second.refusal is Refusal.REQUESTS_PER_MINUTE
    assert second.retry_after_s > 0
    assert raw(store.path, "SELECT outcome, error_type, status FROM activity") == [
        ("rejected", "requests_per_minute", 429)
    ]
    kinds = raw(store.path, "SELECT kind, typeof(kind) FROM ledger ORDER BY id")
    assert kinds == [("topup", "text"), ("reserve", "text")]


async def test_books_sum_the_ledger_by_kind(store: SQLiteStore) -> None:
    key = await new_key(store, KeyRole.USER)
    request = AdmissionRequest(key_id=key.id, request_id="req_c", reserve_micro_usd=100, now=1.0)
    assert (await store.admit(request)).admitted
    charged = attrs.evolve(
        DISTINCT, key_id=key.id, request_id="req_c", cost_micro_usd=40, created_at=2.0
    )
    await settle_one(store, charged, reserved=100)
    books = await store.books(key.id)
    assert (books.topped_up_micro_usd, books.spent_micro_usd, books.balance_micro_usd) == (
        5_000,
        40,
        4_960,
    )
    assert books.reserved_micro_usd == 0 and books.metered


def test_a_state_that_is_not_one_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="won"):
        attrs.evolve(DISTINCT, outcome="won")
    with pytest.raises(ValueError, match="root"):
        KeyRecord(
            id="k", name="n", prefix="p", role="root", created_at=0.0, last_used_at=None,
            revoked_at=None,
        )  # fmt: skip
