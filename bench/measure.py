"""The bench's clients: sequential latency, time to first byte, inter-chunk timing,
wrk at 50 connections with the server's CPU per request, and streams held open.

Every function checks what it receives (status 200, a body, every chunk), so a target
that answers errors fast cannot pass for a fast target.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import trio
from figures import excess_gaps_ms, percentile
from procs import cpu_seconds, rss_kib

PATH = "/v1/chat/completions"
BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "Say hello"}]})


def stream_body(**knobs: object) -> str:
    """A streaming request; ``knobs`` are the mock's (n_chunks, interval_ms, stamp)."""
    return json.dumps(
        {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "Hi"}]} | knobs
    )


def sequential_latency(
    port: int,
    headers: dict[str, str],
    n: int,
    *,
    body: str = BODY,
    warmup: int = 200,
    path: str = PATH,
) -> list[float]:
    """Milliseconds per request (to the end of the answer, a stream's too), one
    keep-alive connection, after ``warmup`` requests."""
    return _timed(port, headers, body, n, warmup, first_byte=False, path=path)


def ttfb(port: int, headers: dict[str, str], n: int, warmup: int = 50) -> list[float]:
    """Milliseconds to the first body byte of ``n`` sequential 8-chunk streams."""
    return _timed(port, headers, stream_body(n_chunks=8), n, warmup, first_byte=True)


