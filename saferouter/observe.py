"""What one request did, as observers see it once it is over.

``/metrics`` (Prometheus histograms) and OpenTelemetry spans are both drawn from this
one record, so they cannot tell two different stories about the same request. The
request's code fills a :class:`RequestTrace` as it learns things (the route, the model
asked for, each upstream attempt, the usage and the charge); when the response has been
sent in full (or the client has left), the trace is finished and handed to every
:class:`Observer`. Observers run after the fact, off the request's path: they get
numbers and names only — never a prompt, a completion or a key.

Times are on the pipeline's clock (``Clock.now``: trio's, monotonic, seconds) with one
wall-clock anchor, so an exporter that needs epoch time (OpenTelemetry's nanoseconds)
converts with :meth:`RequestTrace.wall_s`.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Protocol

import attrs

log = logging.getLogger(__name__)


class StartedBy(enum.StrEnum):
    """Why an upstream attempt started."""

    FIRST = "first"  # the request's first attempt
    FALLBACK = "fallback"  # the one before it failed
    HEDGE = "hedge"  # the one before it was still silent after its model's hedge_after_ms


@attrs.define
class AttemptTrace:
    """One upstream attempt."""

    number: int  # 1-based, in the order attempts started
    provider: str  # the catalog's provider id
    provider_kind: str  # the catalog's provider kind (OpenTelemetry's gen_ai.system)
    model: str  # the catalog's model id
    upstream_model: str  # the model name the provider was sent
    started_by: StartedBy
    started_s: float
    first_byte_s: float | None = None
    ended_s: float | None = None
    # the attempt's AttemptOutcome value: "won", "error" or "cancelled"
    outcome: str = "pending"
    status: int | None = None  # the upstream's HTTP status, when it answered
    # the error code when it failed, or what cut it short ("lost_race",
    # "client_disconnected")
    error_type: str | None = None
    byok: bool = False  # it carried the client's own provider key


@attrs.define
class RequestTrace:
    """One HTTP request, from hypercorn handing it over to its last byte sent."""

    request_id: str
    method: str
    # the route as a template, never the raw path (a label must not take what a client
    # typed): "/v1/chat/completions", "/v1/keys/<key_id>", "unmatched"
    route: str
    started_s: float
    started_wall_s: float  # the wall clock (seconds since the epoch) at ``started_s``
    api: str | None = None  # the dialect's Api value, for the LLM APIs
    stream: bool = False
    requested_model: str | None = None  # the catalog id asked for, once routed
    served_model: str | None = None  # the catalog id that served (a fallback's own)
    provider: str | None = None  # the provider that served
    provider_kind: str | None = None
    response_id: str | None = None  # the upstream's id for its answer
    attempts: list[AttemptTrace] = attrs.Factory(list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_micro_usd: int | None = None  # what the key was charged
    finish_reason: str | None = None
    status: int | None = None  # the status the client was sent
    error_type: str | None = None  # the error code the client was sent, if any
    # the gateway's own time before the response start (Server-Timing's ``gateway``)
    gateway_overhead_s: float | None = None
    first_byte_s: float | None = None  # when the response started, on the clock
    ended_s: float | None = None  # when its last byte went out (or the client left)
    # the client's W3C Trace Context (``traceparent``, ``tracestate``: ids and vendor
    # keys, bounded; :func:`trace_context`), for an exporter to continue its trace
    traceparent: str | None = None
    tracestate: str | None = None

    @property
    def fallback(self) -> bool:
        """A model other than the one asked for served."""
        return (
            self.served_model is not None
            and self.requested_model is not None
            and self.served_model != self.requested_model
        )

    @property
    def hedged(self) -> bool:
        """An attempt was started as a hedge."""
        return any(a.started_by is StartedBy.HEDGE for a in self.attempts)

    def wall_s(self, clock_s: float) -> float:
        """A reading of the pipeline's clock as seconds since the epoch."""
        return self.started_wall_s + (clock_s - self.started_s)


# W3C Trace Context's bounds: a traceparent of any version is at most this long here
# (version 00 is 55 characters); a vendor must pass on a tracestate of at least 512
TRACEPARENT_MAX_CHARS = 128
TRACESTATE_MAX_CHARS = 512
TRACESTATE_MAX_MEMBERS = 32  # W3C Trace Context §3.3.1.1
# a list-member's grammar (W3C Trace Context §3.3.1.3): a simple or a multi-tenant key,
# "=", a value of printable ASCII but "," and "=" that does not end in a space
_TRACESTATE_MEMBER = re.compile(
    r"(?:[a-z][_0-9a-z*/-]{0,255}|[a-z0-9][_0-9a-z*/-]{0,240}@[a-z][_0-9a-z*/-]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)


def trace_context(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    """The request's W3C Trace Context headers (``traceparent``, ``tracestate``), as
    text an exporter can parse — or None each. A traceparent sent twice is no parent
    (the spec's rule); tracestate headers join with commas, and one over its bound or
    not a valid list is dropped whole (never cut: a cut member would be a different
    one; the parent stays). Only bounded printable ASCII is kept: the values are a
    client's, kept in memory to the end of the request."""
    parents: list[bytes] = []
    states: list[bytes] = []
    for name, value in headers:
        if name.lower() == b"traceparent":
            parents.append(value)
        elif name.lower() == b"tracestate":
            states.append(value)
    parent = _printable(parents[0], TRACEPARENT_MAX_CHARS) if len(parents) == 1 else None
    state = _printable(b",".join(states), TRACESTATE_MAX_CHARS) if states else None
    if parent is None or state is None:
        return parent, None
    return parent, state if _valid_tracestate(state) else None


def _valid_tracestate(state: str) -> bool:
    """Every member well-formed, at most 32, no key twice (W3C Trace Context §3.3.1).
    Checked here, not left to the exporter's SDK: it would drop a bad state too, but
    log a warning quoting the client's text, once per request (the client's words in
    our log, as often as it likes)."""
    keys = []
    for member in state.split(","):
        member = member.strip(" \t")
        if not member:
            continue  # an empty member is allowed, and nothing
        if _TRACESTATE_MEMBER.fullmatch(member) is None:
            return False
        keys.append(member.partition("=")[0])
    return len(keys) <= TRACESTATE_MAX_MEMBERS and len(set(keys)) == len(keys)


def _printable(value: bytes, max_chars: int) -> str | None:
    text = value.strip(b" \t")
    if not text or len(text) > max_chars or not all(0x20 <= b < 0x7F for b in text):
        return None
    return text.decode("ascii")


class Observer(Protocol):
    def request_done(self, trace: RequestTrace) -> None:
        """A finished request. Called once per request, in the request's task after its
        response is over: it must not block (hand slow work to a thread or a queue)."""
        ...


@attrs.frozen
class Observers:
    """Every observer of this worker; one that raises is logged and the others still run
    (an exporter's bug must not fail a request that has already been served)."""

    observers: Sequence[Observer] = ()

    def request_done(self, trace: RequestTrace) -> None:
        """Hand ``trace`` to each observer."""
        for observer in self.observers:
            try:
                observer.request_done(trace)
            except Exception:
                log.exception("observer %s failed", type(observer).__name__)
