"""The cap on client connections a worker holds open, and who makes room when it is full.

Without a cap, a client that opens idle sockets until the process runs out of file
descriptors (EMFILE) stops every other client, ``/health`` included. With a plain cap,
the same client fills the cap and leaves new connections waiting in the kernel's
backlog: a denial of service all the same. So at the cap a new connection is still
accepted, and room is made by closing the *idle* connection that has been quiet the
longest (the one a keep-alive timeout would close first anyway). A connection with a
request in flight is never closed to make room: if every connection is busy, the
accept loop waits for one to finish, which is real overload and the backlog's job —
with one exception: a connection whose request body is unfinished and which has sent
nothing for :data:`UPLOAD_QUIET_S` is waiting on its *client*, not on the server (a
slow-body attack holds a request "in flight" for free), so it is closed to make room
after the idle ones.

:class:`ConnectionTable` is the pure core (who is idle, who goes first);
:class:`CappedListener` and :class:`TrackedStream` are the trio shell around a
``trio.SocketListener``. Whether a request is in flight comes from the HTTP layer
(hypercorn's ``Updated(idle=...)`` events, see ``http_worker.py``), which calls
:meth:`TrackedStream.mark_idle`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

import attrs
import trio

from .errors import ConfigError

T = TypeVar("T")

# How long a connection whose request body is unfinished may stay silent and still keep
# its place under the cap when a new client needs one. A real upload keeps sending.
UPLOAD_QUIET_S = 5.0
# While every connection is busy, how often the accept loop looks again for an upload
# that has gone quiet meanwhile (nothing else would wake it).
RECHECK_S = 1.0


class ConnectionTable(Generic[T]):
    """Live connections in order of last activity (least recent first), and which are
    busy. Holds any hashable handle ``T``; does no I/O."""

    def __init__(self, *, max_connections: int) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self._busy: OrderedDict[T, bool] = OrderedDict()

    def __len__(self) -> int:
        return len(self._busy)

    def has_room(self) -> bool:
        """Whether one more connection fits under the cap."""
        return len(self._busy) < self.max_connections

    def add(self, conn: T) -> None:
        """A new connection: idle (no request yet) and the most recently active."""
        self._busy[conn] = False

    def remove(self, conn: T) -> None:
        """A closed connection; removing one twice (or one never added) is a no-op."""
        self._busy.pop(conn, None)

    def touch(self, conn: T) -> None:
        """The connection did something (bytes arrived): it goes to the back of the line."""
        if conn in self._busy:
            self._busy.move_to_end(conn)

    def mark(self, conn: T, *, idle: bool) -> None:
        """The HTTP layer's word on whether ``conn`` has a request in flight."""
        if conn in self._busy:
            self._busy[conn] = not idle
            self._busy.move_to_end(conn)

    def idle(self) -> list[T]:
        """The connections with no request in flight, longest idle first."""
        return [conn for conn, busy in self._busy.items() if not busy]

    def victim(self) -> T | None:
        """The idle connection quiet for longest, or ``None`` when all are busy."""
        return next((conn for conn, busy in self._busy.items() if not busy), None)

    def busy(self) -> list[T]:
        """The connections with a request in flight, least recently active first."""
        return [conn for conn, busy in self._busy.items() if busy]


class TrackedStream(trio.abc.HalfCloseableStream):
    """A ``trio.SocketStream`` that leaves its table when closed and counts received
    bytes as activity. Like the stream it wraps, it has ``socket`` and no
    ``do_handshake`` (hypercorn tells plain TCP from TLS that way)."""

    def __init__(
        self,
        stream: trio.SocketStream,
        listener: CappedListener,
        table: ConnectionTable[TrackedStream],
    ) -> None:
        self._stream = stream
        self._listener = listener
        self._table = table
        self.socket = stream.socket
        self.received_at = trio.current_time()
        # set by the HTTP layer: whether the request in flight still waits for body bytes
        self.awaiting_body: Callable[[], bool] = lambda: False

    def stalled_upload(self, now: float) -> bool:
        """A request body is unfinished and the client has been silent for
        :data:`UPLOAD_QUIET_S`: the connection waits on its client, not on us."""
        return now - self.received_at >= UPLOAD_QUIET_S and self.awaiting_body()

    def mark_idle(self, idle: bool) -> None:
        """Called by the HTTP layer: a request started (``False``) or all finished."""
        self._table.mark(self, idle=idle)
        if idle:
            self._listener.room_changed()

    async def wait_readable(self) -> None:
        """Until the client sends something (or hangs up); ``trio.ClosedResourceError``
        if the stream is closed, before or meanwhile."""
        if self.socket.fileno() == -1:
            # closed to make room before this connection's task first ran: epoll would
            # raise ValueError on fd -1, and that would end the whole worker
            raise trio.ClosedResourceError("closed to make room")
        await trio.lowlevel.wait_readable(self.socket)

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Bytes from the client; any counts as activity."""
        data = await self._stream.receive_some(max_bytes)
        if data:
            self.received_at = trio.current_time()
            self._table.touch(self)
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes to the client."""
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """As ``trio.SocketStream``."""
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """As ``trio.SocketStream``."""
        await self._stream.send_eof()

    def close_now(self) -> None:
        """Close the socket and free its place under the cap (idempotent), without a
        checkpoint: the accept loop evicts this way, one scheduler pass cheaper per
        connection under a flood. A task blocked reading this stream gets
        ``trio.ClosedResourceError``, which hypercorn treats as the client leaving."""
        self._table.remove(self)
        self._listener.room_changed()
        self.socket.close()

    async def aclose(self) -> None:
        """:meth:`close_now`, then a checkpoint (as ``trio.SocketStream.aclose``)."""
        self.close_now()
        await self._stream.aclose()


