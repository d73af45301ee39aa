"""One upstream attempt of a request's race: which plan it carries out (model, endpoint,
whose provider key), the circuit breaker's leave it runs under (none with the client's own
key), and what became of it — kept apart from the race that starts, judges and cancels
attempts (``race.py``): the relay, the receipt and the pipeline read attempts too.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator

import attrs
import httpcore
import trio

from ..catalog import Model
from ..config import UpstreamEndpoint
from ..errors import UpstreamError
from ..observe import StartedBy
from ..sse import SSEDecoder, SSEEvent
from .breaker import Admission
from .dialect import BodyFacts
from .routing import Plan


class AttemptOutcome(enum.StrEnum):
    """How an upstream attempt ended (the activity log's outcome for one that lost)."""

    PENDING = "pending"  # still running
    WON = "won"  # produced the first byte: it serves the response
    ERROR = "error"  # failed (its ``error`` says how)
    CANCELLED = "cancelled"  # stopped: another attempt won, or the request ended


@attrs.define(eq=False)
class Attempt:
    """One attempt, from its admission until it won (its open response goes to the relay)
    or ended otherwise (its response closed)."""

    number: int
    plan: Plan
    # the breaker's leave, settled once the outcome is known; None: the client's own key
    admission: Admission | None
    started: float  # on the clock (``Clock.now``), as every time below
    scope: trio.CancelScope
    sent_at: float | None = None  # once its body is encoded and sending
    response: httpcore.Response | None = None
    status: int = 0
    # stream: what was read before winning, and where reading goes on
    decoder: SSEDecoder | None = None
    chunks: AsyncIterator[bytes] | None = None
    prelude: list[SSEEvent] = attrs.Factory(list)
    body: bytes | None = None  # non-stream
    facts: BodyFacts | None = None  # what that body says (read once, when it arrived)
    first_byte_at: float | None = None
    ended_at: float | None = None
    error: UpstreamError | None = None
    outcome: AttemptOutcome = AttemptOutcome.PENDING
    started_by: StartedBy = StartedBy.FIRST  # the race's reason to start it

    @property
    def model(self) -> Model:
        return self.plan.model

    @property
    def endpoint(self) -> UpstreamEndpoint:
        return self.plan.endpoint

    @property
    def byok(self) -> bool:
        """Whether it carries the client's own provider key."""
        return self.plan.own_key is not None
