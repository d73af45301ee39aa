"""How long the gateway itself took before a response's first byte: the
``Server-Timing`` header (W3C Server Timing, https://www.w3.org/TR/server-timing/;
the header grammar is ``metric;dur=<ms>`` entries joined by commas).

Every response carries ``gateway;dur=<ms>``: the time from the request's start to its
response start, less the time spent waiting on the upstream. A response served by an
upstream also carries ``upstream;dur=<ms>``, the serving attempt's time to its first
byte (a stream's first data event, a body's whole body).

The measurement lives in one :class:`RequestTiming` per request, made by the ASGI layer
(which sees every request start and every response start, whatever route, error handler
or framework answered) and put in the request scope's ``extensions``; the upstream race
adds its waiting to it. The header is written only at the response start, from that one
object, so no route can forget it or compute it differently. Sans-I/O: the clock is read
by the callers and passed in.
"""

from __future__ import annotations

import attrs

HEADER = b"server-timing"


@attrs.define
class RequestTiming:
    """One request's clock readings (``perf_counter`` seconds)."""

    started_s: float
    # wall-clock time the request spent waiting on upstreams (all attempts of a race,
    # overlaps counted once): excluded from the gateway's own time
    upstream_wait_s: float = 0.0
    # the serving attempt's request-sent → first byte; None when no upstream served
    upstream_first_byte_s: float | None = None

    def waited_on_upstream(self, *, from_s: float, until_s: float) -> None:
        """The request waited on upstreams from ``from_s`` until ``until_s``."""
        self.upstream_wait_s += max(0.0, until_s - from_s)

    def served_by_upstream(self, *, sent_s: float, first_byte_s: float) -> None:
        """The upstream attempt that serves the response sent its request at ``sent_s`` and
        produced its first byte at ``first_byte_s``."""
        self.upstream_first_byte_s = max(0.0, first_byte_s - sent_s)

    def gateway_s(self, now_s: float) -> float:
        """The gateway's own time from the request's start until ``now_s``."""
        return max(0.0, now_s - self.started_s - self.upstream_wait_s)

    def encode_header(self, now_s: float) -> bytes:
        """The ``Server-Timing`` value for a response starting at ``now_s``."""
        metrics = [("gateway", self.gateway_s(now_s))]
        if self.upstream_first_byte_s is not None:
            metrics.append(("upstream", self.upstream_first_byte_s))
        return encode_server_timing(metrics)


def encode_server_timing(metrics: list[tuple[str, float]]) -> bytes:
    """``name;dur=<ms>`` entries, comma-separated; durations are given in seconds and
    written in milliseconds with at most 3 decimals and no trailing zeros (W3C Server
    Timing §3: ``dur`` is a number of milliseconds)."""
    return ", ".join(f"{name};dur={format_ms(seconds)}" for name, seconds in metrics).encode()


def format_ms(seconds: float) -> str:
    """Seconds as milliseconds, rounded to the microsecond: ``0.000412`` → ``"0.412"``,
    ``0.3`` → ``"300"``; never negative, never in exponent notation."""
    text = f"{max(0.0, seconds) * 1000:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
