"""The heartbeat on real memory stores sharing one database, under trio's MockClock (a
lease of 30 s passes at once); the wall clock leases are written in is the mock one,
moved to an epoch-like start."""

from __future__ import annotations

import logging

import pytest
import trio

from saferouter.errors import StorageError
from saferouter.heartbeat import RETRY_DIVISOR, Heartbeat
from saferouter.storage import AdmissionRequest
from saferouter.storage.memory import MemoryDatabase, MemoryStore

from .stores import make_key

LEASE_S = 30.0
EPOCH = 1_800_000_000.0


def wall() -> float:
    return EPOCH + trio.current_time()


def stores(*owners: str) -> list[MemoryStore]:
    database = MemoryDatabase()
    return [MemoryStore(owner=owner, database=database, clock=wall) for owner in owners]


async def reserve(store: MemoryStore, key: str, request_id: str) -> None:
    ask = AdmissionRequest(key_id=key, request_id=request_id, reserve_micro_usd=100, now=wall())
    assert (await store.admit(ask)).admitted


async def test_a_serving_process_keeps_its_lease_and_gives_it_up_at_its_stop(
    autojump_clock: trio.abc.Clock,
) -> None:
    served, sweeper = stores("aaaa/served", "bbbb/sweeper")
    key = await make_key(served, credits=1000)
    heartbeat = Heartbeat(served, lease_s=LEASE_S, wall=wall)
    assert heartbeat.every_s == 10
    async with trio.open_nursery() as nursery:
        await heartbeat.take_lease()
        await nursery.start(heartbeat.run)
        await reserve(served, key, "r1")
        for _ in range(10):  # ten leases long: renewed all along
            await trio.sleep(LEASE_S)
            assert await sweeper.recover(wall()) == 0
        await heartbeat.stop()
    assert await sweeper.recover(wall()) == 1  # no lease once stopped: nothing protects it


async def test_each_round_sweeps_what_dead_processes_held(
    autojump_clock: trio.abc.Clock,
) -> None:
    alive, dead = stores("aaaa/alive", "bbbb/dead")
    key = await make_key(alive, credits=1000)
    await dead.renew_lease(wall() + LEASE_S)
    await reserve(dead, key, "r1")
    heartbeat = Heartbeat(alive, lease_s=LEASE_S, wall=wall)
    async with trio.open_nursery() as nursery:
        await nursery.start(heartbeat.run)
        start = wall()
        with trio.fail_after(10 * LEASE_S):
            while (await alive.books(key)).reserved_micro_usd:
                await trio.sleep(1)
        # within the dead one's lease and a round
        assert LEASE_S <= wall() - start <= LEASE_S + heartbeat.every_s
        await heartbeat.stop()
    assert await alive.check_books() == []


async def test_a_failing_round_is_logged_and_the_next_one_runs(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The extra steps run in every round after the sweep; a store error is logged and
    changes nothing for the rounds after it."""
    (store,) = stores("aaaa/1")
    rounds: list[float] = []

    async def step(now: float) -> None:
        rounds.append(now)

    heartbeat = Heartbeat(store, lease_s=LEASE_S, steps=[("count", step)], wall=wall)
    async with trio.open_nursery() as nursery:
        await nursery.start(heartbeat.run)
        await trio.sleep(25)
        assert len(rounds) == 2
        await store.close()  # now every call of it raises StorageError
        with caplog.at_level(logging.WARNING, logger="saferouter"):
            await trio.sleep(20)
            await heartbeat.stop()
    assert len(rounds) == 4  # the steps still ran
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("cannot renew the lease" in w for w in warnings) == 1  # once per failing run
    assert sum("cannot end the lease" in w for w in warnings) == 1


async def test_a_slow_sweep_or_step_never_delays_a_renewal(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A round that takes three leases (a busy database) while another process sweeps
    every second: the lease never lapses, the reservation is never swept. (With the
    renewal in the round, the second renewal waited for the slow step, and the sweeper
    released the live process's reservation once a lease had passed.)"""
    served, sweeper = stores("aaaa/served", "bbbb/sweeper")
    key = await make_key(served, credits=1000)
    slow_rounds: list[float] = []

    async def slow_step(now: float) -> None:
        slow_rounds.append(now)
        await trio.sleep(3 * LEASE_S)

    heartbeat = Heartbeat(served, lease_s=LEASE_S, steps=[("slow", slow_step)], wall=wall)
    async with trio.open_nursery() as nursery:
        await heartbeat.take_lease()
        await nursery.start(heartbeat.run)
        await reserve(served, key, "r1")
        for _ in range(int(7 * LEASE_S)):
            await trio.sleep(1)
            assert await sweeper.recover(wall()) == 0
        await heartbeat.stop()
    assert len(slow_rounds) >= 2  # the slow step did run, more than once


class Unreachable(MemoryStore):
    """A memory store whose database is away while ``down`` (a real store's renewal
    raising StorageError); it notes when each renewal went through."""

    down = False
    renewed_at: list[float]

    async def renew_lease(self, until: float) -> None:
        if self.down:
            raise StorageError("the database is away")
        await super().renew_lease(until)
        self.renewed_at.append(trio.current_time())


async def test_a_failed_renewal_is_retried_promptly_and_the_schedule_holds(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = Unreachable(owner="aaaa/1", clock=wall)
    store.renewed_at = []
    heartbeat = Heartbeat(store, lease_s=LEASE_S, wall=wall)
    retry_s = heartbeat.every_s / RETRY_DIVISOR
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        await nursery.start(heartbeat.run)
        await trio.sleep(25)  # renewed at 10 and 20, on schedule
        assert [t - start for t in store.renewed_at] == [10, 20]
        store.down = True  # the renewal at 30 fails, and its retries
        with caplog.at_level(logging.WARNING, logger="saferouter"):
            await trio.sleep(9)
            store.down = False  # back at 34
            await trio.sleep(12)
        await heartbeat.stop()
    # renewed within a retry of its return, not at the next period (40)
    back = [t - start for t in store.renewed_at[2:]]
    assert 34 <= back[0] <= 34 + retry_s
    assert back[0] < 40 - 1
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("cannot renew the lease" in w for w in warnings) == 1
    assert sum("lease renewed after" in w for w in warnings) == 1
