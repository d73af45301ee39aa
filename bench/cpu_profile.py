"""Where the gateway's CPU goes per request: py-spy samples the gateway (1 worker, pinned
to CPU 0, billing on) while wrk loads it with non-stream requests at 50 connections, and
the samples (py-spy's raw "collapsed" format: ``frame;frame;… count``, root first) are
summed three ways:

* by function, inclusive (the share of samples with that function anywhere on the stack),
  leaving out the frames under every sample (``ROOT``);
* by part (hypercorn, Quart, each of our modules, httpcore's pool, sqlite, json…),
  inclusive — parts overlap, so these do not add up;
* by part, exclusive: each sample goes to the innermost frame that belongs to a part, so
  time in trio, h11 or the socket layer counts for whoever called it; these add to 100 %.

Times per request are each share of the CPU per request measured in the same run.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# The frames under every sample (the process's entry and trio's run loop) belong to no
# part: their own time is the scheduler's, and as callers they would claim every sample.
ROOT = ("<frozen runpy>", "saferouter/cli.py", "saferouter/server.py", "trio/_core/_run.py")
# A thread parked in trio's thread cache waits on a lock in C, which py-spy can take for
# running: such samples (this leaf and nothing under it) are idle, and left out.
IDLE_LEAVES = ("WorkerThread._work (trio/_core/_thread_cache.py",)
# (part, path fragment): the first fragment a frame's file contains names its part
PARTS = (
    ("auth", "saferouter/routes/auth.py"),
    ("auth", "saferouter/keys.py"),
    ("parse", "saferouter/gateway/dialects/"),
    ("parse", "saferouter/gateway/upstream_body.py"),
    ("parse", "saferouter/routes/body.py"),
    ("parse", "saferouter/client_input.py"),
    ("books: admit/settle", "saferouter/gateway/books.py"),
    ("books: admit/settle", "saferouter/accounting.py"),
    ("books: admit/settle", "saferouter/storage/ledger.py"),
    ("activity log", "saferouter/storage/activity_log.py"),
    ("sqlite store", "saferouter/storage/"),
    ("race/routing/breaker", "saferouter/gateway/race.py"),
    ("race/routing/breaker", "saferouter/gateway/routing.py"),
    ("race/routing/breaker", "saferouter/gateway/breaker.py"),
    ("upstream (our edge)", "saferouter/gateway/upstream.py"),
    ("relay", "saferouter/gateway/relay.py"),
    ("relay", "saferouter/gateway/redact.py"),
    ("relay", "saferouter/sse.py"),
    ("audit", "saferouter/gateway/audit.py"),
    ("ASGI guard", "saferouter/asgi.py"),
    ("timing", "saferouter/timing.py"),
    ("chat route", "saferouter/routes/chat.py"),
    ("chat route", "saferouter/api_asgi.py"),  # the raw ASGI adapter
    ("pipeline", "saferouter/gateway/pipeline.py"),
    ("http worker/connections", "saferouter/http_worker.py"),
    ("http worker/connections", "saferouter/connections.py"),
    ("saferouter, other", "saferouter/"),
    ("httpcore pool checkout", "httpcore/_async/connection_pool.py"),
    ("httpcore (upstream HTTP/1.1)", "httpcore/"),
    ("hypercorn", "hypercorn/"),
    ("quart", "quart/"),
    ("quart", "quart_trio/"),
    ("quart", "werkzeug/"),
    ("json", "json/"),
    ("sqlite3", "sqlite3/"),
    ("logging", "logging/"),
)
UNOWNED = "trio scheduler, other"  # no part on the stack at all
LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
FRAME_FILE = re.compile(r"\((?P<file>[^():]+)(?::\d+)?\)$")


def parse_collapsed(text: str) -> list[tuple[list[str], int]]:
    """The samples of a py-spy raw profile: (frames root first, count) per line."""
    samples = []
    for line in text.splitlines():
        match = LINE.match(line.strip())
        if match:
            samples.append((match["stack"].split(";"), int(match["count"])))
    return samples


def part_of(frame: str) -> str | None:
    """The part a frame (``name (file:line)``) belongs to, or None (trio, h11, stdlib)."""
    match = FRAME_FILE.search(frame)
    if match is None:
        return None
    path = match["file"]
    if any(fragment in path for fragment in ROOT):
        return None
    return next((part for part, fragment in PARTS if fragment in path), None)


def function_of(frame: str) -> str:
    """``name (file)`` without the line, so a function's lines count together."""
    return re.sub(r":\d+\)$", ")", frame)


def summarise(samples: Iterable[tuple[list[str], int]]) -> dict[str, Counter[str]]:
    """Sample counts by function (inclusive), by part (inclusive), by part (exclusive),
    and under ``"total"`` the busy ``"samples"`` and the ``"idle"`` ones left out."""
    functions: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for frames, count in samples:
        if frames[-1].startswith(IDLE_LEAVES):
            total["idle"] += count
            continue
        total["samples"] += count
        for name in {function_of(f) for f in frames if not any(r in f for r in ROOT)}:
            functions[name] += count
        parts = [part_of(f) for f in frames]
        for part in {p for p in parts if p is not None}:
            inclusive[part] += count
        exclusive[next((p for p in reversed(parts) if p is not None), UNOWNED)] += count
    return {"functions": functions, "inclusive": inclusive, "exclusive": exclusive, "total": total}


def markdown(summary: dict[str, Counter[str]], cpu_ms_per_request: float, top: int = 15) -> str:
    """Three tables: top functions, parts inclusive, parts exclusive, with the share of
    samples and the CPU time per request it stands for."""
    n = summary["total"]["samples"] or 1

    def rows(counter: Counter[str], limit: int | None = None) -> list[str]:
        return [
            f"| {name} | {100 * count / n:.1f} % | {cpu_ms_per_request * count / n:.3f} |"
            for name, count in counter.most_common(limit)
        ]

    head = ["| {} | share of samples | ms CPU per request |", "|---|---|---|"]
    total = summary["total"]
    out = [
        f"{total['samples']} busy samples ({total['idle']} idle ones left out); "
        f"{cpu_ms_per_request:.3f} ms CPU per request."
    ]
    for title, counter, limit in (
        ("Top functions, inclusive", summary["functions"], top),
        ("By part, inclusive (parts overlap)", summary["inclusive"], None),
        (
            "By part, exclusive (innermost part on the stack; adds to 100 %)",
            summary["exclusive"],
            None,
        ),
    ):
        out += ["", f"### {title}", "", head[0].format("entry"), head[1], *rows(counter, limit)]
    return "\n".join(out) + "\n"
