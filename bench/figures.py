"""The bench's arithmetic, free of I/O: percentiles, inter-chunk gaps, the ratios to the
floor with their targets (issue 11), and the markdown table for the README.

The targets are ratios to the floor measured in the same run because the machines change
speed several-fold from day to day; the absolute targets are printed beside them for the
day the machine is as fast as when they were set (floor: 0.94 ms added, 605 req/s,
1.65 ms CPU per request, 1.73 ms added TTFB).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

Better = Literal["lower", "higher"]


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (``pct`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def summary(times_ms: Sequence[float]) -> dict[str, float]:
    """p50 and p99, rounded to the microsecond."""
    return {
        "p50_ms": round(statistics.median(times_ms), 3),
        "p99_ms": round(percentile(times_ms, 99), 3),
    }


def excess_gaps_ms(received_s: Sequence[float], sent_ms: Sequence[float]) -> list[float]:
    """For one stream: how much longer each gap between consecutive chunks was at the
    client than at the upstream that wrote them (``received_s[i]`` is when the client had
    chunk i, ``sent_ms[i]`` when the upstream wrote it). Only differences of one clock are
    taken, so the two clocks need not agree."""
    if len(received_s) != len(sent_ms):
        raise ValueError(f"{len(received_s)} receive times for {len(sent_ms)} chunks")
    return [
        (received_s[i] - received_s[i - 1]) * 1000 - (sent_ms[i] - sent_ms[i - 1])
        for i in range(1, len(sent_ms))
    ]


@attrs.frozen
class Target:
    """One row of issue 11's Targets: ``path`` into the results, and its goal."""

    figure: str
    path: tuple[str, ...]
    better: Better
    absolute: float
    unit: str
    floor_ratio: float | None = None  # the ratio to the floor's figure, where one is set

    def met(self, value: float, goal: float) -> bool:
        return value <= goal if self.better == "lower" else value >= goal


TARGETS = (
    Target(
        "added latency p50, sequential", ("sequential", "added_p50_ms"), "lower", 0.5, "ms", 0.53
    ),
    Target("added latency p99, sequential", ("sequential", "added_p99_ms"), "lower", 1.5, "ms"),
    Target("requests/s at 50 connections", ("throughput_c50", "rps"), "higher", 1400, "req/s", 2.3),
    Target("CPU per request", ("throughput_c50", "cpu_ms_per_request"), "lower", 0.69, "ms", 0.42),
    Target(
        "added time to first byte (stream)",
        ("stream_ttfb", "added_p50_ms"),
        "lower",
        1.0,
        "ms",
        0.58,
    ),
    Target("memory per open stream", ("memory", "per_stream_kib"), "lower", 40, "KiB"),
)
WORKERS_TARGET = 1.8  # requests/s with --workers 2 on 2 cores / 1 worker on 1 core
# the absolute CPU target is the ratio applied to the floor's 1.65 ms when it was set


def figure(results: Mapping[str, Any], target: str, path: tuple[str, ...]) -> float:
    """``results[section][target][key]`` for ``path`` = (section, key)."""
    section, key = path
    return float(results[section][target][key])


def ratio_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target against SafeRouter's figure (billing on), as a ratio to the floor's
    where the issue sets one, and as an absolute figure."""
    rows = []
    for target in TARGETS:
        value = figure(results, "gateway", target.path)
        row: dict[str, Any] = {
            "figure": target.figure,
            "unit": target.unit,
            "gateway": value,
            "absolute_target": target.absolute,
            "absolute_met": target.met(value, target.absolute),
        }
        if target.floor_ratio is not None:
            floor = figure(results, "floor", target.path)
            ratio = value / floor if floor else float("inf")
            row |= {
                "floor": floor,
                "ratio": round(ratio, 2),
                "ratio_target": target.floor_ratio,
                "ratio_met": target.met(ratio, target.floor_ratio),
            }
        rows.append(row)
    return rows


def _op(target: Target) -> str:
    return "≤" if target.better == "lower" else "≥"


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def _mark(met: bool) -> str:
    return "met" if met else "**not met**"


def markdown(results: Mapping[str, Any]) -> str:
    """The README table: every target with the floor, the ratio and the verdicts, the
    workers ratio, billing on vs off, and the inter-chunk figures, headed by date and
    machine."""
    machine = results["machine"]
    lines = [
        f"Measured {results['when']} on {machine['cpu']} ({machine['cores']} cores), "
        f"{machine['pinning']}.",
        "",
        "| figure | direct | floor | SafeRouter | ratio to floor (target) | absolute target |",
        "|---|---|---|---|---|---|",
    ]
    by_figure = {row["figure"]: row for row in ratio_rows(results)}
    for target in TARGETS:
        row = by_figure[target.figure]
        direct = results[target.path[0]].get("direct", {}).get(target.path[1])
        floor = results[target.path[0]].get("floor", {}).get(target.path[1])
        ratio = (
            f"{row['ratio']:.2f}× ({_op(target)} {target.floor_ratio}×) {_mark(row['ratio_met'])}"
            if "ratio" in row
            else ""
        )
        lines.append(
            f"| {target.figure} ({target.unit}) | {'' if direct is None else _num(direct)} "
            f"| {'' if floor is None else _num(floor)} | {_num(row['gateway'])} | {ratio} "
            f"| {_op(target)} {_num(target.absolute)} {_mark(row['absolute_met'])} |"
        )
    workers = results["workers"]
    lines.append(
        f"| `--workers 2` on 2 cores vs 1 worker (req/s) | | | {_num(workers['two_rps'])} / "
        f"{_num(workers['one_rps'])} = {workers['ratio']:.2f}× | | ≥ {WORKERS_TARGET}× "
        f"{_mark(workers['ratio'] >= WORKERS_TARGET)} |"
    )
    if "workers_accounting_off" in results:
        off = results["workers_accounting_off"]
        lines.append(
            f"| the same, billing off (req/s) | | | {_num(off['two_rps'])} / "
            f"{_num(off['one_rps'])} = {off['ratio']:.2f}× | | |"
        )
    lines += ["", *_extras(results)]
    return "\n".join(lines) + "\n"


def _extras(results: Mapping[str, Any]) -> list[str]:
    """Billing on vs off and the inter-chunk figures, for every target measured."""
    names = [n for n in ("direct", "floor", "gateway", "gateway_accounting_off")]
    header = "| | " + " | ".join(n.replace("_", " ") for n in names) + " |"
    rows = [
        ("sequential p50 / p99 (ms)", "sequential", ("p50_ms", "p99_ms")),
        ("requests/s at 50 connections", "throughput_c50", ("rps",)),
        ("CPU per request (ms)", "throughput_c50", ("cpu_ms_per_request",)),
        ("stream TTFB p50 / p99 (ms)", "stream_ttfb", ("p50_ms", "p99_ms")),
        (
            "inter-chunk gap excess p50 / p99 (ms)",
            "inter_chunk",
            ("gap_excess_p50_ms", "gap_excess_p99_ms"),
        ),
        ("chunk delivery p50 / p99 (ms)", "inter_chunk", ("delivery_p50_ms", "delivery_p99_ms")),
        ("inter-chunk added p50 / p99 (ms)", "inter_chunk", ("added_p50_ms", "added_p99_ms")),
    ]
    lines = [header, "|---" * (len(names) + 1) + "|"]
    for label, section, keys in rows:
        cells = []
        for name in names:
            values = results.get(section, {}).get(name, {})
            cells.append(" / ".join(_num(values[k]) for k in keys if k in values))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines
