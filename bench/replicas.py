"""Replicas on one database (issue 14 §6): requests/s through 1 and 2 `saferouter serve`
processes — each its own data dir (identity, TLS, lock), as replicas on separate hosts
have — on PostgreSQL and on SQLite, and the latency each store adds to the direct call,
beside the floor measured in the same minutes.

  - SQLite, 1: one server on its data dir's default file (the embedded default);
    SQLite, 2: two servers sharing one file (``--database sqlite:///…``, one host only);
  - PostgreSQL, 1 and 2: servers on one database of a throwaway cluster (the recipe of
    tests/postgres.py: initdb in a temp dir, a free port, no system service);
  - billing on everywhere (a metered key: reserve, settle, activity entry per request),
    the same node mock upstream as the rest of the bench.

No load balancer: wrk runs two threads of 25 connections, each thread's connections to
one replica (measure.wrk_command) — a round robin over connections; one replica's arm
sends both threads to it, so every arm has the same load generator. Requests/s are read
in the steady part of each run, from the mock's count (:func:`steady_load` says why);
each replica's upstream attempts (its /metrics) tell the share it served.

Pinning, as for `--workers 2` (gateways.workers_ratio): replica i on CPU i, the floor on
CPU 0; wrk, the mock and PostgreSQL on CPUs 0-1 (the database competes for the cores as
it would on a host of its own only if it had one). The arms alternate in rounds (order
reversed every other round) so that a machine whose load drifts favours none.
Sequential latency goes through one replica per store, on one keep-alive connection, in
alternating rounds with the direct call and the floor.
"""

from __future__ import annotations

import http.client
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple

import scaling
from figures import percentile
from gateways import catalog_text, gateway, new_key, serve_command, upstream_requests
from measure import BODY, PATH, sequential_latency, wrk_command, wrk_counts, wrk_errors
from procs import cpu_seconds, process, repin, wait_until_answering

ROOT = Path(__file__).resolve().parent.parent
PINNING = "replica i on CPU i, the floor on CPU 0; wrk, mock and PostgreSQL on CPUs 0-1"
BALANCING = "wrk -t2 -c50, each thread's 25 connections to one replica (no load balancer)"
WARM_S = 2
NO_POSTGRES = "not measured: no PostgreSQL binaries (apt-get install postgresql)"
Target = tuple[int, dict[str, str], int]  # port, headers, pid


class Arm(NamedTuple):
    """What one throughput arm loads: wrk's thread i goes to ``ports[i]`` with the key
    of ``headers[i]``."""

    ports: tuple[int, int]
    headers: tuple[dict[str, str], dict[str, str]]
    pids: tuple[int, ...]  # the servers, for their CPU time
    database_pid: int | None = None  # PostgreSQL's postmaster, for the database's CPU time
    replica_ports: tuple[int, ...] = ()  # the gateways among ``ports`` (/metrics)


class Replicas(NamedTuple):
    ports: tuple[int, ...]
    pids: tuple[int, ...]
    keys: tuple[dict[str, str], dict[str, str]]  # headers of two keys that all accept


def run(
    work: Path, env: dict[str, str], *, stores: Sequence[str], **options: Any
) -> dict[str, Any]:
    """:func:`measure`, on a throwaway PostgreSQL cluster when ``stores`` names it."""
    with postgres_database() if "postgresql" in stores else nullcontext() as database:
        return measure(work, env, stores=stores, postgres=database, **options)


