"""Group commit, the half both SQL stores share: many requests' writes, one transaction.

Every write is an :class:`Op` — a function ``apply(db)`` run inside a transaction — put
in a queue; whichever request finds no commit in progress commits the whole queue
(:meth:`GroupCommit.run`). Under load many requests share one commit; alone, a request
commits at once. Each op runs in a savepoint of its own (:func:`apply_in_savepoints`), so
one op's failure undoes that op alone and reaches its own caller. How a batch reaches
the database — SQLite's lock fast path, PostgreSQL's retried SERIALIZABLE transaction —
is each store's :meth:`GroupCommit.commit_queue`.

An ``apply`` may run more than once (PostgreSQL rolls back a batch that lost a
serialization conflict), so it does nothing outside the database but compute. Each op
of such a batch waits a jittered pause of its own, doubling with its conflicts, then
joins the queue again — *outside* the commit lock, so the writes queued behind it (a
lease renewal among them) are not held up by its pauses, and a hot row's conflicting
ops spread out into batches of their own.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import trio

from .sql import Db

T = TypeVar("T")

FIRST_PAUSE_S = 0.001  # after an op's first lost conflict; doubled after each next one

# the jitter's own generator: the global one is a test's (hypothesis checks nobody else
# draws from it while it runs)
_JITTER = random.Random()  # noqa: S311 (jitter, not a secret)


class Op(Generic[T]):
    """One queued write and, once its batch committed (or it failed), its outcome."""

    def __init__(self, apply: Callable[[Any], T]) -> None:
        self.apply = apply
        self.value: T | None = None
        self.error: Exception | None = None
        self.finished = False
        self.again = False  # its transaction lost a conflict: run it again
        self.conflicts = 0

    def fail(self, error: Exception) -> None:
        self.error = error
        self.finished = True
        self.again = False

    def lose_conflict(self) -> None:
        """Its batch's transaction lost a conflict and was rolled back: nothing of it was
        written, and it is to run again (:meth:`GroupCommit.run`)."""
        self.value, self.error, self.finished, self.again = None, None, True, True
        self.conflicts += 1

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        assert self.finished
        return self.value  # type: ignore[return-value]


class GroupCommit:
    """The queue, and one commit at a time; subclasses say how a batch commits."""

    def __init__(self) -> None:
        self.queue: list[Op[Any]] = []
        self._lock = trio.Lock()

    async def run(self, apply: Callable[[Any], T]) -> T:
        """Run ``apply(db)`` in a write transaction (with whatever else is queued); what
        it returned, or what it (or the commit) raised."""
        op: Op[T] = Op(apply)
        # Shielded: once queued, the write happens whatever happens to the request, so
        # a cancelled caller never leaves a batch half-recorded. (The commit's own time
        # is bounded by the store: SQLite's busy timeout, PostgreSQL's timeouts and its
        # bound on conflicts.)
        with trio.CancelScope(shield=True):
            while True:
                self.queue.append(op)
                async with self._lock:
                    if not op.finished:
                        await self.commit_queue()
                if not op.again:
                    break
                op.again, op.finished = False, False
                pause_s = FIRST_PAUSE_S * 2 ** (op.conflicts - 1)
                await trio.sleep(_JITTER.uniform(0, pause_s))
        return op.result()

    def take_queue(self) -> list[Op[Any]]:
        """Everything queued, now the batch to commit."""
        batch, self.queue = self.queue, []
        return batch

    async def commit_queue(self) -> None:
        """Commit everything queued: every op of it finished (a value or an error)."""
        raise NotImplementedError


def apply_in_savepoints(
    db: Db, batch: list[Op[Any]], translate: Callable[[Exception], Exception]
) -> None:
    """Run each op of ``batch`` in a savepoint of its own, inside the open transaction.

    Any failure, a caller's own included (a ``make_entry`` that raises), undoes that op
    alone and reaches its caller as ``translate(error)``: no transaction is ever left
    open. ``translate`` may raise instead, for an error that dooms the whole transaction
    (a serialization failure, a lost connection): the caller then rolls it back.
    """
    for op in batch:
        db.execute("SAVEPOINT op")
        try:
            op.value = op.apply(db)
            db.execute("RELEASE op")
        except Exception as exc:
            error = translate(exc)
            db.execute("ROLLBACK TO op")
            db.execute("RELEASE op")
            op.fail(error)
