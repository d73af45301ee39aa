"""The connection pool's bookkeeping, without I/O: which idle connection or free slot a
request gets, who waits, and what must be closed.

The trio shell (``pool.py``) owns the sockets; this core only decides, in O(1) per
request (amortised), and returns the connections to close. Every connection is in
exactly one place — idle (on its origin's stack and on the oldest-first list), in use,
or handed back to the shell to close — and ``in_use + idle <= max_connections``, where
a slot granted without a connection (to open one) counts as in use.

* Idle connections wait per origin on a LIFO stack: the hottest one is reused and the
  others age out. Only the connection being taken is inspected: ``is_dead`` — one
  readability check in the shell — catches a socket the server closed while it sat idle.
* Expired (idle longer than ``keepalive_expiry_s``) and surplus (over ``max_idle``)
  connections leave from the oldest end of one list of all idle connections, checked on
  every admit and release — by idle time only, no syscall, stopping at the first young
  one. The oldest idle connection also makes room when a new origin needs a slot and
  every slot is taken.
* When every slot is in use a claim waits in FIFO order. A connection given back goes
  straight to the first waiter (or is closed to free its slot for a waiter of another
  origin), so a newcomer can never overtake a waiter and nobody polls.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

import attrs


class Pooled(Protocol):
    """What the bookkeeping needs of a connection."""

    @property
    def origin(self) -> Hashable: ...

    idle_since_s: float


C = TypeVar("C", bound=Pooled)


@attrs.define(eq=False)
class Claim(Generic[C]):
    """A request's claim on the pool: granted an idle connection, or a slot to open one
    (``connection`` None)."""

    origin: Hashable
    wake: Callable[[], None]  # how the shell learns of the grant (a trio.Event's set)
    granted: bool = False
    connection: C | None = None
    gone: bool = False  # the claimant stopped waiting (deadline, cancel): skipped


class Checkout(Generic[C]):
    """Slots and idle connections of one pool."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_idle: int,
        keepalive_expiry_s: float,
        is_dead: Callable[[C], bool],
    ) -> None:
        self._max_connections = max_connections
        self._max_idle = min(max_idle, max_connections)
        self._keepalive_expiry_s = keepalive_expiry_s
        self._is_dead = is_dead
        self._stacks: dict[Hashable, deque[C]] = {}  # per origin, newest last
        self._idle: OrderedDict[C, None] = OrderedDict()  # every idle one, oldest first
        self._in_use: set[C] = set()
        self._slots_in_use = 0  # in_use, plus slots granted to open a connection
        self._waiters: deque[Claim[C]] = deque()

    def counts(self) -> tuple[int, int]:
        """(slots in use — serving a request or being opened for one, idle)."""
        return self._slots_in_use, len(self._idle)

    def admit(self, claim: Claim[C], now_s: float) -> list[C]:
        """Grant ``claim`` at once if the pool can, else queue it. Returns what to close."""
        closing = self._expire(now_s)
        connection = self._pop_idle(claim.origin, now_s, closing)
        if connection is not None:
            self._grant(claim, connection)
        elif self._slots_in_use + len(self._idle) < self._max_connections:
            self._grant(claim, None)
        elif self._idle:  # full, but another origin's idle connection makes room
            closing.append(self._pop_oldest())
            self._grant(claim, None)
        else:
            self._waiters.append(claim)
        return closing

    def opened(self, connection: C) -> None:
        """A granted slot now has its connection."""
        self._in_use.add(connection)

    def lost(self, connection: C) -> None:
        """An in-use connection is gone (closed by its exchange); its slot stays taken."""
        self._in_use.discard(connection)

    def release(self, connection: C | None, *, reusable: bool, now_s: float) -> list[C]:
        """Give back a slot and its connection (``None``: it never connected; not
        ``reusable``: it is closed). Returns what to close."""
        self._slots_in_use -= 1
        closing: list[C] = []
        if connection is not None:
            self._in_use.discard(connection)
            if not reusable:
                closing.append(connection)
        keep = connection if reusable else None
        waiter = self._next_waiter()
        if waiter is not None:
            if keep is not None and keep.origin == waiter.origin:
                self._grant(waiter, keep)
                return closing
            if keep is not None:
                closing.append(keep)  # another origin's: its slot goes to the waiter
            self._grant(waiter, None)
            return closing
        if keep is not None:
            keep.idle_since_s = now_s
            self._idle[keep] = None
            self._stacks.setdefault(keep.origin, deque()).append(keep)
            closing += self._expire(now_s)
        return closing

    def drain(self) -> list[C]:
        """Forget every connection, idle or in use, for the shell to close."""
        everything = [*self._idle, *self._in_use]
        self._idle.clear()
        self._stacks.clear()
        self._in_use.clear()
        return everything

    def _grant(self, claim: Claim[C], connection: C | None) -> None:
        self._slots_in_use += 1
        if connection is not None:
            self._in_use.add(connection)
        claim.granted = True
        claim.connection = connection
        claim.wake()

    def _pop_idle(self, origin: Hashable, now_s: float, closing: list[C]) -> C | None:
        stack = self._stacks.get(origin)
        while stack:
            connection = stack.pop()
            del self._idle[connection]
            if self._is_dead(connection):  # (expired ones already left, oldest first)
                closing.append(connection)
            else:
                return connection
        return None

    def _pop_oldest(self) -> C:
        connection, _ = self._idle.popitem(last=False)
        oldest = self._stacks[connection.origin].popleft()
        assert oldest is connection  # the oldest overall is the oldest of its origin
        return connection

    def _expire(self, now_s: float) -> list[C]:
        closing: list[C] = []
        while self._idle:
            oldest = next(iter(self._idle))
            expired = now_s - oldest.idle_since_s > self._keepalive_expiry_s
            if not expired and len(self._idle) <= self._max_idle:
                break
            closing.append(self._pop_oldest())
        return closing

    def _next_waiter(self) -> Claim[C] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.gone:
                return waiter
        return None