def measure(
    work: Path,
    env: dict[str, str],
    *,
    direct: Target,
    floor: Target,
    mock_port: int,
    ports: Sequence[int],
    stores: Sequence[str],
    postgres: tuple[str, int] | None,
    seconds: int,
    rounds: int,
    requests: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The section's figures (``ports``: five free ones for the replicas; ``stores``: any
    of ``sqlite``, ``postgresql``; ``postgres``: an empty database's URL and its
    postmaster's pid, or None where there is none), with their ratios (scaling.compare)."""
    catalog = work / "replicas.toml"
    catalog.write_text(catalog_text(mock_port))
    section: dict[str, Any] = {"pinning": PINNING, "balancing": BALANCING}
    arms = {"floor": Arm((floor[0], floor[0]), (floor[1], floor[1]), (floor[2],))}
    timed = {"direct": direct[:2], "floor": floor[:2]}
    with ExitStack() as stack:
        if "sqlite" in stores:
            progress("replicas: SQLite, 1 server on its default file, 2 on a shared file")
            one = stack.enter_context(serving(catalog, work / "sqlite-1", ports[:1], env, None))
            shared = f"sqlite:///{work / 'shared.db'}"
            two = stack.enter_context(serving(catalog, work / "sqlite-2", ports[1:3], env, shared))
            arms |= one_and_two("sqlite", one, two)
            timed["sqlite"] = (one.ports[0], one.keys[0])
        if "postgresql" in stores and postgres is None:
            section["postgresql_skipped"] = NO_POSTGRES
        elif "postgresql" in stores and postgres is not None:
            progress("replicas: PostgreSQL, 2 servers on one database")
            url, postmaster = postgres
            pg = stack.enter_context(serving(catalog, work / "postgresql", ports[3:5], env, url))
            arms |= one_and_two("postgresql", pg, pg, database_pid=postmaster)
            timed["postgresql"] = (pg.ports[0], pg.keys[0])
        progress("replicas: requests/s at 50 connections")
        section["throughput"] = throughput(arms, work, direct, seconds=seconds, rounds=rounds)
        progress("replicas: sequential latency")
        section["latency"] = latency(timed, requests=requests, rounds=rounds)
    section["compared"] = scaling.compare(section["throughput"], section["latency"])
    return section


def one_and_two(
    store: str, one: Replicas, two: Replicas, *, database_pid: int | None = None
) -> dict[str, Arm]:
    """The arms of ``store``: wrk's both threads to ``one``'s first replica, or one thread
    to each of ``two``'s first two; every thread with the same key (one hot balance, the
    worst case for replicas: every write of every replica updates its row), or each
    thread with a key of its own."""
    first, ports = one.ports[0], (two.ports[0], two.ports[1])
    arms = {}
    for keys in (1, 2):
        single = one.keys if keys == 2 else (one.keys[0], one.keys[0])
        pair = two.keys if keys == 2 else (two.keys[0], two.keys[0])
        arms[scaling.arm(store, 1, keys)] = Arm(
            (first, first), single, one.pids[:1], database_pid, (first,)
        )
        arms[scaling.arm(store, 2, keys)] = Arm(ports, pair, two.pids[:2], database_pid, ports)
    return arms


@contextmanager
def serving(
    catalog: Path, data: Path, ports: Sequence[int], env: dict[str, str], database: str | None
) -> Iterator[Replicas]:
    """One `saferouter serve` per port, each with its own data dir under ``data``, all on
    ``database`` (a --database URL; None: the one server's own default file); replica i
    pinned to CPU i. Two keys are made through the first; every replica must accept both
    (a replica that did not share the first one's store would not know them)."""
    dirs = [data / f"replica-{i}" for i in range(len(ports))]
    first, headers = gateway(catalog, dirs[0], ports[0], env, database=database)
    keys = (headers, new_key(dirs[0], env, database=database))
    commands = [first]
    commands += [
        serve_command(catalog, d, p, database=database)
        for d, p in zip(dirs[1:], ports[1:], strict=True)
    ]
    # read as a Prometheus scraper reads it, without a key (upstream_attempts)
    commands = [[*command, "--metrics-public"] for command in commands]
    with ExitStack() as stack:
        servers = [
            stack.enter_context(process(command, str(i % 2), env))
            for i, command in enumerate(commands)
        ]
        for port in ports:
            for key in keys:
                wait_until_answering(port, PATH, key, BODY)
        yield Replicas(tuple(ports), tuple(s.pid for s in servers), keys)


@contextmanager
def postgres_database() -> Iterator[tuple[str, int] | None]:
    """A fresh database on a throwaway cluster, on CPUs 0-1: its URL and the postmaster's
    pid; None where PostgreSQL is not installed."""
    # the one cluster recipe lives with the tests (tests/postgres.py); this script runs
    # from bench/, so the repository's root joins the path to reach it
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    from tests.postgres import binaries, running_cluster

    bin_dir = binaries()
    if bin_dir is None:
        yield None
        return
    with running_cluster(bin_dir) as cluster:
        postmaster = postmaster_pid(cluster.data)
        repin(postmaster, "0-1", descendants=True)
        yield cluster.create_database(), postmaster


def postmaster_pid(data_dir: Path) -> int:
    """The pid of the PostgreSQL server of ``data_dir``: the first line of its
    postmaster.pid (PostgreSQL, "Database File Layout"). Its server processes are its
    children, new sessions forked from it, so its process tree holds the database's CPU."""
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def throughput(
    arms: dict[str, Arm], work: Path, mock: Target, *, seconds: int, rounds: int
) -> dict[str, dict[str, Any]]:
    """Requests/s of each arm under wrk in its steady state (:func:`steady_load`), with the
    CPU per request of its servers and database, and the share each replica served."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in arms}
    each_s = max(3, seconds // 2)
    repin(mock[2], "0-1")
    try:
        for arm in arms.values():  # warm: pools, caches, the first requests' imports
            steady_load(arm, WARM_S, work, mock[0], warming=True)
        for round_ in range(rounds):
            for name in list(arms) if round_ % 2 == 0 else list(reversed(arms)):
                runs[name].append(steady_load(arms[name], each_s, work, mock[0]))
    finally:
        repin(mock[2], "1")
    return {name: arm_figures(runs[name]) for name in arms}


class Reading(NamedTuple):
    at_s: float
    answered: int  # chat requests the mock has served
    server_cpu_s: float
    database_cpu_s: float
    attempts: tuple[int, ...]  # each replica's upstream attempts


def reading(arm: Arm, mock_port: int) -> Reading:
    """The counters of ``arm``'s servers, its database and the mock, now."""
    return Reading(
        time.monotonic(),
        upstream_requests(mock_port),
        sum(cpu_seconds(pid) for pid in arm.pids),
        cpu_seconds(arm.database_pid) if arm.database_pid else 0.0,
        tuple(upstream_attempts(port) for port in arm.replica_ports),
    )


def steady_load(
    arm: Arm, seconds: float, work: Path, mock_port: int, *, warming: bool = False
) -> dict[str, Any]:
    """wrk on ``arm`` for ``seconds``, read over its steady part (from a third of the run
    to near its end): answers per second as the mock counts them (one counter for every
    arm, the floor's too), the CPU of the servers and of the database per answer; and
    each replica's upstream attempts over the whole run (its share of the load).

    Not wrk's own figure (kept as ``wrk_rps``): it counts from the first connection, and
    50 fresh connections' first answers are late by a whole queue — 2 s on PostgreSQL
    under load, a third of a 5 s run, against a tenth of that for SQLite — while the
    CPU spent on the requests still open at the end counts for no answer."""
    command = wrk_command(arm.ports, arm.headers, seconds, work, cpus="0-1")
    start = reading(arm, mock_port)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as wrk:
        time.sleep(seconds / 3)
        first = reading(arm, mock_port)
        time.sleep(seconds * 0.6)
        last = reading(arm, mock_port)
        out, err = wrk.communicate(timeout=seconds + 60)
    end = reading(arm, mock_port)
    if wrk.returncode != 0:
        raise SystemExit(f"wrk failed: {err}")
    # an error is a figure here, not the end of the run: PostgreSQL answers 503 to a
    # write that kept losing conflicts, and one store's errors must not cost the others'
    wrk_rps, requests = wrk_counts(out, warming=warming, errors_ok=True)
    answered = last.answered - first.answered
    if not answered and not warming:
        raise SystemExit(f"no answer from {arm.ports} in the steady part of the run:\n{out}")
    answered = max(answered, 1)
    figures = {
        "rps": round(answered / (last.at_s - first.at_s), 2),
        "wrk_rps": wrk_rps,
        "wrk_answers": requests,
        "errors": wrk_errors(out),
        "cpu_ms_per_request": (last.server_cpu_s - first.server_cpu_s) * 1000 / answered,
        "attempts": [b - a for a, b in zip(start.attempts, end.attempts, strict=True)],
    }
    if arm.database_pid:
        database_s = last.database_cpu_s - first.database_cpu_s
        figures["database_cpu_ms_per_request"] = database_s * 1000 / answered
    return figures


def arm_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One arm over its rounds: mean requests/s (steady, and wrk's), median CPU per
    request, and — for several replicas — the share of the answers each served."""
    figures: dict[str, Any] = {
        "rps": round(statistics.mean(r["rps"] for r in runs), 2),
        "rounds_rps": [r["rps"] for r in runs],
        "wrk_rps": round(statistics.mean(r["wrk_rps"] for r in runs), 2),
        "errors": sum(r["errors"] for r in runs),
        "wrk_answers": sum(r["wrk_answers"] for r in runs),
        "cpu_ms_per_request": round(statistics.median(r["cpu_ms_per_request"] for r in runs), 3),
    }
    if "database_cpu_ms_per_request" in runs[0]:
        database = statistics.median(r["database_cpu_ms_per_request"] for r in runs)
        figures["database_cpu_ms_per_request"] = round(database, 3)
    served = [sum(column) for column in zip(*(r["attempts"] for r in runs), strict=True)]
    if len(served) > 1:
        figures["served_share"] = [round(n / max(1, sum(served)), 3) for n in served]
    return figures


def upstream_attempts(port: int) -> int:
    """How many upstream attempts the gateway on ``port`` made (its /metrics)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200, (response.status, text)
    finally:
        conn.close()
    prefix = "saferouter_upstream_attempts_total{"
    return sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def latency(
    targets: dict[str, tuple[int, dict[str, str]]], *, requests: int, rounds: int
) -> dict[str, dict[str, float]]:
    """p50/p90/p99 of ``requests`` sequential requests per target, sent in ``rounds``
    alternating rounds (order reversed every other round)."""
    times: dict[str, list[float]] = {name: [] for name in targets}
    each = max(10, requests // rounds)
    for round_ in range(rounds):
        for name in list(targets) if round_ % 2 == 0 else list(reversed(targets)):
            port, headers = targets[name]
            times[name] += sequential_latency(port, headers, each, warmup=20)
    return {
        name: {
            "p50_ms": round(statistics.median(values), 3),
            "p90_ms": round(percentile(values, 90), 3),
            "p99_ms": round(percentile(values, 99), 3),
        }
        for name, values in times.items()
    }
