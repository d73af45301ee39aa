"""Settlements the store refused, kept by the worker until it can write them.

A request is settled — its reservation released, its cost charged, its attempts
recorded — before its client is told it completed (``books.py``). When the store cannot
take that write (PostgreSQL away, SQLite locked past its timeout), the client is not
told it completed: a body becomes a 503, a stream ends with an error event instead of
``[DONE]``. But the reservation is in the database, held by this process's owner, and
this process is alive: its lease is renewed, so no sweep (``heartbeat.py``) will ever
release it, and nothing else knows of the request. Left there, a transient outage
would hold a key's credit until the replica restarts.

So the refused settlement is kept here, *voided*: the client never got an answer it
could count as complete, so nothing is charged; the reservation is released and the
serving attempt recorded as ``storage_unavailable``. The heartbeat writes what is kept
every round (:func:`write_unsettled`, one of its ``ROUND_STEPS``) until the store takes
it. Settling is idempotent per request id, so a settlement whose commit did reach the
database before the connection broke stays as it was written.

If the process dies first, its lease lapses and the sweep releases the reservation the
same way (nothing charged): the two paths agree.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import attrs

from ..storage import ActivityOutcome, Settlement, Store

if TYPE_CHECKING:
    from ..state import AppState

log = logging.getLogger("saferouter")

VOID_ERROR = "storage_unavailable"


def voided(settlement: Settlement, *, served: bool) -> Settlement:
    """``settlement`` as written once the store is back: nothing charged, no receipt (it
    stays pending: its request never ended for the client), and — when an attempt
    ``served`` (the last entry) — that attempt recorded as a 503 ``storage_unavailable``
    error, the answer its client got."""
    attempts = settlement.attempts
    if served and attempts:
        *earlier, serving = attempts
        serving = attrs.evolve(
            serving,
            status=503,
            outcome=ActivityOutcome.ERROR,
            error_type=VOID_ERROR,
            cost_micro_usd=0,
            estimated=False,
        )
        attempts = (*earlier, serving)
    return attrs.evolve(settlement, cost_micro_usd=0, tokens=0, attempts=attempts, receipt=None)


class Unsettled:
    """One worker's refused settlements, by request id, until written."""

    def __init__(self) -> None:
        self._kept: dict[str, Settlement] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, settlement: Settlement) -> None:
        """Keep ``settlement`` (already :func:`voided`) to write later."""
        self._kept[settlement.request_id] = settlement

    async def write(self, store: Store) -> int:
        """Write what is kept, oldest first; how many were written. The first that fails
        stops the round (the store is still away) with its StorageError; the rest stay."""
        written = 0
        for request_id, settlement in list(self._kept.items()):
            await store.settle(settlement)
            del self._kept[request_id]
            written += 1
        return written


async def write_unsettled(state: AppState, now: float) -> None:
    """The heartbeat's step: write the worker's kept settlements, if any (a
    StorageError: the store is still away; the heartbeat logs it, the next round retries)."""
    if len(state.unsettled):
        written = await state.unsettled.write(state.store)
        log.warning("wrote %d settlements the database had refused (nothing charged)", written)
