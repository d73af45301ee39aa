"""What only the PostgreSQL store has: migrations shared by replicas starting at once,
books kept by two stores ("replicas") admitting against one key, and a database that
goes away and comes back. The Store contract itself runs on PostgreSQL through
``stores.STORES``; every test here uses a real cluster (``tests/postgres.py``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import psycopg.errors
import pytest
import trio

from saferouter.config import load_settings
from saferouter.errors import StorageError, StorageUnavailable
from saferouter.storage import AdmissionRequest, KeyRole
from saferouter.storage.opening import describe, open_store
from saferouter.storage.pg_migrations import MIGRATIONS
from saferouter.storage.postgres import _LOCK_AND_BEGIN, PostgresStore
from tests.postgres import Cluster, running_cluster
from tests.processes import free_port

from .stores import make_key, settlement

# an unreachable database must be told within this (connect, pool and statement
# timeouts of a few seconds each); generous for a loaded machine, far below a hang
UNAVAILABLE_WITHIN_S = 10.0


def versions(url: str) -> list[int]:
    with psycopg.connect(url) as db:
        return [row[0] for row in db.execute("SELECT version FROM schema_migrations")]


async def test_migrations_run_once_when_replicas_open_an_empty_database_at_once(
    pg_url: str,
) -> None:
    replicas = 6
    start = threading.Barrier(replicas)
    opened: list[PostgresStore] = []

    def open_replica() -> None:
        start.wait()  # all at once, on a database no one has migrated
        opened.append(PostgresStore(pg_url, pool_size=2))

    async with trio.open_nursery() as nursery:
        for _ in range(replicas):
            nursery.start_soon(trio.to_thread.run_sync, open_replica)
    try:
        assert len(opened) == replicas
        assert versions(pg_url) == list(range(1, len(MIGRATIONS) + 1))  # each once
        key = await make_key(opened[0], credits=10)
        assert (await opened[-1].books(key)).balance_micro_usd == 10
    finally:
        for store in opened:
            await store.close()


async def test_a_database_newer_than_the_build_is_refused(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.close()
    with psycopg.connect(pg_url) as db:
        db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (len(MIGRATIONS) + 1,))
    with pytest.raises(StorageError, match="newer than this build"):
        PostgresStore(pg_url)


async def test_two_replicas_admitting_against_one_key_never_overspend(pg_url: str) -> None:
    """Two stores on one database, as two replicas are, each admitting concurrently
    (their writers take turns: the cluster-wide write lock): no more is reserved
    than the key holds, its balance never goes below zero, and once everything is
    settled the books hold, spend within the funding."""
    funding, reserve, per_replica = 10_000, 300, 40
    replicas = [PostgresStore(pg_url, pool_size=4), PostgresStore(pg_url, pool_size=4)]
    try:
        key = await make_key(replicas[0], credits=funding)
        admitted: list[tuple[PostgresStore, str]] = []
        now = time.time()

        async def ask(store: PostgresStore, request_id: str) -> None:
            admission = await store.admit(
                AdmissionRequest(
                    key_id=key, request_id=request_id, reserve_micro_usd=reserve, now=now
                )
            )
            assert admission.balance_micro_usd >= 0
            if admission.admitted:
                admitted.append((store, request_id))

        async with trio.open_nursery() as nursery:
            for n in range(per_replica):
                for r, store in enumerate(replicas):
                    nursery.start_soon(ask, store, f"req_{r}_{n}")
        assert len(admitted) == funding // reserve  # every request that fitted, no more
        books = await replicas[1].books(key)
        assert books.balance_micro_usd == funding - len(admitted) * reserve >= 0
        async with trio.open_nursery() as nursery:
            for store, request_id in admitted:
                cost = reserve - 1
                nursery.start_soon(
                    store.settle, settlement(key, request_id, now, reserved=reserve, cost=cost)
                )
        books = await replicas[0].books(key)
        assert books.spent_micro_usd == len(admitted) * (reserve - 1) <= funding
        assert books.reserved_micro_usd == 0
        assert books.balance_micro_usd == funding - books.spent_micro_usd
        assert await replicas[1].check_books() == []
        # one writer at a time across the cluster: no batch lost a conflict and ran again
        assert [store._writes.conflicts for store in replicas] == [0, 0]
    finally:
        for store in replicas:
            await store.close()


async def test_a_closed_port_is_unavailable_at_once() -> None:
    url = f"postgresql://saferouter:hunter2@127.0.0.1:{free_port()}/none"
    started = trio.current_time()
    with pytest.raises(StorageUnavailable) as raised:
        await trio.to_thread.run_sync(PostgresStore, url)
    assert trio.current_time() - started < UNAVAILABLE_WITHIN_S
    assert "hunter2" not in str(raised.value) and "127.0.0.1" not in str(raised.value)


@pytest.fixture
def own_cluster(pg_cluster: Cluster) -> Iterator[Cluster]:
    """A cluster of the test's own, to stop and start (``pg_cluster`` for its binaries,
    and the skip where PostgreSQL is missing)."""
    with running_cluster(pg_cluster.bin_dir) as cluster:
        yield cluster


async def test_a_stopped_database_is_unavailable_within_a_bound_then_recovers(
    own_cluster: Cluster,
) -> None:
    store = PostgresStore(own_cluster.create_database(), pool_size=3)
    try:
        record = await store.create_key(
            name="k", role=KeyRole.USER, key_hash="h-stop", prefix="p", credits_micro_usd=1000
        )
        key = record.id
        await store.ping()
        await trio.to_thread.run_sync(own_cluster.stop)

        async def ask(request_id: str) -> object:
            return await store.admit(
                AdmissionRequest(
                    key_id=key, request_id=request_id, reserve_micro_usd=10, now=time.time()
                )
            )

        for call in (
            store.ping,
            store.key_generation,
            lambda: store.key_by_hash("h-stop"),
            lambda: ask("req_down"),
            store.list_keys,
        ):
            started = trio.current_time()
            with pytest.raises(StorageUnavailable):
                await call()
            assert trio.current_time() - started < UNAVAILABLE_WITHIN_S

        await trio.to_thread.run_sync(own_cluster.start)
        # the pooled connections the restart dropped are discarded, not reused: the
        # first calls after it succeed, without reopening the store
        await store.ping()
        assert await store.key_by_hash("h-stop") == record
        assert (await ask("req_back")).admitted
        assert (await store.books(key)).reserved_micro_usd == 10
        assert await store.check_books() == []
    finally:
        await store.close()


async def test_connections_a_restart_dropped_are_not_a_failed_request(
    own_cluster: Cluster,
) -> None:
    """The database restarts while the store's pooled connections sit idle: the first
    reads and writes after it meet dropped connections, which are discarded and the
    statement run on fresh ones, not failed."""
    store = PostgresStore(own_cluster.create_database(), pool_size=3)
    try:
        key = await make_key(store, credits=1000)
        async with trio.open_nursery() as nursery:  # fill the pool with idle connections
            for _ in range(3):
                nursery.start_soon(store.books, key)
        await trio.to_thread.run_sync(own_cluster.stop)
        await trio.to_thread.run_sync(own_cluster.start)
        await store.ping()
        assert (await store.books(key)).balance_micro_usd == 1000
        await trio.to_thread.run_sync(own_cluster.stop)
        await trio.to_thread.run_sync(own_cluster.start)
        admission = await store.admit(
            AdmissionRequest(key_id=key, request_id="r", reserve_micro_usd=10, now=time.time())
        )
        assert admission.admitted
    finally:
        await store.close()


async def test_open_store_opens_postgresql_and_names_it_without_its_password(
    pg_url: str, tmp_path: Path
) -> None:
    # the test cluster trusts local connections: any password is accepted, and must
    # never be repeated
    url = pg_url.replace("saferouter@", "saferouter:hunter2@")
    for scheme in ("postgresql", "postgres"):
        settings = load_settings(
            {}, data_dir=tmp_path, database=url.replace("postgresql:", f"{scheme}:")
        )
        store = open_store(settings, owner="replica/owner")
        try:
            assert isinstance(store, PostgresStore) and store.owner == "replica/owner"
            await store.ping()
        finally:
            await store.close()
        assert "hunter2" not in describe(settings)
        assert describe(settings).startswith("PostgreSQL at 127.0.0.1:")


async def test_a_key_revoked_through_one_replica_is_revoked_for_the_other(pg_url: str) -> None:
    first, second = PostgresStore(pg_url), PostgresStore(pg_url)
    try:
        record = await first.create_key(name="k", role=KeyRole.USER, key_hash="h", prefix="p")
        generation = await second.key_generation()
        assert await second.key_by_hash("h") == record
        await first.revoke_key(record.id)
        assert await second.key_generation() != generation  # its cache of keys is stale
        revoked = await second.key_by_hash("h")
        assert revoked is not None and revoked.revoked_at is not None
    finally:
        await first.close()
        await second.close()


async def test_a_lease_is_renewed_while_the_writes_wait_on_a_row(pg_url: str) -> None:
    """The store's writes are stuck behind another transaction's lock on a key's row
    (a replica mid-commit): the lease renewal is not queued behind them, so a busy
    replica's lease cannot lapse for want of a turn."""
    store = PostgresStore(pg_url)
    try:
        key = await make_key(store, credits=1000)
        with psycopg.connect(pg_url) as other:  # a transaction holding the key's row
            other.execute("SELECT 1 FROM keys WHERE id = %s FOR UPDATE", (key,))
            result: list[bool] = []

            async def admit() -> None:
                request = AdmissionRequest(
                    key_id=key, request_id="r", reserve_micro_usd=10, now=time.time()
                )
                result.append((await store.admit(request)).admitted)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(admit)
                with psycopg.connect(pg_url, autocommit=True) as watch, trio.fail_after(10):
                    while not watch.execute(
                        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    ).fetchone():
                        await trio.sleep(0.01)
                with trio.fail_after(2):  # well within the statement timeout the admit waits
                    await store.renew_lease(time.time() + 30)
                other.rollback()
            assert result == [True]
        with psycopg.connect(pg_url) as db:
            (owner,) = db.execute("SELECT owner FROM leases").fetchone()
            assert owner == store.owner
    finally:
        await store.close()


