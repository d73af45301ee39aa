"""What a signed receipt per request costs (issue 12 §6: ≤ 0.1 ms of CPU per request,
and no later first byte of a stream): two gateways against the same mock, identical but
for ``SAFEROUTER_RECEIPTS``, measured in alternating rounds.

Alternating matters on a shared machine: the load of other processes drifts over a run,
and one long measurement of each would put that drift into the difference. Each round
runs wrk on both (on first in even rounds, off first in odd ones) and reads each
server's CPU time per request served; the figure is the median over rounds of each arm
and of the per-round differences. Streams' time to first byte is measured the same way.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from measure import ttfb, wrk

TARGET_ADDED_CPU_MS = 0.1

Target = tuple[int, dict[str, str], int]  # port, headers, server pid


def measure(
    on: Target, off: Target, *, seconds: int, rounds: int, streams: int, work: Path
) -> dict[str, Any]:
    """CPU per request and stream TTFB of the gateway with receipts ``on`` and ``off``."""
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    first_byte: dict[str, list[float]] = {"on": [], "off": []}
    arms = {"on": on, "off": off}
    for round_ in range(rounds):
        order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
        for arm in order:
            port, headers, pid = arms[arm]
            cpu[arm].append(wrk(port, headers, seconds, work, server_pid=pid)["cpu_ms_per_request"])
        for arm in order:
            port, headers, _ = arms[arm]
            first_byte[arm].append(statistics.median(ttfb(port, headers, streams, warmup=10)))
    return compare(cpu, first_byte)


def compare(
    cpu: dict[str, Sequence[float]], first_byte: dict[str, Sequence[float]]
) -> dict[str, Any]:
    """The medians of each arm and of the per-round differences (on − off)."""
    added = [a - b for a, b in zip(cpu["on"], cpu["off"], strict=True)]
    added_ttfb = [a - b for a, b in zip(first_byte["on"], first_byte["off"], strict=True)]
    added_ms = statistics.median(added)
    return {
        "cpu_ms_per_request_on": round(statistics.median(cpu["on"]), 3),
        "cpu_ms_per_request_off": round(statistics.median(cpu["off"]), 3),
        "added_cpu_ms_per_request": round(added_ms, 3),
        "added_cpu_ms_rounds": [round(x, 3) for x in added],
        "stream_ttfb_p50_ms_on": round(statistics.median(first_byte["on"]), 3),
        "stream_ttfb_p50_ms_off": round(statistics.median(first_byte["off"]), 3),
        "added_stream_ttfb_ms": round(statistics.median(added_ttfb), 3),
        "target_added_cpu_ms": TARGET_ADDED_CPU_MS,
        "met": added_ms <= TARGET_ADDED_CPU_MS,
    }


def markdown(result: dict[str, Any]) -> str:
    """The comparison as a table, for the run's report."""
    r = result
    mark = "✓" if r["met"] else "✗"
    rounds = ", ".join(f"{x:+.3f}" for x in r["added_cpu_ms_rounds"])
    cpu = (r["cpu_ms_per_request_on"], r["cpu_ms_per_request_off"], r["added_cpu_ms_per_request"])
    first = (r["stream_ttfb_p50_ms_on"], r["stream_ttfb_p50_ms_off"], r["added_stream_ttfb_ms"])
    lines = [
        "| receipts | on | off | added (median of rounds) | target |",
        "|---|---|---|---|---|",
        f"| CPU per request (ms) | {cpu[0]:.3f} | {cpu[1]:.3f} | {cpu[2]:+.3f} "
        f"(rounds: {rounds}) | ≤ {TARGET_ADDED_CPU_MS} {mark} |",
        f"| stream TTFB p50 (ms) | {first[0]:.3f} | {first[1]:.3f} | {first[2]:+.3f} | |",
    ]
    return "\n".join(lines) + "\n"
