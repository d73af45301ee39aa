"""The bench's arithmetic and readings (bench/figures.py, procs.py, cpu_profile.py): the
ratios to the floor that issue 11's targets are set on, the inter-chunk gaps, the CPU
time of a process tree, and the profile's attribution of samples."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from bench import cpu_profile, figures, procs


def results(**gateway: float) -> dict[str, Any]:
    """A run's results where SafeRouter's figures are the floor's times ``gateway``."""
    floor = {
        ("sequential", "added_p50_ms"): 1.0,
        ("sequential", "added_p99_ms"): 3.0,
        ("throughput_c50", "rps"): 600.0,
        ("throughput_c50", "cpu_ms_per_request"): 1.6,
        ("stream_ttfb", "added_p50_ms"): 1.7,
        ("memory", "per_stream_kib"): 40.0,
    }
    out: dict[str, Any] = {"when": "2026-11-30T15:00:00Z"}
    out["machine"] = {"cpu": "AMD EPYC 9R14", "cores": 2, "pinning": "pinned"}
    for (section, key), value in floor.items():
        factor = gateway.get(key, 1.0)
        out.setdefault(section, {}).setdefault("floor", {})[key] = value
        out[section].setdefault("gateway", {})[key] = value * factor
    out["throughput_c50"]["direct"] = {"rps": 20000.0, "cpu_ms_per_request": 0.05}
    out["workers"] = {"one_rps": 600.0, "two_rps": 1140.0, "ratio": 1.9}
    return out


def test_each_ratio_is_safeRouters_figure_over_the_floors_and_judged_by_its_direction() -> None:
    rows = {r["figure"]: r for r in figures.ratio_rows(results(rps=2.4, added_p50_ms=0.6))}
    rps = rows["requests/s at 50 connections"]
    assert (rps["ratio"], rps["ratio_target"], rps["ratio_met"]) == (2.4, 2.3, True)
    assert rps["absolute_met"] is True  # 1440 >= 1400
    added = rows["added latency p50, sequential"]
    assert (added["ratio"], added["ratio_met"]) == (0.6, False)  # lower is better: 0.6 > 0.53
    assert added["absolute_met"] is False  # 0.6 ms > 0.5 ms
    cpu = rows["CPU per request"]
    assert (cpu["ratio"], cpu["ratio_met"]) == (1.0, False)
    # targets the issue sets only as absolute figures carry no ratio
    assert "ratio" not in rows["added latency p99, sequential"]
    assert "ratio" not in rows["memory per open stream"]


def test_a_ratio_below_its_ceiling_is_met() -> None:
    rows = {r["figure"]: r for r in figures.ratio_rows(results(cpu_ms_per_request=0.4))}
    assert rows["CPU per request"]["ratio_met"] is True
    rows = {r["figure"]: r for r in figures.ratio_rows(results(rps=2.2))}
    assert rows["requests/s at 50 connections"]["ratio_met"] is False


def test_the_markdown_table_names_date_machine_every_target_and_its_verdict() -> None:
    table = figures.markdown(results(rps=2.4))
    assert table.startswith("Measured 2026-11-30T15:00:00Z on AMD EPYC 9R14 (2 cores), pinned.")
    for target in figures.TARGETS:
        assert f"| {target.figure} ({target.unit}) |" in table
    rps = "| requests/s at 50 connections (req/s) | 20,000 | 600 | 1,440 | 2.40× (≥ 2.3×) met |"
    assert rps in table
    assert "1.00× (≤ 0.53×) **not met**" in table  # added p50 equal to the floor's
    assert "1,140 / 600 = 1.90× | | ≥ 1.8× met |" in table
    assert "billing off" not in table  # measured only where the run did


def test_the_workers_ratio_without_billing_has_a_row_when_measured() -> None:
    run = results() | {"workers_accounting_off": {"one_rps": 500.0, "two_rps": 900.0, "ratio": 1.8}}
    assert "| the same, billing off (req/s) | | | 900 / 500 = 1.80× | | |" in figures.markdown(run)


