"""The activity log as a time series: fixed buckets, each with its request and error
counts, nearest-rank p50/p95 latency and time to first byte, and spend.

The SQL stores aggregate in the database (:func:`.activity_log.series`): one indexed
range read of the window, grouped by bucket, and the percentiles picked by
``ROW_NUMBER()`` within each bucket, so what crosses to Python is at most a few rows
per bucket however many requests the window holds. The memory store buckets its
entries in Python (:func:`bucket_entries`). Both place an entry and pick a rank with
the same arithmetic (:meth:`BucketGrid.index`, :func:`nearest_rank`), so the twins
agree to the bit, and both end in :func:`assemble`, which gives every bucket of the
grid a point: a chart has the same number of points whatever the traffic."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Literal

import attrs

from .records import ActivityEntry, ActivityOutcome

# what counts as an error in a bucket: the upstream or the gateway failed the attempt,
# or admission refused the request. Not the client leaving, nor a race's loser
# (``cancelled``): those are no fault of the service an operator watches.
ERROR_OUTCOMES = (ActivityOutcome.ERROR, ActivityOutcome.REJECTED)
PERCENTILES = (50, 95)
Metric = Literal["latency", "ttfb"]
METRICS: tuple[Metric, ...] = ("latency", "ttfb")


@attrs.frozen
class BucketGrid:
    """``count`` buckets of ``width_s`` seconds, the first starting at ``start`` (unix
    seconds); bucket ``i`` holds the entries created in
    ``[start + i * width_s, start + (i + 1) * width_s)``."""

    start: int
    width_s: int
    count: int

    @property
    def end(self) -> int:
        """Where the last bucket ends (excluded)."""
        return self.start + self.width_s * self.count

    def index(self, created_at: float) -> int:
        """The bucket of an entry created at ``created_at`` (within the grid), computed
        as the SQL does: ``floor((created_at - start) / width_s)`` in doubles. An entry
        a hair before :attr:`end` may round up to ``count``: it is the last bucket's."""
        return min(math.floor((created_at - self.start) / self.width_s), self.count - 1)


@attrs.frozen
class ActivityBucket:
    """One point of the series; the percentiles are None when no entry of the bucket
    measured them (an empty bucket has zeros and Nones)."""

    start: int
    requests: int = 0  # activity entries: attempts, and refusals (attempt 0)
    errors: int = 0  # of them, those whose outcome is in ERROR_OUTCOMES
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    ttfb_p50_ms: float | None = None
    ttfb_p95_ms: float | None = None
    cost_micro_usd: int = 0


@attrs.frozen
class BucketCounts:
    requests: int
    errors: int
    cost_micro_usd: int


# (bucket index, metric, percentile) → the value at that rank
Picks = Mapping[tuple[int, Metric, int], float]


def nearest_rank(count: int, pct: int) -> int:
    """The 1-based rank of the ``pct``-th percentile of ``count`` values by the
    nearest-rank method, ``ceil(pct / 100 * count)`` in integers (as the SQL computes
    it: ``(pct * n + 99) / 100``); at least 1 for ``count`` >= 1."""
    return (pct * count + 99) // 100


def assemble(
    grid: BucketGrid, counts: Mapping[int, BucketCounts], picks: Picks
) -> list[ActivityBucket]:
    """Every bucket of ``grid``, in time order, from the per-bucket counts and
    percentile picks (a bucket absent from both is an empty point)."""
    points = []
    for i in range(grid.count):
        have = counts.get(i, BucketCounts(0, 0, 0))
        points.append(
            ActivityBucket(
                start=grid.start + i * grid.width_s,
                requests=have.requests,
                errors=have.errors,
                latency_p50_ms=picks.get((i, "latency", 50)),
                latency_p95_ms=picks.get((i, "latency", 95)),
                ttfb_p50_ms=picks.get((i, "ttfb", 50)),
                ttfb_p95_ms=picks.get((i, "ttfb", 95)),
                cost_micro_usd=have.cost_micro_usd,
            )
        )
    return points


def bucket_entries(grid: BucketGrid, entries: Iterable[ActivityEntry]) -> list[ActivityBucket]:
    """The series of ``entries`` (those created within the grid; others are ignored),
    computed in Python as :func:`.activity_log.series` computes it in SQL."""
    placed: dict[int, list[ActivityEntry]] = defaultdict(list)
    for entry in entries:
        if grid.start <= entry.created_at < grid.end:
            placed[grid.index(entry.created_at)].append(entry)
    counts = {
        i: BucketCounts(
            requests=len(group),
            errors=sum(1 for e in group if e.outcome in ERROR_OUTCOMES),
            cost_micro_usd=sum(e.cost_micro_usd for e in group),
        )
        for i, group in placed.items()
    }
    picks: dict[tuple[int, Metric, int], float] = {}
    for i, group in placed.items():
        measured: dict[Metric, list[float]] = {
            "latency": sorted(e.latency_ms for e in group if e.latency_ms is not None),
            "ttfb": sorted(e.ttfb_ms for e in group if e.ttfb_ms is not None),
        }
        for metric, values in measured.items():
            for pct in PERCENTILES if values else ():
                picks[(i, metric, pct)] = values[nearest_rank(len(values), pct) - 1]
    return assemble(grid, counts, picks)
