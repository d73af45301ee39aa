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
from ..storage import ActivityEntry, ActivityFilter, ActivityOutcome, KeyIdentity
from .auth import authenticate

blueprint = Blueprint("activity", __name__)

MAX_PAGE = 500
_WINDOW = re.compile(r"([0-9]{1,6})([smhd])")  # ASCII digits: not "١h" or "²h"
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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
    if match is None:
        raise InvalidRequest(
            "'window' must look like 15m, 1h, 24h or 7d.", param="window", code="invalid_value"
        )
    window_s = int(match.group(1)) * _UNIT_S[match.group(2)]
    since = time.time() - window_s
    entries = await state.store.activity_since(since, _scope(key))
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
        }
    )


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


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


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