def _timed(
    port: int,
    headers: dict[str, str],
    body: str,
    n: int,
    warmup: int,
    *,
    first_byte: bool,
    path: str = PATH,
) -> list[float]:
    """Milliseconds to the whole answer (or its first body byte) of ``n`` requests sent
    one after another on one keep-alive connection, after ``warmup`` more."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for i in range(n + warmup):
        start = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        received = response.read1(65536) if first_byte else response.read()
        elapsed = time.perf_counter() - start
        assert response.status == 200 and received, (response.status, received)
        response.read()
        if i >= warmup:
            times.append(elapsed * 1000)
    conn.close()
    return times


def chunk_timings(
    port: int, headers: dict[str, str], streams: int, *, n_chunks: int = 20, interval_ms: int = 5
) -> dict[str, float]:
    """``streams`` sequential streams whose mock writes a stamped chunk every
    ``interval_ms``: the gap excess (gap at the client minus the mock's gap for the same
    two chunks) and the delivery time (mock's write → client's read, wall clocks of one
    machine), p50/p99 over every chunk."""
    body = stream_body(n_chunks=n_chunks, interval_ms=interval_ms, stamp=True)
    conn = http.client.HTTPConnection("127.0.0.1", port)
    excess: list[float] = []
    delivery: list[float] = []
    for _ in range(streams):
        conn.request("POST", PATH, body=body, headers=headers)
        response = conn.getresponse()
        assert response.status == 200, response.status
        received_s, sent_ms = [], []
        buffer = b""
        while data := response.read1(65536):
            now = time.time()
            buffer += data
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                payload = event.removeprefix(b"data: ")
                if payload.startswith(b"{") and b'"sent_ms"' in payload:
                    received_s.append(now)
                    sent_ms.append(float(json.loads(payload)["sent_ms"]))
        assert len(sent_ms) == n_chunks, f"{len(sent_ms)} stamped chunks of {n_chunks}"
        excess += excess_gaps_ms(received_s, sent_ms)
        delivery += [r * 1000 - s for r, s in zip(received_s, sent_ms, strict=True)]
    conn.close()
    return {
        "chunks": len(delivery),
        "interval_ms": interval_ms,
        "gap_excess_p50_ms": round(percentile(excess, 50), 3),
        "gap_excess_p99_ms": round(percentile(excess, 99), 3),
        "delivery_p50_ms": round(percentile(delivery, 50), 3),
        "delivery_p99_ms": round(percentile(delivery, 99), 3),
    }


def wrk(
    port: int,
    headers: dict[str, str],
    seconds: int,
    workdir: Path,
    *,
    server_pid: int,
    cpus: str = "1",
    body: str = BODY,
    path: str = PATH,
) -> dict[str, float]:
    """``wrk -t1 -c50`` on ``cpus`` (a taskset list) posting ``body`` to ``path``:
    requests/s, and the CPU seconds the server (``server_pid`` and its descendants) used
    meanwhile per request served."""
    cpu_before = cpu_seconds(server_pid)
    out = subprocess.run(
        wrk_command([port], [headers], seconds, workdir, cpus=cpus, body=body, path=path),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu_s = cpu_seconds(server_pid) - cpu_before
    rps, requests = wrk_counts(out)
    return {
        "rps": rps,
        "requests": requests,
        "cpu_s": round(cpu_s, 3),
        "cpu_ms_per_request": round(cpu_s * 1000 / requests, 3),
    }


def wrk_command(
    ports: Sequence[int],
    headers: Sequence[dict[str, str]],
    seconds: float,
    workdir: Path,
    *,
    cpus: str,
    body: str = BODY,
    path: str = PATH,
) -> list[str]:
    """``wrk -c50`` on ``cpus`` posting ``body`` to ``path``, one thread per entry of
    ``ports`` whose 50/len connections all go to that port with that entry's ``headers``:
    several entries spread the connections evenly over several servers, as a load
    balancer's round robin over connections would (``(p, p)`` loads one server in the
    same shape), and over several keys if their headers differ."""
    script = workdir / f"post-{'-'.join(map(str, ports))}.lua"
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(body)}",
        'wrk.headers["Content-Type"] = "application/json"',
        f"local ports = {{{', '.join(map(str, ports))}}}",
        "local headers = {"
        + ", ".join(
            "{" + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in h.items()) + "}"
            for h in headers
        )
        + "}",
        "local threads = 0",
        # setup() runs once per thread, in order, before any connection opens; init() then
        # in the thread itself, before wrk builds the request it sends (wrk's SCRIPTING)
        "function setup(thread)",
        "  threads = threads + 1",
        '  thread.addr = wrk.lookup("127.0.0.1", tostring(ports[threads]))[1]',
        '  thread:set("index", threads)',
        "end",
        "function init(args)",
        "  for name, value in pairs(headers[index]) do wrk.headers[name] = value end",
        "end",
    ]
    script.write_text("\n".join(lines) + "\n")
    command = ["wrk", f"-t{len(ports)}", "-c50", f"-d{seconds}s", "-s", str(script)]
    return ["taskset", "-c", cpus, *command, f"http://127.0.0.1:{ports[0]}{path}"]


def wrk_counts(out: str, *, warming: bool = False, errors_ok: bool = False) -> tuple[float, int]:
    """wrk's requests/s and answers from its report ``out``. Any answer but a 2xx fails
    the run unless ``errors_ok`` (the caller reports :func:`wrk_errors`), and so does no
    answer at all unless ``warming`` (fresh connections' first answers may come late)."""
    if wrk_errors(out) and not errors_ok:
        raise SystemExit(f"wrk saw {wrk_errors(out)} errors:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    served = re.search(r"(\d+) requests in", out)
    assert rps and served, out
    requests = int(served.group(1))
    if not requests and not warming:
        raise SystemExit(f"wrk got no answer:\n{out}")
    return float(rps.group(1)), requests


def wrk_errors(out: str) -> int:
    """How many answers but a 2xx wrk's report ``out`` counts."""
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return int(non2xx.group(1)) if non2xx else 0


async def hold_streams(
    port: int, headers: dict[str, str], count: int, pid: int
) -> dict[str, float]:
    """Open ``count`` slow streams at once; the server's RSS before and while all are open."""
    body = stream_body(n_chunks=120, interval_ms=1000).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Type: application/json\r\n"
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
    return {
        "streams": count,
        "rss_before_kib": before,
        "rss_during_kib": during,
        "per_stream_kib": round((during - before) / count, 1),
    }
