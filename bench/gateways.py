"""The SafeRouter gateways a bench run starts (a key with ample credits, a catalog naming
the mock), and the two measurements that need their own: hedging against a heavy-tailed
mock, and `--workers 2` on both cores against 1 worker on one."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from pathlib import Path

from figures import summary
from measure import BODY, PATH, sequential_latency, wrk
from procs import process, repin, wait_until_answering

MOCK_PORT = 9100
SAFEROUTER = [sys.executable, "-m", "saferouter.cli"]


def provider_toml(name: str, mock_port: int = MOCK_PORT) -> str:
    """A provider entry for the mock on ``mock_port``, under ``name``: it serves every
    API, as the mock does (Anthropic's base URL is its root: /v1/messages is appended)."""
    return f"""
[providers.{name}]
name = "Bench mock {name}"
base_url = "http://127.0.0.1:{mock_port}/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
apis = ["chat", "responses", "messages"]
anthropic_base_url = "http://127.0.0.1:{mock_port}"
"""


def model_toml(model: str, provider: str, extra: str = "") -> str:
    """A priced model (billing on) served by ``provider`` as ``bench``; ``extra`` lines."""
    return f"""
[[models]]
id = "{model}"
provider = "{provider}"
upstream = "bench"
context_length = 100000
max_output = 1000
price = {{ input = "1", output = "2" }}
{extra}
"""


def catalog_text(mock_port: int = MOCK_PORT) -> str:
    """One provider (the mock on ``mock_port``) and one model, ``bench``."""
    return provider_toml("bench", mock_port) + model_toml("bench", "bench")


def gateway(
    catalog: Path,
    data: Path,
    port: int,
    env: dict[str, str],
    *,
    workers: int = 1,
    database: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """A key with ample credits in ``data``'s store (or ``database``, a --database URL);
    the command serving ``catalog`` there, and the headers that authenticate with the key."""
    headers = new_key(data, env, database=database)
    return serve_command(catalog, data, port, workers=workers, database=database), headers


def new_key(data: Path, env: dict[str, str], *, database: str | None = None) -> dict[str, str]:
    """A new key with ample credits in ``data``'s store (or ``database``); the headers
    that authenticate with it."""
    create = ["keys", "create", "--name", "bench", "--credits", "1000000"]
    created = subprocess.run(
        [*SAFEROUTER, *create, *store_args(data, database)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if created.returncode != 0:  # the CLI says why on stderr (never the URL's password)
        raise SystemExit(f"keys create in {data}: {created.stderr.strip()}")
    return {"Authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}


def serve_command(
    catalog: Path, data: Path, port: int, *, workers: int = 1, database: str | None = None
) -> list[str]:
    """``saferouter serve`` of ``catalog`` on ``port`` with its own data dir ``data``, on
    ``database`` (a --database URL) or the data dir's SQLite file."""
    command = [*SAFEROUTER, "serve", "--config", str(catalog), *store_args(data, database)]
    return [*command, "--port", str(port), "--workers", str(workers)]


def store_args(data: Path, database: str | None) -> list[str]:
    """The CLI's arguments naming the data dir and, if any, the shared database."""
    return ["--data-dir", str(data)] + (["--database", database] if database else [])


def workers_ratio(
    work: Path,
    env: dict[str, str],
    one: tuple[int, dict[str, str], int],
    seconds: int,
    mock_pid: int,
) -> dict[str, object]:
    """Requests/s at 50 connections: ``saferouter serve --workers 2`` pinned to CPUs 0-1
    against the 1-worker gateway ``one`` = (port, headers, pid) pinned to CPU 0.

    Two cores must also run wrk and the mock, so in this measurement both are unpinned
    (CPUs 0-1) in both arms: the ratio says how much more the gateway serves when it may
    use the second core, with the load competing for it as a client on the same machine
    would. It cannot reach 2× on 2 cores; the target is 1.8×. The arms alternate, each
    run twice for half of ``seconds``, so a machine whose speed drifts during the
    measurement favours neither."""
    arms = {"one": one}
    catalog = work / "bench.toml"
    data = work / f"workers-{env.get('SAFEROUTER_ACCOUNTING', 'on')}"
    command, two_headers = gateway(catalog, data, 9203, env, workers=2)
    rounds: dict[str, list[dict[str, float]]] = {"one": [], "two": []}
    half_s = max(2, seconds // 2)
    repin(mock_pid, "0-1")
    try:
        with process(command, "0-1", env) as two:
            arms["two"] = (9203, two_headers, two.pid)
            wait_until_answering(9203, PATH, two_headers, BODY)
            # both workers started and warm (the first answer proves one)
            wrk(9203, two_headers, 3, work, server_pid=two.pid, cpus="0-1")
            for name in ("one", "two", "one", "two"):
                port, headers, pid = arms[name]
                rounds[name].append(wrk(port, headers, half_s, work, server_pid=pid, cpus="0-1"))
    finally:
        repin(mock_pid, "1")
    rps = {name: sum(r["rps"] for r in runs) / len(runs) for name, runs in rounds.items()}
    return {
        "pinning": "gateway on CPU 0 (1 worker) or CPUs 0-1 (2 workers); wrk and mock on 0-1",
        "one_rps": round(rps["one"], 2),
        "two_rps": round(rps["two"], 2),
        "ratio": round(rps["two"] / rps["one"], 2),
        "rounds_rps": {name: [r["rps"] for r in runs] for name, runs in rounds.items()},
        "one_cpu_ms_per_request": rounds["one"][-1]["cpu_ms_per_request"],
        "two_cpu_ms_per_request": rounds["two"][-1]["cpu_ms_per_request"],
    }


def hedging(work: Path, env: dict[str, str], n: int) -> dict[str, object]:
    """A mock whose time to first byte has a heavy tail (5 % wait 2 s): sequential latency
    through the gateway without and with hedging (`hedge_after_ms` = 100 on the model,
    falling back to the same mock under another provider), and the upstream requests it
    cost per client request."""
    catalog = work / "hedge.toml"
    providers = provider_toml("tail") + provider_toml("tail2")
    models = "".join(
        model_toml(model, provider, f"fallbacks = {fallbacks}\n{hedge}")
        for model, provider, fallbacks, hedge in (
            ("plain", "tail", '["spare"]', ""),
            ("hedged", "tail", '["spare"]', "hedge_after_ms = 100"),
            ("spare", "tail2", "[]", ""),
        )
    )
    catalog.write_text(providers + models)
    port = 9202
    command, auth = gateway(catalog, work / "hedge", port, env)
    results: dict[str, object] = {"tail": "5 % of requests wait 2000 ms", "requests": n}
    with process(command, "0", env):
        wait_until_answering(port, PATH, auth, json.dumps(json.loads(BODY) | {"model": "spare"}))
        for model in ("plain", "hedged"):
            body = json.dumps(
                {
                    "model": model,
                    "tail_pct": 5,
                    "tail_ms": 2000,
                    "messages": [{"role": "user", "content": "Say hello"}],
                }
            )
            before = upstream_requests()
            times = sequential_latency(port, auth, n, body=body, warmup=0)
            sent = upstream_requests() - before
            results[model] = {**summary(times), "upstream_requests_per_request": round(sent / n, 3)}
    return results


def upstream_requests(mock_port: int = MOCK_PORT) -> int:
    """How many chat requests the mock on ``mock_port`` has served."""
    conn = http.client.HTTPConnection("127.0.0.1", mock_port)
    conn.request("GET", "/stats")
    count = int(json.loads(conn.getresponse().read())["requests"])
    conn.close()
    return count
