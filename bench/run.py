"""SafeRouter benchmark: one node mock upstream called directly, through the floor (a bare
quart-trio + httpx proxy, floor_app.py) and through SafeRouter with billing and activity
on (a metered key: reserve, settle, record) and off (SAFEROUTER_ACCOUNTING=off), all
started side by side and measured one at a time, in one run:

  1. sequential non-stream latency p50/p99, and what each adds to the direct call;
  2. requests/s at 50 connections (wrk), and the server's CPU per request meanwhile;
  3. time to first byte of streams, and what each adds;
  4. inter-chunk latency on a stream with a chunk every 5 ms: the gap at the client minus
     the mock's gap for the same chunks, and the mock-write-to-client-read delivery time;
  5. resident memory per open stream, with N slow streams held at once (floor, gateway);
  6. `--workers 2` on CPUs 0-1 against 1 worker on CPU 0 (wrk and mock unpinned there),
     billing on and off;
  7. against a heavy-tailed mock (5 % of answers after 2 s): p50/p99 without and with
     hedging, and the extra upstream requests hedging costs;
  8. receipts on vs off (SAFEROUTER_RECEIPTS=0, billing on in both): CPU per request and
     stream TTFB in alternating rounds (receipts_cost.py; issue 12 §6);
  9. replicas on one database: requests/s through 1 and 2 `saferouter serve` processes on
     SQLite and on PostgreSQL, and the latency each store adds (replicas.py; issue 14 §6);
 10. each API's streams — chat, Anthropic Messages, OpenAI Responses, chat in OpenRouter's
     dialect — direct, through the floor and through SafeRouter: latency, requests/s,
     CPU per request, in alternating rounds (apis.py; issue 15).
Servers run pinned to CPU 0; the mock, wrk and this script to CPU 1 (except in 6). The
ratios of SafeRouter's figures to the floor's are what issue 11 sets targets on: they
print as a markdown table, kept with the JSON in bench/results/ (not committed).

With --profile, instead: py-spy records the gateway (billing on) under wrk and the
samples are summed by function and by part (cpu_profile.py); the load is the bench's
non-stream chat request, or with --profile-api one of 10's streams (chat, messages, …).

With --receipts-only, only 8; with --replicas-only, only 9; with --apis, only 10 (each
beside the floor and direct).

Usage: .venv/bin/python bench/run.py [--quick] [--profile] [--receipts-only] [--seconds S] …
Needs node, wrk (`apt-get install wrk`), taskset; py-spy for --profile; PostgreSQL's
binaries for 9's PostgreSQL rows (`apt-get install postgresql`; skipped, and said so,
without them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import apis
import cpu_profile
import figures
import receipts_cost
import replicas
import scaling
import trio
from gateways import MOCK_PORT, catalog_text, gateway, hedging, workers_ratio
from measure import BODY, PATH, chunk_timings, hold_streams, sequential_latency, ttfb, wrk
from procs import machine, process, raise_fd_limit, wait_until_answering

HERE = Path(__file__).resolve().parent
FLOOR_PORT, GATEWAY_PORT, GATEWAY_OFF_PORT = 9101, 9200, 9201
RECEIPTS_OFF_PORT = 9204  # 9202, 9203: the hedging and 2-worker gateways (gateways.py)
APIS_PORT = 9205
REPLICA_PORTS = (9210, 9211, 9212, 9213, 9214)
STARTED = time.monotonic()
PINNING = "servers pinned to CPU 0; mock, wrk and harness to CPU 1"


def progress(step: str) -> None:
    """One line on stderr per step, with the time since the run started."""
    print(f"[{time.monotonic() - STARTED:6.1f} s] {step}", file=sys.stderr, flush=True)


def measure_all(
    targets: dict[str, tuple[int, dict[str, str], int]], args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    """Every figure for every target = name: (port, headers, server pid)."""
    results: dict[str, Any] = {}
    progress("sequential latency")
    sequential = {n: sequential_latency(p, h, args.requests) for n, (p, h, _) in targets.items()}
    results["sequential"] = added(sequential)
    progress("requests/s at 50 connections")
    results["throughput_c50"] = {
        name: wrk(port, headers, args.seconds, work, server_pid=pid)
        for name, (port, headers, pid) in targets.items()
    }
    progress("stream time to first byte")
    results["stream_ttfb"] = added({n: ttfb(p, h, args.ttfb) for n, (p, h, _) in targets.items()})
    progress("inter-chunk latency")
    chunks = {n: chunk_timings(p, h, args.chunk_streams) for n, (p, h, _) in targets.items()}
    for name, timing in chunks.items():
        if name != "direct":
            for pct in ("p50", "p99"):
                delivered = timing[f"delivery_{pct}_ms"] - chunks["direct"][f"delivery_{pct}_ms"]
                timing[f"added_{pct}_ms"] = round(delivered, 3)
    results["inter_chunk"] = chunks
    progress("memory per open stream")
    results["memory"] = {
        name: trio.run(hold_streams, port, headers, args.streams, pid)
        for name, (port, headers, pid) in targets.items()
        if name in ("floor", "gateway")
    }
    on, off = results["sequential"]["gateway"], results["sequential"]["gateway_accounting_off"]
    results["billing_cost_p50_ms"] = round(on["p50_ms"] - off["p50_ms"], 3)
    return results


def added(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """p50/p99 of each target, and for all but ``direct`` what it adds to direct."""
    median, direct = statistics.median, times["direct"]
    out = {name: figures.summary(values) for name, values in times.items()}
    for name, values in times.items():
        if name != "direct":
            out[name]["added_p50_ms"] = round(median(values) - median(direct), 3)
            p99 = figures.percentile(values, 99) - figures.percentile(direct, 99)
            out[name]["added_p99_ms"] = round(p99, 3)
    return out


def record_profile(
    port: int, headers: dict[str, str], pid: int, seconds: int, work: Path, api: str | None
) -> str:
    """py-spy samples the gateway ``pid`` for ``seconds`` while wrk loads it with the
    non-stream chat request, or ``api``'s stream (apis.VARIANTS); returns the summary in
    markdown, kept in bench/results/ beside the raw samples."""
    load_with = {}
    if api is not None:
        variant = apis.VARIANTS[api]
        headers = apis.key_headers(variant, headers)
        load_with = {"body": variant.body, "path": variant.path}
    # the dev group installs it beside this interpreter (``make bench`` runs the venv's)
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=Path(sys.executable).parent)
    if py_spy is None:
        raise SystemExit("py-spy is needed for --profile (pip install py-spy)")
    wrk(port, headers, 2, work, server_pid=pid, **load_with)  # warm: pool, caches, page cache
    raw = work / "profile.txt"
    command = [py_spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    spy = subprocess.Popen(
        ["taskset", "-c", "1", *command, "--duration", str(seconds), "-o", str(raw)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    load = wrk(port, headers, seconds + 2, work, server_pid=pid, **load_with)
    _, err = spy.communicate(timeout=120)
    if spy.returncode != 0:
        raise SystemExit(f"py-spy failed: {err.decode()}")
    text = raw.read_text()
    keep = HERE / "results" / f"profile-{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}.txt"
    keep.parent.mkdir(exist_ok=True)
    keep.write_text(text)
    summary = cpu_profile.summarise(cpu_profile.parse_collapsed(text))
    head = (
        f"Profile of the gateway (1 worker, CPU 0, billing on) under wrk -c50 "
        f"({'non-stream chat' if api is None else api + ' streams'}), "
        f"{load['rps']:.0f} req/s while sampled; raw samples in {keep.relative_to(HERE)}.\n\n"
    )
    report = head + cpu_profile.markdown(summary, load["cpu_ms_per_request"])
    keep.with_suffix(".md").write_text(report)
    return report


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="~4× shorter, for smoke tests")
    parser.add_argument("--profile", action="store_true", help="py-spy profile instead")
    parser.add_argument("--receipts-only", action="store_true", help="only receipts on vs off (8.)")
    parser.add_argument("--receipt-rounds", type=int, default=6, help="alternating rounds")
    parser.add_argument("--replicas-only", action="store_true", help="only replicas (9.)")
    parser.add_argument(
        "--replica-stores",
        default="sqlite,postgresql",
        help="the stores the replicas run on (comma-separated: sqlite, postgresql)",
    )
    parser.add_argument("--replica-rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--replica-requests", type=int, default=1000, help="sequential, each")
    parser.add_argument("--apis", action="store_true", help="only each API's streams (10.)")
    parser.add_argument("--api-rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--api-requests", type=int, default=1000, help="sequential, each arm")
    parser.add_argument("--requests", type=int, default=3000, help="sequential requests")
    parser.add_argument("--seconds", type=int, default=10, help="each wrk run")
    parser.add_argument("--ttfb", type=int, default=500, help="streams timed to first byte")
    parser.add_argument("--chunk-streams", type=int, default=40, help="20-chunk streams timed")
    parser.add_argument("--streams", type=int, default=500, help="streams held open at once")
    parser.add_argument("--hedge-requests", type=int, default=400)
    parser.add_argument("--profile-seconds", type=int, default=20)
    parser.add_argument("--profile-api", choices=sorted(apis.VARIANTS), help="its streams")
    args = parser.parse_args()
    args.replica_stores = args.replica_stores.split(",")
    if not set(args.replica_stores) <= set(scaling.STORES):
        parser.error(f"--replica-stores takes {', '.join(scaling.STORES)}")
    if args.quick:
        for name in (
            "requests",
            "ttfb",
            "chunk_streams",
            "streams",
            "hedge_requests",
            "replica_requests",
            "api_requests",
        ):
            setattr(args, name, max(10, getattr(args, name) // 4))
        args.seconds = max(3, args.seconds // 4)
    return args


def main() -> None:
    args = parse_args()
    for tool in ("node", "wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (wrk: apt-get install wrk)")
    raise_fd_limit()
    os.sched_setaffinity(0, {1})
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results: dict[str, Any] = {
        "when": when,
        "machine": machine() | {"pinning": PINNING},
        "settings": vars(args),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        catalog = work / "bench.toml"
        catalog.write_text(catalog_text())
        env = {**os.environ, "BENCH_UPSTREAM_KEY": "upstream-secret"}
        on_cmd, auth = gateway(catalog, work / "on", GATEWAY_PORT, env)
        off_cmd, off_auth = gateway(catalog, work / "off", GATEWAY_OFF_PORT, env)
        bare_cmd, bare_auth = gateway(catalog, work / "no-receipts", RECEIPTS_OFF_PORT, env)
        floor_cmd = [sys.executable, str(HERE / "floor_app.py"), str(FLOOR_PORT)]
        floor_cmd.append(f"http://127.0.0.1:{MOCK_PORT}/v1")
        with (
            process(["node", str(HERE / "mock_upstream.mjs"), str(MOCK_PORT)], "1") as mock,
            process(floor_cmd, "0", env) as floor,
            process(on_cmd, "0", env) as gateway_on,
            process(off_cmd, "0", {**env, "SAFEROUTER_ACCOUNTING": "off"}) as gateway_off,
            process(bare_cmd, "0", {**env, "SAFEROUTER_RECEIPTS": "0"}) as no_receipts,
        ):
            for port, headers in ((MOCK_PORT, {}), (FLOOR_PORT, {}), (GATEWAY_PORT, auth)):
                wait_until_answering(port, PATH, headers, BODY)
            wait_until_answering(GATEWAY_OFF_PORT, PATH, off_auth, BODY)
            wait_until_answering(RECEIPTS_OFF_PORT, PATH, bare_auth, BODY)
            receipts = (
                (GATEWAY_PORT, auth, gateway_on.pid),
                (
                    RECEIPTS_OFF_PORT,
                    bare_auth,
                    no_receipts.pid,
                ),
            )
            if args.receipts_only:
                progress("receipts on vs off")
                cost = receipts_cost.measure(
                    *receipts,
                    seconds=args.seconds,
                    rounds=args.receipt_rounds,
                    streams=args.ttfb,
                    work=work,
                )
                print(json.dumps(cost, indent=2))
                print(receipts_cost.markdown(cost))
                return
            # what the sections measured beside the gateway's arms share: direct and floor
            beside = {
                "direct": (MOCK_PORT, {}, mock.pid),
                "floor": (FLOOR_PORT, {}, floor.pid),
                "mock_port": MOCK_PORT,
                "seconds": args.seconds,
                "progress": progress,
            }
            replica_section = partial(
                replicas.run,
                work,
                env,
                **beside,
                ports=REPLICA_PORTS,
                stores=args.replica_stores,
                rounds=args.replica_rounds,
                requests=args.replica_requests,
            )
            if args.replicas_only:
                section = replica_section()
                report({"when": when, "machine": results["machine"], "replicas": section})
                return
            api_section = partial(
                apis.measure,
                work,
                env,
                **beside,
                port=APIS_PORT,
                rounds=args.api_rounds,
                requests=args.api_requests,
            )
            if args.apis:
                report({"when": when, "machine": results["machine"], "apis": api_section()})
                return
            if args.profile:
                print(
                    record_profile(
                        GATEWAY_PORT,
                        auth,
                        gateway_on.pid,
                        args.profile_seconds,
                        work,
                        args.profile_api,
                    )
                )
                return
            targets = {
                "direct": (MOCK_PORT, {}, mock.pid),
                "floor": (FLOOR_PORT, {}, floor.pid),
                "gateway": (GATEWAY_PORT, auth, gateway_on.pid),
                "gateway_accounting_off": (GATEWAY_OFF_PORT, off_auth, gateway_off.pid),
            }
            results |= measure_all(targets, args, work)
            one = (GATEWAY_PORT, auth, gateway_on.pid)
            progress("--workers 2 vs 1 worker")
            results["workers"] = workers_ratio(work, env, one, args.seconds, mock.pid)
            # the same without billing: tells what the workers' shared SQLite costs
            one = (GATEWAY_OFF_PORT, off_auth, gateway_off.pid)
            results["workers_accounting_off"] = workers_ratio(
                work, {**env, "SAFEROUTER_ACCOUNTING": "off"}, one, args.seconds, mock.pid
            )
            progress("hedging")
            results["hedging"] = hedging(work, env, args.hedge_requests)
            progress("receipts on vs off")
            results["receipts"] = receipts_cost.measure(
                *receipts,
                seconds=args.seconds,
                rounds=args.receipt_rounds,
                streams=args.ttfb,
                work=work,
            )
            results["replicas"] = replica_section()
            results["apis"] = api_section()
    results["ratios"] = figures.ratio_rows(results)
    report(results)


def report(results: dict[str, Any]) -> None:
    """Print the results as JSON and as markdown tables, and keep both in bench/results/
    (a --replicas-only or --apis run's under a ``-replicas`` or ``-apis`` suffix)."""
    tables = []
    if "ratios" in results:
        tables += [figures.markdown(results), receipts_cost.markdown(results["receipts"])]
    if "replicas" in results:
        tables.append(scaling.markdown(results["replicas"]))
    if "apis" in results:
        tables.append(apis.markdown(results["apis"]))
    table = "\n".join(tables)
    only = "" if "ratios" in results else "-replicas" if "replicas" in results else "-apis"
    name = results["when"] + only
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2))
    (out_dir / f"{name}.md").write_text(table)
    print(json.dumps(results, indent=2))
    print(table)


if __name__ == "__main__":
    main()