class CappedListener(trio.abc.Listener[TrackedStream]):
    """A ``trio.SocketListener`` that holds at most ``table.max_connections`` streams,
    making room by closing the longest-idle one (see the module docstring)."""

    def __init__(
        self, listener: trio.SocketListener, table: ConnectionTable[TrackedStream]
    ) -> None:
        self._listener = listener
        self._table = table
        self._waiting = trio.lowlevel.ParkingLot()
        self.socket = listener.socket

    def room_changed(self) -> None:
        """A connection closed or went idle: wake an accept waiting for room."""
        self._waiting.unpark_all()

    async def accept(self) -> TrackedStream:
        """The next connection, once there is room for it under the cap."""
        # Room is made only for a client that is there: closing the quietest connection
        # ahead of time would keep one place always empty, and could close one accepted
        # an instant ago, whose task has not run yet.
        await trio.lowlevel.wait_readable(self.socket)
        while not self._table.has_room():
            victim = self._table.victim() or self._stalled_upload()
            if victim is None:
                # every connection is busy: real overload, unless an upload goes quiet
                with trio.move_on_after(RECHECK_S):
                    await self._waiting.park()
            else:
                victim.close_now()
        stream = TrackedStream(await self._listener.accept(), self, self._table)
        self._table.add(stream)
        return stream

    def _stalled_upload(self) -> TrackedStream | None:
        now = trio.current_time()
        return next((s for s in self._table.busy() if s.stalled_upload(now)), None)

    async def aclose(self) -> None:
        """Close the listening socket (live connections are hypercorn's to close)."""
        await self._listener.aclose()


# What a worker holds open besides client sockets: the listening socket, SQLite's
# database, WAL and shared-memory files, trio's epoll and wake-up pipes, log files.
FILE_MARGIN = 128


@attrs.frozen
class FileLimitPlan:
    """The soft ``RLIMIT_NOFILE`` a worker needs and the connection cap it can afford."""

    soft_limit: int
    max_connections: int
    asked: int

    @property
    def lowered(self) -> bool:
        """Whether the hard limit forced a cap below the one asked for."""
        return self.max_connections < self.asked


def plan_file_limit(
    *, max_connections: int, upstream_per_request: int, max_upstream: int, soft: int, hard: int
) -> FileLimitPlan:
    """Files for ``max_connections`` clients, each with up to ``upstream_per_request``
    upstream sockets (the pool holds at most ``max_upstream``), plus :data:`FILE_MARGIN`;
    bounded by ``hard`` (negative: unlimited). The soft limit is never lowered."""

    def need(cap: int) -> int:
        return cap + min(cap * upstream_per_request, max_upstream) + FILE_MARGIN

    cap = max_connections
    if hard >= 0 and need(cap) > hard:
        # both are affordable (see need()); the larger one is the cap to run with
        by_requests = (hard - FILE_MARGIN) // (1 + upstream_per_request)
        by_pool = hard - FILE_MARGIN - max_upstream
        cap = min(cap, max(by_requests, by_pool))
        if cap < 1:
            raise ConfigError(f"the open-file limit ({hard}) is too low to serve at all")
    soft_limit = soft if soft < 0 else max(soft, need(cap))  # negative soft: unlimited
    return FileLimitPlan(soft_limit=soft_limit, max_connections=cap, asked=max_connections)
