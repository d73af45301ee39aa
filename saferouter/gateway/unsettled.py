"""Settlements the store refused, kept by the worker until it can write them.

A request is settled — its reservation released, its cost charged, its attempts
recorded — before its client is told it completed (``books.py``). When the store cannot
take that write (PostgreSQL away, SQLite locked past its timeout), the client is not
told it completed: a body becomes a 503, a stream ends with an error event instead of
``[DONE]``. But the reservation is in the database, held by this process's owner, and
this process is alive: its lease is renewed, so no sweep (``heartbeat.py``) will ever
release it, and nothing else knows of the request. Left there, a transient outage
would hold a key's credit until the replica restarts.

So the refused settlement is kept here, and the heartbeat writes what is kept every
round (:func:`write_unsettled`, one of its ``ROUND_STEPS``) until the store takes it.
It is the same settlement: a stream's client was relayed those tokens, and what was
relayed is billed everywhere else (a client that leaves or stalls). A body the client
never got (its 503 went out instead) is kept :func:`voided`: nothing relayed, nothing
charged. Settling is idempotent per request id, so a settlement whose commit did reach
the database before the connection broke stays as it was written.

At most :data:`MAX_KEPT` are kept (memory is bounded through a long outage); one
refused beyond that keeps its reservation until the replica restarts (its start
releases its own). Logs carry counts only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import attrs

from ..errors import StorageError, StorageUnavailable
from ..storage import ActivityOutcome, Settlement, Store

if TYPE_CHECKING:
    from ..state import AppState

log = logging.getLogger("saferouter")

VOID_ERROR = "storage_unavailable"
MAX_KEPT = 10_000


def voided(settlement: Settlement, *, served: bool) -> Settlement:
    """``settlement`` for a body its client never got: nothing charged, no receipt (it
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

    def __init__(self, *, max_kept: int = MAX_KEPT) -> None:
        self._kept: dict[str, Settlement] = {}
        self._max_kept = max_kept
        self.dropped = 0  # refused beyond max_kept: left for the replica's restart

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, settlement: Settlement) -> None:
        """Keep ``settlement`` to write later (not beyond ``max_kept``: counted dropped)."""
        if len(self._kept) >= self._max_kept and settlement.request_id not in self._kept:
            self.dropped += 1
            return
        self._kept[settlement.request_id] = settlement

    async def write(self, store: Store) -> int:
        """Write what is kept, oldest first; how many were written. The store away
        (StorageUnavailable) stops the round; a settlement the store refuses otherwise
        stays kept and the others are still written — one it can never take must not
        hold back the rest — and the round then ends with that refusal."""
        written = 0
        refused: StorageError | None = None
        for request_id, settlement in list(self._kept.items()):
            try:
                await store.settle(settlement)
            except StorageUnavailable:
                raise
            except StorageError as error:
                refused = error
                continue
            del self._kept[request_id]
            written += 1
        if refused is not None:
            raise refused
        return written


async def write_unsettled(state: AppState, now: float) -> None:
    """The heartbeat's step: write the worker's kept settlements, if any (a
    StorageError: the store is still away; the heartbeat logs it, the next round retries)."""
    if len(state.unsettled):
        written = await state.unsettled.write(state.store)
        log.warning(
            "wrote %d settlements the database had refused (%d dropped over the bound)",
            written,
            state.unsettled.dropped,
        )
