"""``GET /v1/activity`` (the request log) and ``GET /v1/activity/stats`` (aggregates).

A key sees its own entries; an admin key sees every key's (or one, with ``key_id``).
Both group or filter by the calling app too (``app``: the ``X-Title`` it sent, else its
``HTTP-Referer``), as OpenRouter's activity does."""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import attrs
from quart import Blueprint, Response, request

from ..accounting import usd_text
from ..client_input import parse_count, parse_unix_time
from ..errors import InvalidRequest
from ..state import app_state, json_response
from ..storage import (
    ActivityBucket,
    ActivityEntry,
    ActivityFilter,
    ActivityOutcome,
    BucketGrid,
    KeyIdentity,
)
from ..storage.activity_series import nearest_rank
from .auth import authenticate

blueprint = Blueprint("activity", __name__)

MAX_PAGE = 500
_WINDOW = re.compile(r"([0-9]{1,6})([smhd])")  # ASCII digits: not "١h" or "²h"
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The series' bucket widths, finest first: a window is drawn with the finest that gives
# it at most MAX_BUCKETS points (15m → 1 min × 15, 1h → 1 min × 60, 24h → 15 min × 96,
# 7d → 3 h × 56), so a chart has a few dozen points, never thousands.
BUCKET_WIDTHS_S = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400)
MAX_BUCKETS = 96
# the longest window: ten years (a longer one would start before the epoch)
MAX_WINDOW_S = 3650 * 86400


@blueprint.get("/v1/activity")
async def list_activity() -> Response:
    state = app_state()
    key = await authenticate(state)
    args = request.args
    limit = parse_count(args, "limit", default=50, low=1, high=MAX_PAGE)
    query = ActivityFilter(
        key_id=_scope(key),
        model=args.get("model") or None,
        provider=args.get("provider") or None,
        status=args.get("status") or None,
        app=args.get("app") or None,
        since=parse_unix_time(args, "since"),
        until=parse_unix_time(args, "until"),
        before_id=parse_count(args, "before", default=None, low=1),
        limit=limit + 1,
    )
    entries = await state.store.activity(query)
    page, more = entries[:limit], len(entries) > limit
    return json_response(
        {
            "object": "list",
            "data": [describe_entry(e) for e in page],
            "has_more": more,
            "next_before": page[-1].id if more and page else None,
        }
    )


@blueprint.get("/v1/activity/stats")
async def activity_stats() -> Response:
    state = app_state()
    key = await authenticate(state)
    text = request.args.get("window", "24h")
    match = _WINDOW.fullmatch(text)
    window_s = 0 if match is None else int(match.group(1)) * _UNIT_S[match.group(2)]
    if not 0 < window_s <= MAX_WINDOW_S:
        raise InvalidRequest(
            "'window' must look like 15m, 1h, 24h or 7d: a number and a unit (s, m, h or d),"
            " more than 0 and at most 3650d.",
            param="window",
            code="invalid_value",
        )
    now = time.time()
    since = now - window_s
    entries = await state.store.activity_since(since, _scope(key))
    grid = bucket_grid(window_s, now)
    series = await state.store.activity_series(_scope(key), grid)
    by_model: dict[str, list[ActivityEntry]] = defaultdict(list)
    by_provider: dict[str, list[ActivityEntry]] = defaultdict(list)
    by_app: dict[str, list[ActivityEntry]] = defaultdict(list)
    for entry in entries:
        by_model[entry.served_model or entry.requested_model].append(entry)
        if entry.provider:
            by_provider[entry.provider].append(entry)
        if entry.app is not None:
            by_app[entry.app].append(entry)
    return json_response(
        {
            "object": "activity.stats",
            "window": text,
            "since": since,
            **summarize(entries),
            "by_model": {name: summarize(group) for name, group in sorted(by_model.items())},
            "by_provider": {name: summarize(group) for name, group in sorted(by_provider.items())},
            "by_app": {name: summarize(group) for name, group in sorted(by_app.items())},
            "bucket_s": grid.width_s,
            "series": [describe_bucket(b) for b in series],
        }
    )


def bucket_grid(window_s: int, now: float) -> BucketGrid:
    """The series' buckets for a window of ``window_s`` seconds ending at ``now``:
    aligned to their width (whole minutes, quarter hours, hours, UTC days), so that a
    bucket holds the same entries from one poll to the next, the last one the bucket
    ``now`` is in (still filling). Their span starts within one bucket of
    ``now - window_s`` (after it, for a window its buckets divide)."""
    width_s = next((w for w in BUCKET_WIDTHS_S if window_s <= w * MAX_BUCKETS), None)
    if width_s is None:  # longer than 96 days: whole days, as many as it takes
        width_s = 86400 * math.ceil(window_s / (86400 * MAX_BUCKETS))
    count = math.ceil(window_s / width_s)
    current = math.floor(now / width_s) * width_s
    return BucketGrid(start=current - (count - 1) * width_s, width_s=width_s, count=count)


def describe_bucket(bucket: ActivityBucket) -> dict[str, Any]:
    """One point of the series, shaped as the totals are."""
    return {
        "start": bucket.start,
        "requests": bucket.requests,
        "errors": bucket.errors,
        "latency_ms": {"p50": bucket.latency_p50_ms, "p95": bucket.latency_p95_ms},
        "ttfb_ms": {"p50": bucket.ttfb_p50_ms, "p95": bucket.ttfb_p95_ms},
        "cost_micro_usd": bucket.cost_micro_usd,
    }


def summarize(entries: Iterable[ActivityEntry]) -> dict[str, Any]:
    entries = list(entries)
    ok = sum(1 for e in entries if e.outcome is ActivityOutcome.OK)
    latencies = [e.latency_ms for e in entries if e.latency_ms is not None]
    ttfbs = [e.ttfb_ms for e in entries if e.ttfb_ms is not None]
    cost = sum(e.cost_micro_usd for e in entries)
    return {
        "total": len(entries),
        "succeeded": ok,
        "failed": len(entries) - ok,
        "success_rate": round(ok / len(entries), 4) if entries else None,
        "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
        "ttfb_ms": {"p50": percentile(ttfbs, 50), "p95": percentile(ttfbs, 95)},
        "prompt_tokens": sum(e.prompt_tokens for e in entries),
        "completion_tokens": sum(e.completion_tokens for e in entries),
        "cost_micro_usd": cost,
        "cost_usd": usd_text(cost),
    }


def percentile(values: list[float], pct: int) -> float | None:
    """Nearest-rank percentile (as the series' buckets pick theirs); None for no values."""
    if not values:
        return None
    return sorted(values)[nearest_rank(len(values), pct) - 1]


def describe_entry(entry: ActivityEntry) -> dict[str, Any]:
    data = attrs.asdict(entry)
    data["cost_usd"] = usd_text(entry.cost_micro_usd)
    data["overrun_usd"] = usd_text(entry.overrun_micro_usd)
    data["app"] = entry.app
    return data


def _scope(key: KeyIdentity) -> str | None:
    """Whose entries: the key's own; an admin's choice (``key_id``) or everyone's."""
    if key.is_admin:
        return request.args.get("key_id") or None
    return key.id
