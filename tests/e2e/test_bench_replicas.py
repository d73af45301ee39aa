"""The replica bench (bench/replicas.py, issue 14 §6) on a short run, so that it cannot
rot: real `saferouter serve` replicas, each with its own data dir, on one SQLite file or
one PostgreSQL database, loaded by wrk through the bench's own node mock and floor.

Every answer the bench counts was a 200 (wrk's non-2xx fail it), so a second replica
that did not share the first one's store — and so did not know the key made through it
— fails the run; each replica's /metrics says it served its share of the load."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.processes import clean_env

from .bench_support import bench_upstreams, free_ports, import_bench


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/replicas.py, imported as bench/run.py imports it (bench/ on the path)."""
    return import_bench(monkeypatch, "replicas")


@pytest.fixture
def upstreams(bench: ModuleType) -> Iterator[dict[str, Any]]:
    """The bench's node mock and its floor in front of it, as run.py starts them."""
    with bench_upstreams() as started:
        yield started


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_the_replica_bench_loads_one_and_two_replicas_on_each_store(
    store: str,
    bench: ModuleType,
    upstreams: dict[str, Any],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    postgres = None
    if store == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        postgres = (cluster.create_database(), bench.postmaster_pid(cluster.data))
    section = bench.measure(
        tmp_path,
        clean_env() | {"BENCH_UPSTREAM_KEY": "upstream-secret"},
        **upstreams,
        ports=free_ports(5),
        stores=[store],
        postgres=postgres,
        seconds=4,  # 2 s per arm: PostgreSQL's first answers under load take ~1 s
        rounds=1,
        requests=20,
        progress=lambda step: None,
    )
    throughput = section["throughput"]
    shapes = ("1", "2", "1_2keys", "2_2keys")
    assert set(throughput) == {"floor"} | {f"{store}_{shape}" for shape in shapes}
    assert all(arm["rps"] > 0 and arm["cpu_ms_per_request"] > 0 for arm in throughput.values())
    for two in (f"{store}_2", f"{store}_2_2keys"):
        # wrk's two threads went one to each replica: both served a part of the load (not
        # always half: on PostgreSQL a replica may lose many conflicts over one hot key)
        shares = throughput[two]["served_share"]
        assert len(shares) == 2 and min(shares) >= 0.1, shares
    if store == "postgresql":  # the database's own processes did work for the requests
        assert throughput["postgresql_2"]["database_cpu_ms_per_request"] > 0
    latency = section["latency"]
    assert set(latency) == {"direct", "floor", store}
    assert all(0 < t["p50_ms"] <= t["p90_ms"] <= t["p99_ms"] for t in latency.values())
    assert set(section["compared"]["added_latency"]) == {"floor", store}
    assert set(section["compared"]["two_to_one"]) == {store, f"{store}_2keys"}
    table = importlib.import_module("scaling").markdown(section)
    assert f"| {dict(sqlite='SQLite', postgresql='PostgreSQL')[store]} | " in table


def test_a_key_per_wrk_thread_loads_both_keys(
    bench: ModuleType, upstreams: dict[str, Any], tmp_path: Path
) -> None:
    catalog = tmp_path / "bench.toml"
    catalog.write_text(importlib.import_module("gateways").catalog_text(upstreams["mock_port"]))
    env = clean_env() | {"BENCH_UPSTREAM_KEY": "upstream-secret"}
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    with bench.serving(catalog, tmp_path / "replicas", free_ports(2), env, shared) as replicas:
        arm = bench.one_and_two("sqlite", replicas, replicas)["sqlite_2_2keys"]
        figures = bench.steady_load(arm, 3, tmp_path, upstreams["mock_port"])
        # each key's own activity (its stats are its own entries only), through either
        # replica: the one shared store has them all
        totals = [
            httpx.get(
                f"http://127.0.0.1:{replicas.ports[1]}/v1/activity/stats", headers=key, timeout=30
            ).json()["total"]
            for key in replicas.keys
        ]
    # beyond the readiness checks' one answer per replica: wrk's load, on both keys
    assert min(totals) > 2 + 10, totals
    assert sum(figures["attempts"]) > 0
