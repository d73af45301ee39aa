"""The §5 bench (bench/logs.py) on a small log, so that it cannot rot: it appends through
the one append function, reads through SignedLog and through a real gateway's HTTP
endpoints on that data dir (a non-200 fails it), and reports every figure."""

from __future__ import annotations

from pathlib import Path

import trio

from bench import logs as bench
from saferouter.storage.sqlite import DB_NAME, SQLiteStore


def test_the_log_bench_runs_end_to_end(tmp_path: Path) -> None:
    result = bench.run(tmp_path, "startup", bench.SMALL + 200, repeats=5)
    figures = set(result["at_1k"])
    assert figures == set(result["at_full"]) == set(result["ratio"])
    assert {"head_cached_us", "inclusion_us", "consistency_us", "http_head_us"} <= figures
    assert all(value > 0 for value in result["at_full"].values())
    assert set(result["append"]) == {"us_per_append_wall", "us_per_append_cpu"}

    async def size() -> int:
        store = SQLiteStore(tmp_path / DB_NAME)
        try:
            return await store.log_size(result["stored_as"])
        finally:
            await store.close()

    # the bench's leaves and the startup entry of the gateway that served them (the
    # other one served the copy taken at 1 k)
    assert trio.run(size) == bench.SMALL + 200 + 1
