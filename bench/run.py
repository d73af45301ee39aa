"""SafeRouter benchmark: the same node mock upstream called directly and through the
gateway, in one run.

Measures (gateway pinned to CPU 0; mock, load generator and this script on CPU 1), with
the gateway's billing and activity on (a metered key: reserve, settle, record) and off
(SAFEROUTER_ACCOUNTING=off), two gateways started side by side, measured one at a time:
  1. sequential non-stream latency p50/p99, direct vs gateway, and the difference;
  2. requests/s at 50 connections (wrk), direct vs gateway;
  3. time to first byte of streams, direct vs gateway;
  4. resident memory per open stream, with N slow streams held at once;
  5. against a heavy-tailed mock (5 % of answers after 2 s): p50/p99 without and with
     hedging, and the extra upstream requests hedging costs.

Usage: .venv/bin/python bench/run.py [--requests 3000] [--seconds 10] [--streams 500]
Needs node and wrk (`apt-get install wrk`). Writes bench/results/<time>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MOCK_PORT, GATEWAY_PORT, GATEWAY_OFF_PORT = 9100, 9200, 9201
BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "Say hello"}]})


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextmanager
def process(
    args: list[str], cpu: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        ["taskset", "-c", str(cpu), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=raise_fd_limit,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def sequential_latency(
    port: int, path: str, headers: dict[str, str], n: int, *, body: str = BODY, warmup: int = 200
) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for i in range(n + warmup):
        start = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - start
        assert response.status == 200, response.status
        if i >= warmup:  # warm-up excluded
            times.append(elapsed * 1000)
    conn.close()
    return times


def ttfb(port: int, path: str, headers: dict[str, str], n: int) -> list[float]:
    body = json.dumps(
        {
            "model": "bench",
            "stream": True,
            "n_chunks": 8,
            "messages": [{"role": "user", "content": "Say hello"}],
        }
    )
    conn = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for i in range(n + 50):
        start = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        first = response.read1(65536)
        elapsed = time.perf_counter() - start
        assert first, "no body"
        response.read()
        if i >= 50:
            times.append(elapsed * 1000)
    conn.close()
    return times


def wrk(port: int, path: str, headers: dict[str, str], seconds: int, workdir: Path) -> float:
    script = workdir / f"post-{port}.lua"
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(BODY)}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            "-c50",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"wrk saw {non2xx.group(1)} errors:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match
    return int(match.group(1))


async def hold_streams(port: int, key: str, count: int, pid: int) -> tuple[int, int]:
    """Open `count` slow streams through the gateway; RSS before and while all are open."""
    body = json.dumps(
        {
            "model": "bench",
            "stream": True,
            "n_chunks": 120,
            "interval_ms": 1000,
            "messages": [{"role": "user", "content": "Say hello"}],
        }
    ).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    before = rss_kib(pid)
    opened = 0
    all_open = trio.Event()
    release = trio.Event()

    async def one() -> None:
        nonlocal opened
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            received = b""
            while b"data: " not in received:
                received += await stream.receive_some(65536)
            opened += 1
            if opened == count:
                all_open.set()
            await release.wait()

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
        with trio.fail_after(120):
            await all_open.wait()
        await trio.sleep(2)
        during = rss_kib(pid)
        release.set()
    return before, during


def hedging(work: Path, env: dict[str, str], n: int) -> dict[str, object]:
    """A mock whose time to first byte has a heavy tail (5 % wait 2 s): sequential latency
    through the gateway without and with hedging (`hedge_after_ms` = 100 on the model,
    falling back to the same mock under another provider), and the upstream requests it
    cost per client request."""
    catalog = work / "hedge.toml"
    providers = "".join(
        f"""
[providers.{name}]
name = "Bench mock {name}"
base_url = "http://127.0.0.1:{MOCK_PORT}/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
"""
        for name in ("tail", "tail2")
    )
    models = "".join(
        f"""
