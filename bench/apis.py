"""What each API the gateway speaks costs (issue 15): streams of chat completions,
Anthropic's Messages (`POST /v1/messages`, Claude Code's) and OpenAI's Responses
(`POST /v1/responses`), and chat in OpenRouter's dialect (`provider: {sort: "price"}`
and `usage: {include: true}`: preferences applied to the route, the charge spliced into
the usage chunk as `cost`), each called three ways in the same minutes:

  - **direct**: the bench's node mock, which answers each path in its own wire format
    (mock_upstream.mjs: the same 8 text deltas framed as chat chunks, Anthropic events
    or Responses events);
  - through **the floor** (floor_app.py forwards every /v1/ path), so each API has a
    floor of its own: the Messages and Responses streams carry more events and bytes
    than chat's, which the floor pays too;
  - through **SafeRouter** with billing on (a metered key), on a catalog whose provider
    serves all three APIs and whose model has a fallback (so a sort has two candidates).

Per API and target: sequential latency to the end of the stream (one keep-alive
connection), p50/p95 and what it adds to the direct call; requests/s at 50 connections
(wrk) and the server's CPU per request meanwhile. The arms alternate in rounds (order
reversed every other round), so load drifting on a shared machine favours none; the
1-minute load average before and after is kept with the figures. What matters is each
API's ratio to its own floor beside chat's, and what it adds to chat through SafeRouter
(for `chat_openrouter`, that is the dialect's cost).

Every answer is checked before it is timed: 200, the stream's last event is the API's
terminal one (a gateway that appended an error event would fail here), and OpenRouter's
answer carries its `cost`; wrk fails the run on any non-2xx.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from figures import percentile
from gateways import gateway, model_toml, provider_toml
from measure import sequential_latency, wrk
from procs import cpu_seconds, process, wait_until_answering

PINNING = "gateway and floor on CPU 0; mock, wrk and harness on CPU 1"
# 50 fresh connections' first streams take a second on a loaded machine: wrk counts
# none in a shorter run
MIN_WRK_S = 3
WARMUP = 20  # sequential requests before those timed, in each round
PROMPT = [{"role": "user", "content": "Say hello"}]
Target = tuple[int, dict[str, str], int]  # port, headers, pid


class Variant(NamedTuple):
    """One API's request, and what its complete answer looks like."""

    path: str
    body: str
    headers: dict[str, str]  # beside the key: what this API's clients send
    last_event: bytes  # the stream's last event starts so: the stream was complete
    carries: bytes = b""  # SafeRouter's answer contains this


def _body(**fields: object) -> str:
    return json.dumps({"model": "bench", "stream": True} | fields)


# every request bounds its output alike (64 tokens), so the reservations are alike
VARIANTS = {
    "chat": Variant(
        "/v1/chat/completions", _body(max_tokens=64, messages=PROMPT), {}, b"data: [DONE]"
    ),
    "chat_openrouter": Variant(
        "/v1/chat/completions",
        _body(
            max_tokens=64,
            messages=PROMPT,
            provider={"sort": "price"},
            usage={"include": True},
        ),
        {},
        b"data: [DONE]",
        carries=b'"cost":',
    ),
    "messages": Variant(
        "/v1/messages",
        _body(max_tokens=64, messages=PROMPT),
        {"anthropic-version": "2023-06-01"},
        b"event: message_stop",
    ),
    "responses": Variant(
        "/v1/responses",
        _body(max_output_tokens=64, input="Say hello"),
        {},
        b"event: response.completed",
    ),
}


def catalog_text(mock_port: int) -> str:
    """Two providers on the mock (each serving all three APIs), and ``bench`` falling
    back to ``spare`` at the same price."""
    providers = "".join(provider_toml(name, mock_port) for name in ("bench", "spare"))
    models = model_toml("bench", "bench", 'fallbacks = ["spare"]') + model_toml("spare", "spare")
    return providers + models


