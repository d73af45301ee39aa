"""Leases across hosts whose clocks disagree (issue 14's replicas on one PostgreSQL).

What must hold: a replica whose clock runs ahead (or behind) of the others, by any
amount, never releases a live replica's in-flight reservations; and a lease that did
lapse is still recovered, by any replica, whatever its clock. Each store here reads
its own host's wall clock (``wall``: the only clock a process has; the heartbeat gives
the store that same time as ``until`` and ``now``), and one of them runs several
leases ahead, as a host whose NTP is broken does. The stores share one database, so
the leases are judged against the one clock they all see: the database's.

The memory store is one process (one clock): it has nothing to disagree about.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from saferouter.storage import AdmissionRequest, Store

from .stores import OpenStore, make_key

LEASE_S = 30.0
SKEW_S = 5 * LEASE_S


def skewed(by_s: float) -> Callable[[], float]:
    """A host's wall clock, ``by_s`` off the true time."""
    return lambda: time.time() + by_s


# the stores several processes share (the memory store is one process: one clock)
on_shared_stores = pytest.mark.parametrize("open_store", ["sqlite", "postgres"], indirect=True)


async def hold_a_reservation(store: Store, wall: Callable[[], float], lease_s: float) -> str:
    """``store``'s process takes its lease as the heartbeat does (its own clock) and
    admits one request, on a key of its own: the reservation it holds."""
    key = await make_key(store, credits=1000)
    await store.renew_lease(wall() + lease_s)
    request = AdmissionRequest(
        key_id=key, request_id=f"req_{key}", reserve_micro_usd=100, now=wall(), receipt_id=key
    )
    await store.admit(request)
    return key


@on_shared_stores
@pytest.mark.parametrize("skew_s", [SKEW_S, -SKEW_S])
async def test_a_replica_with_a_skewed_clock_never_sweeps_a_live_replicas_reservations(
    open_store: OpenStore, skew_s: float
) -> None:
    live = open_store(owner="aaaa/live")
    odd_clock = skewed(skew_s)
    odd = open_store(owner="bbbb/odd", wall=odd_clock)
    live_key = await hold_a_reservation(live, time.time, LEASE_S)
    odd_key = await hold_a_reservation(odd, odd_clock, LEASE_S)
    # each sweeps, as every heartbeat round does, each on its own clock: both are alive
    assert await odd.recover(odd_clock()) == 0
    assert await live.recover(time.time()) == 0
    assert (await live.books(live_key)).reserved_micro_usd == 100
    assert (await live.books(odd_key)).reserved_micro_usd == 100


@on_shared_stores
async def test_a_lapsed_lease_is_recovered_by_a_replica_whose_clock_runs_behind(
    open_store: OpenStore,
) -> None:
    gone = open_store(owner="aaaa/gone")
    key = await hold_a_reservation(gone, time.time, -1.0)  # lapsed a second ago
    behind = skewed(-SKEW_S)
    sweeper = open_store(owner="bbbb/behind", wall=behind)
    assert await sweeper.recover(behind()) == 1
    assert (await gone.books(key)).reserved_micro_usd == 0