[[models]]
id = "{model}"
provider = "{provider}"
upstream = "bench"
context_length = 100000
max_output = 1000
price = {{ input = "1", output = "2" }}
fallbacks = {fallbacks}
{hedge}
"""
        for model, provider, fallbacks, hedge in (
            ("plain", "tail", '["spare"]', ""),
            ("hedged", "tail", '["spare"]', "hedge_after_ms = 100"),
            ("spare", "tail2", "[]", ""),
        )
    )
    catalog.write_text(providers + models)
    port = 9202
    command, key = gateway(catalog, work / "hedge", port, env)
    auth = {"Authorization": f"Bearer {key}"}
    results: dict[str, object] = {"tail": "5 % of requests wait 2000 ms", "requests": n}
    with process(command, 0, env):
        wait_for_port(port)
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
            times = sequential_latency(port, "/v1/chat/completions", auth, n, body=body, warmup=0)
            sent = upstream_requests() - before
            results[model] = {**summary(times), "upstream_requests_per_request": round(sent / n, 3)}
    return results


SAFEROUTER = [sys.executable, "-m", "saferouter.cli"]


def gateway(catalog: Path, data: Path, port: int, env: dict[str, str]) -> tuple[list[str], str]:
    """A key with ample credits in ``data``, and the command serving ``catalog`` there."""
    created = subprocess.run(
        [
            *SAFEROUTER,
            "keys",
            "create",
            "--name",
            "bench",
            "--credits",
            "1000000",
            "--data-dir",
            str(data),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    command = [
        *SAFEROUTER,
        "serve",
        "--config",
        str(catalog),
        "--data-dir",
        str(data),
        "--port",
        str(port),
    ]
    return command, created.stdout.strip().splitlines()[-1]


def upstream_requests() -> int:
    conn = http.client.HTTPConnection("127.0.0.1", MOCK_PORT)
    conn.request("GET", "/stats")
    count = int(json.loads(conn.getresponse().read())["requests"])
    conn.close()
    return count


def summary(times: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(times), 3), "p99_ms": round(percentile(times, 99), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--hedge-requests", type=int, default=400)
    args = parser.parse_args()
    for tool in ("node", "wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (wrk: apt-get install wrk)")
    raise_fd_limit()
    os.sched_setaffinity(0, {1})
    results: dict[str, object] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        catalog = work / "bench.toml"
        catalog.write_text(f"""
[providers.bench]
name = "Bench mock"
base_url = "http://127.0.0.1:{MOCK_PORT}/v1"
api_key_env = "BENCH_UPSTREAM_KEY"

[[models]]
id = "bench"
provider = "bench"
context_length = 100000
max_output = 1000
price = {{ input = "1", output = "2" }}
""")
        env = {**os.environ, "BENCH_UPSTREAM_KEY": "upstream-secret"}

        on_cmd, key = gateway(catalog, work / "on", GATEWAY_PORT, env)
        off_cmd, off_key = gateway(catalog, work / "off", GATEWAY_OFF_PORT, env)
        auth = {"Authorization": f"Bearer {key}"}
        off_auth = {"Authorization": f"Bearer {off_key}"}
        path = "/v1/chat/completions"
        with (
            process(["node", str(HERE / "mock_upstream.mjs"), str(MOCK_PORT)], 1),
            process(on_cmd, 0, env) as gateway_on,
            process(off_cmd, 0, {**env, "SAFEROUTER_ACCOUNTING": "off"}),
        ):
            for port in (MOCK_PORT, GATEWAY_PORT, GATEWAY_OFF_PORT):
                wait_for_port(port)

            direct = sequential_latency(MOCK_PORT, path, {}, args.requests)
            through = sequential_latency(GATEWAY_PORT, path, auth, args.requests)
            through_off = sequential_latency(GATEWAY_OFF_PORT, path, off_auth, args.requests)
            median = statistics.median
            results["sequential"] = {
                "direct": summary(direct),
                "gateway": summary(through),
                "gateway_accounting_off": summary(through_off),
                "added_p50_ms": round(median(through) - median(direct), 3),
                "added_p99_ms": round(percentile(through, 99) - percentile(direct, 99), 3),
                "added_p50_ms_accounting_off": round(median(through_off) - median(direct), 3),
                "accounting_cost_p50_ms": round(median(through) - median(through_off), 3),
            }
            results["throughput_c50_rps"] = {
                "direct": wrk(MOCK_PORT, path, {}, args.seconds, work),
                "gateway": wrk(GATEWAY_PORT, path, auth, args.seconds, work),
                "gateway_accounting_off": wrk(GATEWAY_OFF_PORT, path, off_auth, args.seconds, work),
            }
            d_ttfb = ttfb(MOCK_PORT, path, {}, 500)
            g_ttfb = ttfb(GATEWAY_PORT, path, auth, 500)
            results["stream_ttfb"] = {
                "direct": summary(d_ttfb),
                "gateway": summary(g_ttfb),
                "added_p50_ms": round(median(g_ttfb) - median(d_ttfb), 3),
            }
            before, during = trio.run(hold_streams, GATEWAY_PORT, key, args.streams, gateway_on.pid)
            results["hedging"] = hedging(work, env, args.hedge_requests)
            results["memory"] = {
                "streams": args.streams,
                "rss_before_kib": before,
                "rss_during_kib": during,
                "per_stream_kib": round((during - before) / args.streams, 1),
            }
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{results['when']}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
