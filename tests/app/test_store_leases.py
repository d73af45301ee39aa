"""The Store contract, leases half: every open reservation and pending receipt names its
owner, and recovery releases what owners that are gone hold — no lease valid now, or
any owner of a replica that restarted — and never a live owner's. Each test opens
several stores on one database (``open_store``: one memory database, one SQLite file,
as processes share one), each for its own owner."""

from __future__ import annotations

import sqlite3
import time

import psycopg
import pytest

from saferouter.storage import ActivityFilter, AdmissionRequest, ReceiptState, Store
from saferouter.storage.leases import new_owner, owner_replica
from saferouter.storage.memory import MemoryStore
from saferouter.storage.postgres import PostgresStore
from saferouter.storage.sqlite import SQLiteStore

from .stores import OpenStore, make_key, settlement

T0 = 1_800_000_000.0
LEASE_S = 30.0


def ask(key: str, request_id: str, *, reserve: int = 100, now: float = T0) -> AdmissionRequest:
    """An admission that reserves ``reserve`` and leaves receipt ``rcpt_<request id>``."""
    return AdmissionRequest(
        key_id=key,
        request_id=request_id,
        reserve_micro_usd=reserve,
        now=now,
        receipt_id=f"rcpt_{request_id}",
    )


async def state(store: Store, request_id: str) -> ReceiptState:
    receipt = await store.receipt(f"rcpt_{request_id}")
    assert receipt is not None
    return receipt.state


async def reserved(store: Store, key: str) -> int:
    return (await store.books(key)).reserved_micro_usd


def test_an_owner_names_its_replica() -> None:
    owner = new_owner("0123456789abcdef")
    assert owner_replica(owner) == "0123456789abcdef"
    assert owner.startswith("0123456789abcdef/") and new_owner("0123456789abcdef") != owner


async def test_a_live_owners_reservations_survive_another_owners_recovery(
    open_store: OpenStore,
) -> None:
    live, other = open_store(owner="aaaa/live"), open_store(owner="bbbb/other")
    key = await make_key(live, credits=1000)
    await live.renew_lease(T0 + LEASE_S)
    await live.admit(ask(key, "r1"))
    assert await other.recover(T0 + 1) == 0
    assert await other.recover(T0 + 1, replica="bbbb") == 0  # another replica's restart
    assert await reserved(live, key) == 100
    assert await state(live, "r1") is ReceiptState.PENDING
    assert await other.check_books() == []


@pytest.mark.parametrize("lease_until", [None, T0 + 10], ids=["no lease", "expired lease"])
async def test_a_gone_owners_reservations_are_released_and_only_its_receipts_lost(
    open_store: OpenStore, lease_until: float | None
) -> None:
    gone, live = open_store(owner="aaaa/gone"), open_store(owner="bbbb/live")
    key = await make_key(live, credits=1000)
    unmetered = await make_key(live, credits=None)
    if lease_until is not None:
        await gone.renew_lease(lease_until)
    await live.renew_lease(T0 + 100)
    await gone.admit(ask(key, "g1"))
    await gone.admit(ask(key, "g2"))
    await gone.admit(ask(unmetered, "g3", reserve=0))  # no reservation, a receipt
    await live.admit(ask(key, "l1"))
    await live.admit(ask(unmetered, "l2", reserve=0))
    assert await live.recover(T0 + 11) == 2
    assert await reserved(live, key) == 100
    assert [await state(live, r) for r in ("g1", "g2", "g3")] == [ReceiptState.LOST] * 3
    assert [await state(live, r) for r in ("l1", "l2")] == [ReceiptState.PENDING] * 2
    assert (await live.books(key)).balance_micro_usd == 900
    assert await live.check_books() == []
    assert await live.recover(T0 + 11) == 0


async def test_recovery_for_a_replica_releases_its_owners_only(open_store: OpenStore) -> None:
    """A restart vouches that none of its replica's processes lives: their leases,
    however long, do not protect them; another replica's do."""
    first, second = open_store(owner="aaaa/1"), open_store(owner="aaaa/2")
    elsewhere, restarted = open_store(owner="bbbb/1"), open_store(owner="aaaa/3")
    key = await make_key(first, credits=1000)
    for n, store in enumerate((first, second, elsewhere)):
        await store.renew_lease(T0 + 1000)
        await store.admit(ask(key, f"r{n}"))
    assert await restarted.recover(T0, replica="aaaa") == 2
    assert await reserved(restarted, key) == 100
    assert [await state(restarted, f"r{n}") for n in range(3)] == [
        ReceiptState.LOST,
        ReceiptState.LOST,
        ReceiptState.PENDING,
    ]
    assert await restarted.check_books() == []


async def spent_and_overrun(store: Store, key: str) -> tuple[int, int, int, int]:
    books = await store.books(key)
    return (
        books.balance_micro_usd,
        books.reserved_micro_usd,
        books.spent_micro_usd,
        books.overrun_micro_usd,
    )


async def activity_of(store: Store, key: str, request_id: str) -> list[tuple[int, int, int]]:
    """``(attempt, cost, overrun)`` of each of the request's activity entries."""
    entries = await store.activity(ActivityFilter(key_id=key))
    return [
        (e.attempt, e.cost_micro_usd, e.overrun_micro_usd)
        for e in entries
        if e.request_id == request_id
    ]