async def test_the_pool_bounds_the_connections_a_store_opens(pg_url: str) -> None:
    """Many concurrent reads and writes of one store share its pool: it never holds more
    connections than ``pool_size`` (the database's ``max_connections`` is shared by
    every replica and worker), and every caller is answered."""
    store = PostgresStore(pg_url, pool_size=2)
    seen: list[int] = []
    try:
        key = await make_key(store, credits=10**9)

        async def one(n: int) -> None:
            await store.books(key)
            await store.admit(
                AdmissionRequest(key_id=key, request_id=f"r{n}", reserve_micro_usd=1, now=1.0)
            )

        async def count() -> None:
            with psycopg.connect(pg_url, autocommit=True) as watch:
                for _ in range(20):
                    (n,) = watch.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name = 'saferouter'"
                    ).fetchone()
                    seen.append(n)
                    await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(count)
            for n in range(60):
                nursery.start_soon(one, n)
        assert (await store.books(key)).reserved_micro_usd == 60
        assert seen and max(seen) <= 2
    finally:
        await store.close()


async def test_a_stopped_holder_of_the_write_lock_blocks_the_others_only_for_a_while(
    pg_url: str,
) -> None:
    """A replica stopped (SIGSTOP, a frozen host) inside a write holds the cluster's
    write lock in a transaction it never ends: the server ends that idle session, so
    the other replicas' writes go on within a bound instead of failing for as long as
    it stays stopped."""
    stopped = PostgresStore(pg_url)
    live = PostgresStore(pg_url)
    try:
        key = await make_key(live, credits=1000)
        # the stopped replica's connection, taken mid-write as its store takes it
        # (through its pool: a connection with the store's own session settings)
        with stopped._pool.connection() as frozen:
            frozen.autocommit = True
            frozen.execute(_LOCK_AND_BEGIN)
            frozen.execute("SELECT 1 FROM keys")
            started = time.monotonic()
            admitted = None
            with trio.fail_after(UNAVAILABLE_WITHIN_S * 2):
                while admitted is None:
                    request = AdmissionRequest(
                        key_id=key, request_id="r", reserve_micro_usd=10, now=time.time()
                    )
                    try:
                        admitted = (await live.admit(request)).admitted
                    except StorageUnavailable:
                        await trio.sleep(0.1)  # the lock waited past the statement timeout
            assert admitted
            assert time.monotonic() - started < UNAVAILABLE_WITHIN_S
            with pytest.raises(
                psycopg.errors.IdleInTransactionSessionTimeout
            ):  # ended by the server
                frozen.execute("SELECT 1")
    finally:
        await stopped.close()
        await live.close()
