"""A worker's metrics snapshot as another worker reads it back (pure): checked whole
before any of it is counted.

A snapshot (:meth:`~saferouter.metrics_registry.MetricsRegistry.snapshot`) travels
between the workers of a ``--workers N`` gateway as a JSON file under
``<data dir>/metrics/`` (:mod:`saferouter.metrics_share`). What the reading worker finds
there is only *meant* to be one: a file of another build, one an operator edited, a
disk that returned garbage. Merged as it came, a non-object failed the merge with an
``AttributeError`` (a 500 for every scrape), a family of the wrong shape was half added
before its error (counts that no worker counted), and a label tuple of the wrong length
was merged fine and only broke the text encoding afterwards (again every scrape). So the
whole snapshot is parsed here first — every family's labels, bucket counts and values
the shape this build writes — and :class:`~saferouter.errors.ParseError` is the only
thing raised (anything else is a bug); the registry adds a snapshot only once it parsed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .errors import ParseError

Labels = tuple[str, ...]
HistogramEntry = tuple[Labels, tuple[int, ...], float]  # labels, bucket counts, sum
TotalEntry = tuple[Labels, int]  # labels, value


def parse_mapping(data: object) -> Mapping[str, object]:
    """The snapshot's top level: a JSON object."""
    if not isinstance(data, Mapping):
        raise ParseError(f"a metrics snapshot is a JSON object, not {type(data).__name__}")
    return data


def parse_histogram(data: object, *, labels: int, buckets: int) -> list[HistogramEntry]:
    """A histogram family: ``[labels, bucket counts, sum]`` per label set, with
    ``labels`` label values and ``buckets`` counts (its bounds and ``+Inf``)."""
    entries = []
    for entry in _list(data, "a histogram"):
        names, counts, total = _list(entry, "a histogram's entry", length=3)
        parsed = tuple(_count(c) for c in _list(counts, "bucket counts", length=buckets))
        entries.append((_labels(names, labels), parsed, _number(total)))
    return entries


def parse_total(data: object, *, labels: int) -> list[TotalEntry]:
    """A counter family: ``[labels, value]`` per label set."""
    entries = []
    for entry in _list(data, "a counter"):
        names, value = _list(entry, "a counter's entry", length=2)
        entries.append((_labels(names, labels), _count(value)))
    return entries


def parse_count(value: object) -> int:
    """A count: an integer, not negative (JSON's ``true`` is no count)."""
    return _count(value)


def _list(data: object, what: str, *, length: int | None = None) -> list[object]:
    if not isinstance(data, list) or (length is not None and len(data) != length):
        size = f" of {length}" if length is not None else ""
        raise ParseError(f"{what} in a metrics snapshot is not a list{size}")
    return data


def _labels(data: object, length: int) -> Labels:
    values = _list(data, "a label set", length=length)
    if not all(isinstance(v, str) for v in values):
        raise ParseError("a label value in a metrics snapshot is not a string")
    return tuple(str(v) for v in values)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParseError("a count in a metrics snapshot is not a non-negative integer")
    return value


def _number(value: object) -> float:
    problem = ParseError("a sum in a metrics snapshot is not a finite number")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise problem
    try:
        number = float(value)  # an integer beyond a float's range overflows
    except OverflowError:
        raise problem from None
    if not math.isfinite(number):
        raise problem
    return number