async def test_a_request_recovery_released_is_charged_once_when_it_settles(
    open_store: OpenStore,
) -> None:
    """A process whose lease lapsed (a database outage, a long pause) may still complete
    what recovery released: it is charged then — once, however often it settles — and
    its activity is written, as for any request."""
    slow, sweeper = open_store(owner="aaaa/slow"), open_store(owner="bbbb/sweeper")
    key = await make_key(slow, credits=1000)
    await slow.renew_lease(T0 + 1)
    await slow.admit(ask(key, "r1"))
    assert await sweeper.recover(T0 + 2) == 1
    assert await spent_and_overrun(slow, key) == (1000, 0, 0, 0)
    for _ in range(2):
        await slow.settle(settlement(key, "r1", T0 + 3, reserved=100, cost=60))
    assert await spent_and_overrun(slow, key) == (940, 0, 60, 0)
    assert await activity_of(slow, key, "r1") == [(1, 60, 0)]
    assert await slow.check_books() == []


async def test_a_recovered_request_is_charged_no_more_than_its_key_holds_now(
    open_store: OpenStore,
) -> None:
    """Once released, its credits may be spent by another request before it settles:
    a metered key never goes below zero, the rest is the operator's overrun."""
    slow, sweeper = open_store(owner="aaaa/slow"), open_store(owner="bbbb/sweeper")
    key = await make_key(slow, credits=1000)
    await slow.renew_lease(T0 + 1)
    await slow.admit(ask(key, "r1"))
    assert await sweeper.recover(T0 + 2) == 1
    await sweeper.renew_lease(T0 + 100)
    assert (await sweeper.admit(ask(key, "r2", reserve=980, now=T0 + 2))).admitted
    await slow.settle(settlement(key, "r1", T0 + 3, reserved=100, cost=60))
    assert await spent_and_overrun(slow, key) == (0, 980, 20, 40)
    assert await activity_of(slow, key, "r1") == [(1, 20, 40)]
    await sweeper.settle(settlement(key, "r2", T0 + 4, reserved=980, cost=900))
    assert await spent_and_overrun(slow, key) == (80, 0, 920, 40)
    assert await slow.check_books() == []


async def test_a_settlement_lets_its_reservation_go(open_store: OpenStore) -> None:
    owner, sweeper = open_store(owner="aaaa/1"), open_store(owner="bbbb/1")
    key = await make_key(owner, credits=1000)
    await owner.admit(ask(key, "r1"))
    await owner.settle(settlement(key, "r1", T0, reserved=100, cost=60))
    assert await owner.check_books() == []  # no reservation row is left behind
    assert await sweeper.recover(T0 + 1) == 0  # nothing for recovery to release twice
    assert (await owner.books(key)).balance_micro_usd == 940


async def test_renewing_extends_a_lease(open_store: OpenStore) -> None:
    owner, sweeper = open_store(owner="aaaa/1"), open_store(owner="bbbb/1")
    key = await make_key(owner, credits=1000)
    await owner.renew_lease(T0 + 10)
    await owner.admit(ask(key, "r1"))
    await owner.renew_lease(T0 + 100)
    assert await sweeper.recover(T0 + 50) == 0
    assert await sweeper.recover(T0 + 101) == 1  # past its end (judged on the database's clock)


async def test_an_ended_lease_leaves_its_reservations_to_recovery(open_store: OpenStore) -> None:
    owner, sweeper = open_store(owner="aaaa/1"), open_store(owner="bbbb/1")
    key = await make_key(owner, credits=1000)
    await owner.renew_lease(T0 + 100)
    await owner.admit(ask(key, "r1"))
    await owner.end_lease()
    assert await sweeper.recover(T0) == 1
    assert await state(sweeper, "r1") is ReceiptState.LOST


async def test_the_books_check_counts_the_reservation_rows(open_store: OpenStore) -> None:
    """``reserved`` must equal the rows of the key's open reservations too: a row lost
    (a release that forgot it) is a key whose books do not hold."""
    store = open_store(owner="aaaa/1")
    key = await make_key(store, credits=1000)
    await store.admit(ask(key, "r1"))
    assert await store.check_books() == []
    drop_reservation_rows(store)
    assert await store.check_books() == [key]


def drop_reservation_rows(store: Store) -> None:
    """Delete every reservation row behind the store's back, the way each store's data
    could be damaged."""
    if isinstance(store, SQLiteStore):
        db = sqlite3.connect(store.path)
        with db:
            db.execute("DELETE FROM reservations")
        db.close()
    elif isinstance(store, MemoryStore):
        leases = store.database.leases
        with store.database.journal.transaction():
            for row in leases.held_by([store.owner]):
                leases.let_go(row.request_id)
    else:
        assert isinstance(store, PostgresStore)
        with psycopg.connect(store.url, autocommit=True) as db:
            db.execute("DELETE FROM reservations")


async def test_a_sweep_never_releases_its_own_callers_reservations(
    open_store: OpenStore,
) -> None:
    """A store whose own lease lapsed (its renewal held up) is still alive when it
    sweeps: its own reservations stay; another's sweep releases them."""
    mine, other = open_store(owner=new_owner("a")), open_store(owner=new_owner("b"))
    key = await make_key(mine, credits=1000)
    now = time.time()
    await mine.renew_lease(now - 1)  # lapsed
    request = AdmissionRequest(key_id=key, request_id="r", reserve_micro_usd=100, now=now)
    assert (await mine.admit(request)).admitted
    assert await mine.recover(now) == 0
    assert (await mine.books(key)).reserved_micro_usd == 100
    assert await other.recover(now) == 1
    assert (await mine.books(key)).reserved_micro_usd == 0
