"""The heartbeat on real memory stores sharing one database, under trio's MockClock (a
lease of 30 s passes at once); the wall clock leases are written in is the mock one,
moved to an epoch-like start."""

from __future__ import annotations

import logging

import pytest
import trio

from saferouter.heartbeat import Heartbeat
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
    """The extra steps run in every round after the renewal and the sweep; a store
    error is logged and changes nothing for the rounds after it."""
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
    assert sum("cannot renew the lease" in w for w in warnings) == 2
    assert sum("cannot end the lease" in w for w in warnings) == 1