def key_headers(variant: Variant, auth: dict[str, str]) -> dict[str, str]:
    """The variant's headers with the key as its clients send it: Anthropic's in
    ``x-api-key``, the others' as a bearer token."""
    if variant.path != "/v1/messages":
        return variant.headers | auth
    return variant.headers | {"x-api-key": auth["Authorization"].removeprefix("Bearer ")}


def check_answer(port: int, headers: dict[str, str], variant: Variant, *, saferouter: bool) -> None:
    """One request of ``variant``: a 200 whose stream ends with the API's terminal event
    (and, through SafeRouter, carries ``variant.carries``); raises SystemExit if not."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", variant.path, body=variant.body, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    last = body.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    wanted = variant.carries if saferouter else b""
    if response.status != 200 or not last.startswith(variant.last_event) or wanted not in body:
        raise SystemExit(f"{variant.path} on {port}: {response.status} {body[-600:]!r}")


def measure(
    work: Path,
    env: dict[str, str],
    *,
    direct: Target,
    floor: Target,
    mock_port: int,
    port: int,
    seconds: int,
    rounds: int,
    requests: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The section: a SafeRouter on ``port`` started for it; every variant through
    ``direct``, ``floor`` and SafeRouter, ``rounds`` times (each round a share of
    ``seconds`` of wrk and of ``requests`` sequential requests per arm)."""
    catalog = work / "apis.toml"
    catalog.write_text(catalog_text(mock_port))
    command, auth = gateway(catalog, work / "apis", port, env)
    section: dict[str, Any] = {"pinning": PINNING, "load_average_1m": [os.getloadavg()[0]]}
    with process(command, "0", env) as saferouter:
        targets = {"direct": direct, "floor": floor, "saferouter": (port, auth, saferouter.pid)}
        arms = {}
        for name, variant in VARIANTS.items():
            for target, (at, key, pid) in targets.items():
                ours = target == "saferouter"
                headers = key_headers(variant, key) if ours else variant.headers
                wait_until_answering(at, variant.path, headers, variant.body)
                check_answer(at, headers, variant, saferouter=ours)
                arms[name, target] = (at, headers, pid)
        times: dict[tuple[str, str], list[float]] = {arm: [] for arm in arms}
        cpu_s: dict[tuple[str, str], list[float]] = {arm: [] for arm in arms}  # sequential
        loads: dict[tuple[str, str], list[dict[str, float]]] = {arm: [] for arm in arms}
        for round_ in range(rounds):
            progress(f"APIs: round {round_ + 1} of {rounds}")
            for arm in list(arms)[:: 1 if round_ % 2 == 0 else -1]:
                at, headers, pid = arms[arm]
                variant = VARIANTS[arm[0]]
                n = max(10, requests // rounds)
                before_s = cpu_seconds(pid)
                times[arm] += sequential_latency(
                    at, headers, n, body=variant.body, path=variant.path, warmup=WARMUP
                )
                cpu_s[arm].append((cpu_seconds(pid) - before_s) / (n + WARMUP))
                loads[arm].append(
                    wrk(
                        at,
                        headers,
                        max(MIN_WRK_S, seconds // rounds),
                        work,
                        server_pid=pid,
                        body=variant.body,
                        path=variant.path,
                    )
                )
    section["load_average_1m"].append(os.getloadavg()[0])
    section["figures"] = figures_of(times, cpu_s, loads)
    section["compared"] = compare(section["figures"])
    return section


def figures_of(
    times: dict[tuple[str, str], list[float]],
    cpu_s: dict[tuple[str, str], list[float]],
    loads: dict[tuple[str, str], list[dict[str, float]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Per variant and target: latency p50/p95 (and, but for direct, what they add to
    direct's); CPU per request one at a time (median of the rounds); requests/s at 50
    connections (mean of the rounds) and CPU per request meanwhile (over all rounds).

    The sequential CPU figure is the one to compare on a loaded machine: wrk's counts
    only the requests that finished, while up to 50 more used CPU in flight, so where
    other processes leave the server few requests a second its figure runs high (a
    run at 6 req/s read 49 ms a request for what cost 22 one at a time)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (name, target), values in times.items():
        runs = loads[name, target]
        requests = sum(run["requests"] for run in runs)
        out.setdefault(name, {})[target] = {
            "p50_ms": round(statistics.median(values), 3),
            "p95_ms": round(percentile(values, 95), 3),
            "cpu_ms_per_request_sequential": round(
                statistics.median(cpu_s[name, target]) * 1000, 3
            ),
            "rps": round(statistics.mean(run["rps"] for run in runs), 1),
            "cpu_ms_per_request": round(sum(run["cpu_s"] for run in runs) * 1000 / requests, 3),
        }
    for targets in out.values():
        for name in ("floor", "saferouter"):
            for pct in ("p50", "p95"):
                added = targets[name][f"{pct}_ms"] - targets["direct"][f"{pct}_ms"]
                targets[name][f"added_{pct}_ms"] = round(added, 3)
    return out


def compare(figures: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per variant: SafeRouter's figures as ratios to its floor's, and what it adds
    through SafeRouter to chat (for ``chat_openrouter``: the dialect's own cost)."""
    chat = figures["chat"]["saferouter"]
    out = {}
    for name, targets in figures.items():
        ours, floor = targets["saferouter"], targets["floor"]
        one, c50 = "cpu_ms_per_request_sequential", "cpu_ms_per_request"
        out[name] = {
            "added_p50_to_floor": _ratio(ours["added_p50_ms"], floor["added_p50_ms"]),
            "cpu_sequential_to_floor": _ratio(ours[one], floor[one]),
            "cpu_to_floor": _ratio(ours[c50], floor[c50]),
            "rps_to_floor": _ratio(ours["rps"], floor["rps"]),
            "added_p50_over_chat_ms": round(ours["added_p50_ms"] - chat["added_p50_ms"], 3),
            "cpu_sequential_over_chat_ms": round(ours[one] - chat[one], 3),
            "cpu_over_chat_ms": round(ours[c50] - chat[c50], 3),
        }
    return out


def _ratio(value: float, floor: float) -> float:
    return round(value / floor, 2) if floor > 0 else float("inf")


def markdown(section: dict[str, Any]) -> str:
    """The section as a table, one row per API, with the load it ran under."""
    start, end = section["load_average_1m"]
    lines = [
        f"Streams of each API ({section['pinning']}; load average {start:.2f} → {end:.2f}):",
        "",
        "| API (stream) | direct p50 / p95 (ms) | added p50 / p95, floor (ms) "
        "| added p50 / p95, SafeRouter (ms) | req/s direct / floor / SafeRouter "
        "| CPU per request floor / SafeRouter, one at a time; at 50 connections (ms) "
        "| SafeRouter ÷ floor: added p50, CPU one at a time, CPU at 50, req/s "
        "| over chat: added p50, CPU one at a time, CPU at 50 (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, targets in section["figures"].items():
        d, f, s = targets["direct"], targets["floor"], targets["saferouter"]
        c = section["compared"][name]
        lines.append(
            f"| {name.replace('_', ' ')} | {d['p50_ms']:.2f} / {d['p95_ms']:.2f} "
            f"| {f['added_p50_ms']:.2f} / {f['added_p95_ms']:.2f} "
            f"| {s['added_p50_ms']:.2f} / {s['added_p95_ms']:.2f} "
            f"| {d['rps']:,.0f} / {f['rps']:,.0f} / {s['rps']:,.0f} "
            f"| {f['cpu_ms_per_request_sequential']:.2f} / "
            f"{s['cpu_ms_per_request_sequential']:.2f}; "
            f"{f['cpu_ms_per_request']:.2f} / {s['cpu_ms_per_request']:.2f} "
            f"| {c['added_p50_to_floor']:.2f}×, {c['cpu_sequential_to_floor']:.2f}×, "
            f"{c['cpu_to_floor']:.2f}×, {c['rps_to_floor']:.2f}× "
            f"| {c['added_p50_over_chat_ms']:+.2f}, {c['cpu_sequential_over_chat_ms']:+.2f}, "
            f"{c['cpu_over_chat_ms']:+.2f} |"
        )
    return "\n".join(lines) + "\n"