def test_gap_excess_is_the_clients_gap_minus_the_upstreams_for_the_same_chunks() -> None:
    # the upstream wrote at 0, 5, 10 ms (its clock); the client read 3 ms after the first,
    # then with gaps of 6 and 5 ms (another clock, in seconds)
    excess = figures.excess_gaps_ms([100.003, 100.009, 100.014], [50.0, 55.0, 60.0])
    assert excess == pytest.approx([1.0, 0.0], abs=1e-9)
    with pytest.raises(ValueError, match="2 receive times for 3 chunks"):
        figures.excess_gaps_ms([1.0, 2.0], [1.0, 2.0, 3.0])


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert figures.percentile(values, 99) == 100.0
    assert figures.summary(values) == {"p50_ms": 50.5, "p99_ms": 100.0}


def test_a_stat_line_is_read_past_a_command_name_with_spaces_and_parentheses() -> None:
    # proc(5): pid (comm) state ppid … utime(14) stime(15) …
    line = "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0 99 1 2"
    assert procs.parse_stat(line) == (17, 281)


def test_cpu_seconds_counts_the_descendants_too() -> None:
    # a child that burns 0.5 s of CPU, says so, and waits: its time counts for its parent.
    # /proc counts CPU time by clock ticks, coarser than process_time(): hence the margin
    burn = (
        "import sys, time\n"
        "while time.process_time() < 0.5: pass\n"
        "print('burnt', flush=True)\n"
        "sys.stdin.read()\n"
    )
    before = procs.cpu_seconds(os.getpid())
    child = subprocess.Popen(
        [sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "burnt\n"
        assert procs.cpu_seconds(os.getpid()) - before >= 0.3
        assert procs.cpu_seconds(child.pid) >= 0.3
    finally:
        child.communicate("")


COLLAPSED = """\
<module> (saferouter/cli.py:1);run (trio/_core/_run.py:10);handle (hypercorn/protocol/h11.py:5);next_event (h11/_connection.py:3) 6
<module> (saferouter/cli.py:1);run (trio/_core/_run.py:10);chat (saferouter/routes/chat.py:40);authenticate (saferouter/routes/auth.py:9);hash (saferouter/keys.py:2) 2
<module> (saferouter/cli.py:1);run (trio/_core/_run.py:10);chat (saferouter/routes/chat.py:40);chat (saferouter/routes/chat.py:41);send (httpcore/_async/connection_pool.py:7);poll (trio/_socket.py:9) 1
run (trio/_core/_run.py:10);run (trio/_core/_run.py:12) 1
_bootstrap (threading.py:1);run (threading.py:2);WorkerThread._work (trio/_core/_thread_cache.py:211) 7
"""  # noqa: E501


def test_a_profile_goes_to_the_innermost_part_on_each_stack() -> None:
    summary = cpu_profile.summarise(cpu_profile.parse_collapsed(COLLAPSED))
    # a worker thread parked on its lock is idle, not CPU
    assert summary["total"] == {"samples": 10, "idle": 7}
    # h11 and trio are nobody's part: their time counts for the caller, hypercorn or httpcore
    assert summary["exclusive"] == {
        "hypercorn": 6,
        "auth": 2,
        "httpcore pool checkout": 1,
        cpu_profile.UNOWNED: 1,
    }
    assert summary["inclusive"]["chat route"] == 3
    # the entry point and trio's run loop are under (nearly) every sample: no part, and
    # left out of the functions
    assert "saferouter, other" not in summary["inclusive"]
    assert set(summary["functions"]) == {
        "handle (hypercorn/protocol/h11.py)",
        "next_event (h11/_connection.py)",
        "chat (saferouter/routes/chat.py)",
        "authenticate (saferouter/routes/auth.py)",
        "hash (saferouter/keys.py)",
        "send (httpcore/_async/connection_pool.py)",
        "poll (trio/_socket.py)",
    }
    # a function counts once per sample, whichever lines of it (chat, at :40 and :41)
    assert summary["functions"]["chat (saferouter/routes/chat.py)"] == 3


def test_the_profile_table_gives_each_share_as_cpu_time_per_request() -> None:
    summary = cpu_profile.summarise(cpu_profile.parse_collapsed(COLLAPSED))
    table = cpu_profile.markdown(summary, cpu_ms_per_request=2.0)
    assert "| hypercorn | 60.0 % | 1.200 |" in table
    assert "| auth | 20.0 % | 0.400 |" in table
