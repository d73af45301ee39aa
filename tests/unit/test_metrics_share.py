"""Sharing metrics between workers through real files: a sibling's file that is not a
snapshot of this build, or a snapshot directory that cannot be written, never breaks a
scrape or the worker (found by attack16: a JSON ``[]`` made every scrape a 500, a label
set of the wrong length merged and broke the encoding, a bad later family left the
earlier ones half added, and a file in the directory's place ended the worker's lifespan
tasks at startup)."""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from saferouter.errors import ParseError
from saferouter.metrics_registry import MetricsRegistry
from saferouter.metrics_share import SharedMetrics

from .test_metrics_registry import samples_of, traffic

MODELS = frozenset({"demo"})


def counted(n: int) -> MetricsRegistry:
    registry = MetricsRegistry(known_models=MODELS)
    for request in traffic(n, 0):
        registry.request_done(request)
    return registry


def sibling(shared: SharedMetrics, content: str) -> Path:
    """A file where a sibling worker of this server would write its snapshot."""
    shared.directory.mkdir(parents=True, exist_ok=True)
    path = shared.directory / f"{os.getppid()}-{os.getpid() + 1}.json"
    path.write_text(content)
    return path


def good() -> dict[str, Any]:
    return counted(3).snapshot()


def bad_snapshots() -> list[Any]:
    wrong_labels, later_family_bad, bad_stream = good(), good(), good()
    wrong_labels["requests"][0][0].append("extra")  # merged fine, broke the encoding
    later_family_bad["cost"] = [[["demo", "demo"], -1]]  # requests added, then this failed
    bad_stream["open_streams"] = "x"
    huge_sum, inf_sum = good(), good()
    huge_sum["requests"][0][2] = 10**400
    inf_sum["overhead"][0][2] = float("inf")
    bool_count = good()
    bool_count["attempts"][0][1] = True
    return [
        [],
        None,
        "x",
        {"version": 1},
        wrong_labels,
        later_family_bad,
        bad_stream,
        huge_sum,
        inf_sum,
        bool_count,
        {**good(), "requests": 5},
        {**good(), "tokens": [[["demo", "demo", "input"]]]},
        {**good(), "first_byte": [[["demo", "demo"], [1, 2], 0.5]]},
    ]


@pytest.mark.parametrize("snapshot", bad_snapshots())
def test_a_snapshot_not_of_this_build_adds_nothing_at_all(snapshot: Any) -> None:
    registry = counted(5)
    before = registry.encode()
    with pytest.raises(ParseError):
        registry.merge(json.loads(json.dumps(snapshot)))
    assert registry.encode() == before


@pytest.mark.parametrize("content", [json.dumps(s) for s in bad_snapshots()] + ['{"ver'])
async def test_a_scrape_leaves_out_a_sibling_file_that_is_no_snapshot(
    tmp_path: Path, content: str
) -> None:
    own = counted(4)
    shared = SharedMetrics.in_data_dir(own, tmp_path)
    sibling(shared, content)
    assert await shared.encode() == own.encode()


async def test_a_scrape_merges_a_good_sibling_with_this_worker_as_it_is_now(
    tmp_path: Path,
) -> None:
    own, other = counted(4), counted(3)
    shared = SharedMetrics.in_data_dir(own, tmp_path)
    sibling(shared, json.dumps(other.snapshot()))
    everything = counted(4)
    everything.merge(other.snapshot())
    assert await shared.encode() == everything.encode()


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (the writer works in a thread), within a generous bound."""
    with trio.fail_after(30):
        while not condition():
            await trio.sleep(0.01)


async def test_a_directory_that_cannot_be_written_costs_only_the_sharing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "metrics"
    blocked.write_text("a file where the directory would be")
    own = counted(2)
    shared = SharedMetrics(own, blocked, interval_s=0.01)

    def failures() -> int:
        return sum("not written" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.WARNING, logger="saferouter.metrics_share"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shared.run)  # raised FileExistsError: the lifespan ended
            await until(lambda: failures() > 0)
            assert await shared.encode() == own.encode()  # the scrape still answers
            own.request_done(traffic(1, 1)[0])
            blocked.unlink()  # the directory can be made again: writing resumes
            await until(shared.own_path.exists)
            nursery.cancel_scope.cancel()
    assert failures() == 1  # said once, not at every interval it went on failing
    await shared.write()
    assert json.loads(shared.own_path.read_text()) == own.snapshot()


async def test_an_earlier_run_leaving_a_directory_behind_does_not_stop_the_writer(
    tmp_path: Path,
) -> None:
    shared = SharedMetrics(counted(1), tmp_path / "metrics", interval_s=0.01)
    (shared.directory / "1-2.json").mkdir(parents=True)  # not a file: unlink raised
    (shared.directory / "1-3.json").write_text("{}")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(shared.run)
        await until(shared.own_path.exists)
        nursery.cancel_scope.cancel()
    assert not (shared.directory / "1-3.json").exists()
    assert json.loads(shared.own_path.read_text()) == shared.registry.snapshot()


def requests_shown(text: str) -> float:
    """How many requests a scrape's text counts (every label set's ``_count``)."""
    return sum(samples_of(text, "saferouter_request_duration_seconds_count").values())


async def test_what_a_scrape_shows_of_this_worker_is_on_disk_before_it_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Counters never go backwards whichever worker answers: what one scrape showed of
    this worker, the next scrape (landing on a sibling, which reads this worker's file)
    must see too. Requests finish while the snapshot is written in its thread, and
    scrapes overlap each other (found by atk-api: the scrape showed the registry as it
    was after the write, newer than the file; two writes shared one temporary file)."""
    registry = MetricsRegistry(known_models=MODELS)
    shared = SharedMetrics.in_data_dir(registry, tmp_path)
    requests = itertools.cycle(traffic(100, 0))  # as many as the scrapes take, however slow
    behind: list[tuple[float, float]] = []

    async def scrape() -> None:
        for _ in range(5):
            text = await shared.encode()
            on_disk = MetricsRegistry(known_models=MODELS)
            on_disk.merge(json.loads(shared.own_path.read_text()))  # what a sibling reads
            shown, written = requests_shown(text), requests_shown(on_disk.encode())
            if shown > written:
                behind.append((shown, written))

    async def count(done: trio.Event) -> None:
        while not done.is_set():  # a request ends at every turn of the scheduler
            registry.request_done(next(requests))
            await trio.sleep(0)

    done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(count, done)
        async with trio.open_nursery() as scrapes:
            for _ in range(8):
                scrapes.start_soon(scrape)
        done.set()
    assert behind == []
    assert [r.getMessage() for r in caplog.records] == []
