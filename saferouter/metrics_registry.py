"""This worker's request metrics: histograms and counters drawn from finished
:class:`~saferouter.observe.RequestTrace`\\ s, and the Prometheus text format 0.0.4 they
are written in. Pure: no I/O, no clock, no lock (one trio thread updates and reads it).

Why our own small code and not ``prometheus_client``'s registry: its metrics are
process globals guarded by locks, its histograms take any label value given them, and
the gateway needs none of its exporters; what it needs is a few dicts of counts with
**fixed bucket bounds**, updated by a few additions per finished request, and **label
values that cannot grow without bound**: a route is a template, a status a number, and a
model a catalog id — a name a client made up (an unknown or prefix-routed model) is
``"unknown"`` or ``"unlisted"``, never a label value of its own.

Counts are per worker process: each hypercorn worker has its own registry. A registry's
:meth:`~MetricsRegistry.snapshot` is plain JSON data, and :meth:`~MetricsRegistry.merge`
adds one into another: how a gateway of several workers shows all of them
(:mod:`saferouter.metrics_share`).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from functools import partial
from typing import Any

import attrs

from .errors import ParseError
from .metrics_snapshot import (
    HistogramEntry,
    TotalEntry,
    parse_count,
    parse_histogram,
    parse_mapping,
    parse_total,
)
from .metrics_text import encode_family, encode_head, encode_sample, encode_value
from .observe import RequestTrace

# request duration and upstream total: a cached answer in ms, a thinking stream in minutes
DURATION_BOUNDS_S = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip
# the gateway's own time before the response start: well under a millisecond to 1 s
OVERHEAD_BOUNDS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
# an upstream's time to first byte: a fast model's 100 ms to a cold one's minute
FIRST_BYTE_BOUNDS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
UNKNOWN_MODEL = "unknown"  # an API request no catalog model was resolved for
UNLISTED_MODEL = "unlisted"  # a model a provider's prefix let the client name freely
SNAPSHOT_VERSION = 1
NO_STATUS = "499"  # no response started: the client left first (nginx's "client closed")

Labels = tuple[str, ...]


@attrs.define
class Histogram:
    """Observations per label set, counted into fixed buckets (upper bounds, inclusive,
    as Prometheus's ``le``); the text form is cumulative, with ``+Inf``, sum and count."""

    name: str
    help_text: str
    label_names: Labels
    bounds: tuple[float, ...]
    # per label set: the count in each bucket (the last one above every bound), the sum
    counts: dict[Labels, list[int]] = attrs.Factory(dict)
    sums: dict[Labels, float] = attrs.Factory(dict)

    def observe(self, labels: Labels, value: float) -> None:
        """One observation of ``value`` under ``labels`` (in ``label_names``' order)."""
        counts = self.counts.get(labels)
        if counts is None:
            counts = self.counts[labels] = [0] * (len(self.bounds) + 1)
        counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sums[labels] = self.sums.get(labels, 0.0) + value

    def snapshot(self) -> list[list[Any]]:
        """``[labels, bucket counts, sum]`` per label set (fresh lists: JSON data)."""
        return [[list(k), list(c), self.sums[k]] for k, c in self.counts.items()]

    def parse(self, snapshot: object) -> list[HistogramEntry]:
        """Another registry's :meth:`snapshot` of this family, checked (ParseError)."""
        return parse_histogram(snapshot, labels=len(self.label_names), buckets=len(self.bounds) + 1)

    def merge(self, entries: list[HistogramEntry]) -> None:
        """Add another registry's :meth:`snapshot` of this family, as :meth:`parse` read it."""
        for key, counts, total in entries:
            mine = self.counts.setdefault(key, [0] * (len(self.bounds) + 1))
            self.counts[key] = [a + b for a, b in zip(mine, counts, strict=True)]
            self.sums[key] = self.sums.get(key, 0.0) + total

    def encode(self) -> str:
        """The family in the text format."""
        samples: list[tuple[str, Mapping[str, str], int | float]] = []
        for labels, counts in sorted(self.counts.items()):
            named = dict(zip(self.label_names, labels, strict=True))
            total = 0
            for bound, count in zip([*self.bounds, float("inf")], counts, strict=True):
                total += count
                samples.append(("_bucket", {**named, "le": encode_value(bound)}, total))
            samples.append(("_sum", named, self.sums[labels]))
            samples.append(("_count", named, total))
        lines = encode_head(self.name, "histogram", self.help_text)
        lines += [encode_sample(self.name + end, labels, n) for end, labels, n in samples]
        return "\n".join(lines) + "\n"


@attrs.define
class Total:
    """A counter per label set."""

    name: str  # with its ``_total`` suffix
    help_text: str
    label_names: Labels
    values: Counter[Labels] = attrs.Factory(Counter)

    def add(self, labels: Labels, amount: int = 1) -> None:
        self.values[labels] += amount

    def snapshot(self) -> list[list[Any]]:
        """``[labels, value]`` per label set."""
        return [[list(labels), value] for labels, value in self.values.items()]

    def parse(self, snapshot: object) -> list[TotalEntry]:
        """Another registry's :meth:`snapshot` of this counter, checked (ParseError)."""
        return parse_total(snapshot, labels=len(self.label_names))

    def merge(self, entries: list[TotalEntry]) -> None:
        """Add another registry's :meth:`snapshot` of this counter, as :meth:`parse` read it."""
        for labels, value in entries:
            self.values[labels] += value

    def encode(self) -> str:
        return encode_family(
            self.name,
            "counter",
            self.help_text,
            [
                (dict(zip(self.label_names, labels, strict=True)), value)
                for labels, value in sorted(self.values.items())
            ],
        )


@attrs.define
class OpenStreams:
    """Streamed responses being relayed now (the HTTP layer holds one while it sends)."""

    count: int = 0
    changes: int = 0  # how often it changed (for a snapshot's writer to know)

    def opened(self) -> None:
        self.count += 1
        self.changes += 1

    def closed(self) -> None:
        self.count -= 1
        self.changes += 1


# the families: name, help, label names (and a histogram's bucket bounds)
REQUEST_LABELS = ("route", "model", "status")
REQUEST_DURATION = (
    "saferouter_request_duration_seconds",
    "HTTP requests by route template, model asked for and status: from the request's "
    "start to its last byte (or the client leaving).",
    REQUEST_LABELS,
    DURATION_BOUNDS_S,
)
GATEWAY_OVERHEAD = (
    "saferouter_gateway_overhead_seconds",
    "The gateway's own time before a response started (Server-Timing's gateway): "
    "the request's time less its upstream waits.",
    REQUEST_LABELS,
    OVERHEAD_BOUNDS_S,
)
UPSTREAM_FIRST_BYTE = (
    "saferouter_upstream_first_byte_seconds",
    "Upstream attempts' time from their start to their first byte (a stream's first "
    "data event, a body's whole body).",
    ("provider", "model"),
    FIRST_BYTE_BOUNDS_S,
)
UPSTREAM_DURATION = (
    "saferouter_upstream_duration_seconds",
    "Upstream attempts' time from their start to their end (a served stream's last "
    "event), by how they ended.",
    ("provider", "model", "outcome"),
    DURATION_BOUNDS_S,
)
ATTEMPTS = (
    "saferouter_upstream_attempts_total",
    "Upstream attempts by provider, outcome (won, error, cancelled) and why they "
    "started (first, fallback, hedge).",
    ("provider", "outcome", "started_by"),
)
TOKENS = (
    "saferouter_tokens_total",
    "Tokens billed by the model and provider that served, input or output.",
    ("model", "provider", "type"),
)
COST = (
    "saferouter_cost_micro_usd_total",
    "What requests were charged, in micro-USD, by the model and provider that served.",
    ("model", "provider"),
)


@attrs.define
class MetricsRegistry:
    """The worker's request metrics; an :class:`~saferouter.observe.Observer`."""

    # the catalog's listed model ids: the only model label values besides the two above
    known_models: frozenset[str]
    open_streams: OpenStreams = attrs.Factory(OpenStreams)
    requests_counted: int = 0
    requests: Histogram = attrs.Factory(partial(Histogram, *REQUEST_DURATION))
    overhead: Histogram = attrs.Factory(partial(Histogram, *GATEWAY_OVERHEAD))
    first_byte: Histogram = attrs.Factory(partial(Histogram, *UPSTREAM_FIRST_BYTE))
    upstream: Histogram = attrs.Factory(partial(Histogram, *UPSTREAM_DURATION))
    attempts: Total = attrs.Factory(partial(Total, *ATTEMPTS))
    tokens: Total = attrs.Factory(partial(Total, *TOKENS))
    cost: Total = attrs.Factory(partial(Total, *COST))

    @property
    def changes(self) -> int:
        """Grows with every change (a request counted, a stream opened or closed)."""
        return self.requests_counted + self.open_streams.changes

    def request_done(self, trace: RequestTrace) -> None:
        """Count a finished request (a few additions: it runs in the request's task)."""
        self.requests_counted += 1
        status = str(trace.status) if trace.status is not None else NO_STATUS
        asked = self.model_label(trace.requested_model, api=trace.api is not None)
        if trace.ended_s is not None:
            self.requests.observe((trace.route, asked, status), trace.ended_s - trace.started_s)
        if trace.gateway_overhead_s is not None:
            self.overhead.observe((trace.route, asked, status), trace.gateway_overhead_s)
        for attempt in trace.attempts:
            model = self.model_label(attempt.model)
            self.attempts.add((attempt.provider, attempt.outcome, attempt.started_by.value))
            if attempt.first_byte_s is not None:
                self.first_byte.observe(
                    (attempt.provider, model), attempt.first_byte_s - attempt.started_s
                )
            if attempt.ended_s is not None:
                self.upstream.observe(
                    (attempt.provider, model, attempt.outcome), attempt.ended_s - attempt.started_s
                )
        if trace.provider is None:
            return
        served = (self.model_label(trace.served_model), trace.provider)
        self.tokens.add((*served, "input"), trace.input_tokens or 0)
        self.tokens.add((*served, "output"), trace.output_tokens or 0)
        self.cost.add(served, trace.cost_micro_usd or 0)

    def model_label(self, model: str | None, *, api: bool = True) -> str:
        """A model as a label value: a listed catalog id as it is, else one of a few fixed
        values ("" for a request of no LLM API)."""
        if model is None:
            return UNKNOWN_MODEL if api else ""
        return model if model in self.known_models else UNLISTED_MODEL

    @property
    def histograms(self) -> dict[str, Histogram]:
        return {
            "requests": self.requests,
            "overhead": self.overhead,
            "first_byte": self.first_byte,
            "upstream": self.upstream,
        }

    @property
    def totals(self) -> dict[str, Total]:
        return {"attempts": self.attempts, "tokens": self.tokens, "cost": self.cost}

    @property
    def families(self) -> dict[str, Histogram | Total]:
        return {**self.histograms, **self.totals}

    def snapshot(self) -> dict[str, Any]:
        """Every count as JSON data, for another process to :meth:`merge`."""
        families = {name: family.snapshot() for name, family in self.families.items()}
        return {"version": SNAPSHOT_VERSION, "open_streams": self.open_streams.count, **families}

    def merge(self, data: object) -> None:
        """Add another registry's :meth:`snapshot` (of this build: the same families and
        bounds) to this one; its open streams too. All of it or, when any of it is not
        what this build writes (:mod:`~saferouter.metrics_snapshot`), none of it:
        :class:`~saferouter.errors.ParseError`."""
        snapshot = parse_mapping(data)
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ParseError("not a metrics snapshot of this version")
        # (1) parse every family, (2) only then add: a bad family adds nothing at all
        histograms = [(h, h.parse(snapshot.get(n))) for n, h in self.histograms.items()]
        totals = [(t, t.parse(snapshot.get(n))) for n, t in self.totals.items()]
        open_streams = parse_count(snapshot.get("open_streams"))
        for histogram, entries in histograms:
            histogram.merge(entries)
        for total, counted in totals:
            total.merge(counted)
        self.open_streams.count += open_streams

    def encode(self) -> str:
        """Every family of this registry in the text format."""
        text = "".join(family.encode() for family in self.families.values())
        return text + encode_family(
            "saferouter_open_streams",
            "gauge",
            "Streamed responses being relayed now.",
            [({}, self.open_streams.count)],
        )
