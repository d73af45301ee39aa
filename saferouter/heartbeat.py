"""The heartbeat: every serving process's lease on what it holds, kept alive, and the
sweep that releases what dead processes held.

A serving process (each worker of ``saferouter serve``, or the one process) opens its
store for an owner of its own (``storage.leases``) and holds a lease. Before it serves,
it takes the lease; then two tasks run side by side:

1. the renewals, on a fixed schedule: every ``lease_s / 3`` (``trio.sleep_until`` the
   next deadline, so the time a renewal takes does not drift the schedule), the lease
   is renewed to ``now + lease_s``. A renewal that fails is tried again every
   :data:`RETRY_DIVISOR`-th of a period until one succeeds — two periods of failures
   (the database briefly away) may pass before another replica may take this one for
   dead;
2. the rounds, each ``lease_s / 3`` after the previous one ended: ``recover(now)``
   (release the reservations of owners whose lease lapsed, anywhere — a replica
   SIGKILLed, or a worker killed alone, is swept by whichever live process looks first,
   within ``lease_s`` plus a round), then the extra steps of :data:`ROUND_STEPS`
   (writing the settlements the store refused, publishing log heads, saying this
   replica is alive), each given the app state and the time.

They are separate tasks because a sweep or a step may be slow (a busy PostgreSQL took
2.6 s for one sweep): in one sequential round, it delayed the next renewal past a
short lease, and the other replica swept this LIVE one's in-flight reservations.

At a graceful stop, once in-flight requests have ended, the lease is given up
(``end_lease``): a request cut short at the graceful timeout is then released by the
next sweep at once. A :class:`~saferouter.errors.StorageError` (the database away) is
logged and tried again: it never stops a worker that may well serve its requests
meanwhile. Leases are judged on the database's clock (``storage.leases``): each host's
own clock is used only as a duration, so replicas whose clocks disagree neither sweep
a live replica nor get swept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import trio

from .attestation.peers import announce_replica
from .errors import StorageError
from .gateway.unsettled import write_unsettled
from .storage import Store

if TYPE_CHECKING:
    from .state import AppState

log = logging.getLogger("saferouter")

RENEWALS_PER_LEASE = 3
# a failed renewal is tried again this many times per period (not a whole period later)
RETRY_DIVISOR = 4

Step = Callable[[float], Awaitable[None]]
"""A round's extra work, given the wall-clock time of the round."""
AppStep = Callable[["AppState", float], Awaitable[None]]
"""A step that needs the worker's state (its store, its attestation service)."""

# The steps every round runs after renewing and sweeping, in this order (app.py binds
# each to the worker's state). Add to this tuple; the loop below stays as it is.
ROUND_STEPS: tuple[AppStep, ...] = (write_unsettled, announce_replica)


class Heartbeat:
    """The lease of ``store``'s owner, renewed every ``lease_s / 3`` while :meth:`run`
    runs; ``wall`` is the clock leases are written in (seconds since the epoch)."""

    def __init__(
        self,
        store: Store,
        *,
        lease_s: float,
        steps: Sequence[tuple[str, Step]] = (),
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.lease_s = lease_s
        self._steps = tuple(steps)
        self._wall = wall
        self._scope = trio.CancelScope()
        self._ended: trio.Event | None = None  # while run() runs: set when it has ended

    @property
    def every_s(self) -> float:
        """How often a round runs."""
        return self.lease_s / RENEWALS_PER_LEASE

    async def take_lease(self) -> None:
        """Before serving. A store that cannot take it stops the start (StorageError):
        a process without a lease would have its reservations swept under it."""
        await self._store.renew_lease(self._wall() + self.lease_s)

    async def renew_on_schedule(self) -> None:
        """Renew the lease every :attr:`every_s` (trio time), forever; a failed renewal
        is tried again every ``every_s / RETRY_DIVISOR`` until one succeeds (the first
        failure of a run is logged, and the success that ends it)."""
        deadline = trio.current_time() + self.every_s
        failures = 0
        while True:
            await trio.sleep_until(deadline)
            try:
                await self._store.renew_lease(self._wall() + self.lease_s)
            except StorageError as exc:
                if not failures:  # the message is the store's: no URL, no secret
                    log.warning("heartbeat: cannot renew the lease, trying again: %s", exc)
                failures += 1
                deadline = trio.current_time() + self.every_s / RETRY_DIVISOR
                continue
            if failures:
                log.warning("heartbeat: lease renewed after %d failed tries", failures)
                failures = 0
            # the next deadline still ahead: a renewal that took long skips, not piles up
            deadline += self.every_s
            deadline = max(deadline, trio.current_time())

    async def beat(self) -> None:
        """One round of the sweep and the steps; every part runs, and a failed one is
        logged, not raised."""
        now = self._wall()
        parts: list[tuple[str, Step]] = [
            ("release dead processes' reservations", self._sweep),
            *self._steps,
        ]
        for name, part in parts:
            try:
                await part(now)
            except StorageError as exc:
                # the message is the store's: it names no URL and no secret
                log.warning(
                    "heartbeat: cannot %s, trying again in %.0f s: %s", name, self.every_s, exc
                )

    async def _sweep(self, now: float) -> None:
        released = await self._store.recover(now)
        if released:
            log.warning("released %d reservations of processes whose lease lapsed", released)

    async def _rounds(self) -> None:
        while True:
            await trio.sleep(self.every_s)
            await self.beat()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Renew the lease and run a round every :attr:`every_s`, until :meth:`stop`."""
        self._ended = ended = trio.Event()
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self.renew_on_schedule)
                    nursery.start_soon(self._rounds)
                    task_status.started()
        finally:
            ended.set()

    async def stop(self) -> None:
        """Stop the renewals and the rounds (waiting for them to end), then give the
        lease up; after the in-flight requests have ended."""
        self._scope.cancel()
        if self._ended is not None:
            await self._ended.wait()
        try:
            await self._store.end_lease()
        except StorageError as exc:  # it lapses by itself within lease_s
            log.warning("heartbeat: cannot end the lease: %s", exc)
