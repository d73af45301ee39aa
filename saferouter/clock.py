"""The clock port: the one place request code reads the time.

Two readings, for two purposes:

* :meth:`Clock.now` — trio's clock (``trio.current_time()``), in seconds: durations,
  deadlines, hedge delays, breaker cooldowns, ``Server-Timing``. Reading trio's clock
  rather than ``time.monotonic()`` is what lets a test run the whole pipeline under
  ``trio.testing.MockClock``: a hedge after 2 s, a first-byte timeout after 120 s or a
  circuit cooldown of 30 s pass instantly and exactly.
* :meth:`Clock.wall` — seconds since the epoch: what records carry (activity, ledger)
  and what rate windows (whole minutes) are counted in.

Production uses :class:`TrioClock`; tests build the same pipeline with a wall clock
derived from the mock one.
"""

from __future__ import annotations

import time
from typing import Protocol

import attrs
import trio


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on trio's clock (monotonic; only differences mean anything)."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch."""
        ...


@attrs.frozen
class TrioClock:
    """The real clocks: trio's run clock and the system's wall clock."""

    def now(self) -> float:
        return trio.current_time()

    def wall(self) -> float:
        return time.time()
