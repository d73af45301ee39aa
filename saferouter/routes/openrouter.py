"""OpenRouter's account endpoints, in OpenRouter's shapes, for clients written for it:
``GET /api/v1/key`` (and its older name ``/api/v1/auth/key``), ``GET /api/v1/credits``
and ``GET /api/v1/generation?id=``. Every other ``/api/v1`` path is served as ``/v1``
(:mod:`saferouter.paths`).

The shapes follow OpenRouter's API reference as its own SDK (``openrouter``) parses
them: every field it requires is present, with the value SafeRouter knows or, for what
SafeRouter has no such thing as (organizations, workspaces, free-tier quotas, data
regions, presets), null, empty or zero. Money is USD as JSON numbers, as OpenRouter
sends it (SafeRouter's own endpoints give exact decimal strings besides micro-USD).
What SafeRouter cannot know is stated, not guessed: a provider bills a client's own key
directly, so the ``byok_usage`` fields are 0.

A key sees its own: another key's generation is a 404, as an unknown one is. An admin
key finds any key's generation (as it sees any key's activity).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

from quart import Blueprint, Response, request

from ..errors import InvalidRequest, NotFound
from ..state import app_state, json_response
from ..storage import ActivityEntry, ActivityOutcome, Books, KeyIdentity
from .auth import authenticate

blueprint = Blueprint("openrouter", __name__)

# a request id (req_…) or a provider's response id (chatcmpl-…, resp_…, msg_…, a uuid)
_GENERATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")
_CANCELLED = frozenset(
    {ActivityOutcome.CLIENT_CLOSED, ActivityOutcome.CLIENT_STALLED, ActivityOutcome.CANCELLED}
)


def usd(micro: int) -> float:
    """Micro-USD as the USD number OpenRouter's fields hold."""
    return micro / 1_000_000


@blueprint.get("/api/v1/key")
@blueprint.get("/api/v1/auth/key")
async def current_key() -> Response:
    state = app_state()
    key = await authenticate(state)
    books = await state.store.books(key.id)
    daily, weekly, monthly = await state.store.spent_since(key.id, _windows_start(time.time()))
    limit, remaining = _limit(books)
    return json_response(
        {
            "data": {
                "label": key.name,
                "usage": usd(books.spent_micro_usd),
                "usage_daily": usd(daily),
                "usage_weekly": usd(weekly),
                "usage_monthly": usd(monthly),
                "limit": limit,
                "limit_remaining": remaining,
                "limit_reset": None,
                "is_free_tier": False,
                "is_management_key": False,
                "is_provisioning_key": False,
                "include_byok_in_limit": False,
                "byok_usage": 0.0,
                "byok_usage_daily": 0.0,
                "byok_usage_weekly": 0.0,
                "byok_usage_monthly": 0.0,
                "rate_limit": _rate_limit(key),
                "budgets": _budgets(books, limit, remaining),
                "effective_budget": None,
                "free_model_daily_requests": {"limit": 0, "remaining": 0, "used": 0},
                "allowed_data_regions": ["global"],
                "creator_user_id": None,
                "organization_id": None,
                "workspace_id": None,
                "expires_at": None,
            }
        }
    )


@blueprint.get("/api/v1/credits")
async def credits() -> Response:
    state = app_state()
    key = await authenticate(state)
    books = await state.store.books(key.id)
    limit, _ = _limit(books)
    return json_response(
        {"data": {"total_credits": limit or 0.0, "total_usage": usd(books.spent_micro_usd)}}
    )


@blueprint.get("/api/v1/generation")
async def generation() -> Response:
    state = app_state()
    key = await authenticate(state)
    ref = request.args.get("id")
    if not ref:
        raise InvalidRequest(
            "'id' is required: a response's id or its X-SafeRouter-Request-Id.",
            param="id",
            code="missing_required_parameter",
        )
    if _GENERATION_ID.fullmatch(ref) is None:
        raise InvalidRequest(
            "'id' must be a response's id or an X-SafeRouter-Request-Id (letters, digits "
            "and _ . : -, at most 200).",
            param="id",
            code="invalid_value",
        )
    attempts = await state.store.find_request(None if key.is_admin else key.id, ref)
    if not attempts:
        raise NotFound(f"No generation {ref} of this key.", code="generation_not_found")
    names = {pid: provider.name for pid, provider in state.settings.catalog.providers.items()}
    return json_response({"data": describe_generation(attempts, names)})


def describe_generation(attempts: list[ActivityEntry], names: dict[str, str]) -> dict[str, Any]:
    """A request's attempts as OpenRouter describes a generation: the serving attempt's
    (else the last's) tokens, cost, timing and provider, every attempt's status."""
    e = max(attempts, key=_serving_first)
    cost = sum(a.cost_micro_usd for a in attempts)
    generation_ms = None
    if e.latency_ms is not None and e.ttfb_ms is not None:
        generation_ms = round(e.latency_ms - e.ttfb_ms, 3)
    return {
        "id": e.response_id or e.request_id,
        "request_id": e.request_id,
        "upstream_id": e.response_id,
        "api_type": "completions",  # OpenRouter's for every text generation
        "model": e.served_model or e.requested_model,
        "provider_name": names.get(e.provider, e.provider) if e.provider else None,
        "created_at": dt.datetime.fromtimestamp(e.created_at, dt.UTC).isoformat(),
        "streamed": e.streamed,
        "cancelled": e.outcome in _CANCELLED,
        "finish_reason": e.finish_reason,
        "native_finish_reason": e.finish_reason,
        "tokens_prompt": e.prompt_tokens,
        "tokens_completion": e.completion_tokens,
        "native_tokens_prompt": e.prompt_tokens,
        "native_tokens_completion": e.completion_tokens,
        "native_tokens_reasoning": e.reasoning_tokens,
        "native_tokens_cached": e.cached_tokens,
        "native_tokens_completion_images": None,
        "total_cost": usd(cost),
        "usage": usd(cost),
        "upstream_inference_cost": None,
        "cache_discount": None,
        "is_byok": e.byok,
        "latency": e.latency_ms,
        "generation_time": generation_ms,
        "moderation_latency": None,
        "http_referer": e.app_referer,
        "origin": e.app_referer or "",
        "app": {"title": e.app_title, "referer": e.app_referer},
        "app_id": None,
        "provider_responses": [
            {
                "status": a.status,
                "provider_name": names.get(a.provider, a.provider) if a.provider else None,
                "is_byok": a.byok,
                "latency": a.latency_ms,
            }
            for a in attempts
        ],
        "data_region": "global",
        "external_user": None,
        "num_fetches": None,
        "num_input_audio_prompt": None,
        "num_media_completion": None,
        "num_media_prompt": None,
        "num_search_results": None,
        "preset_id": None,
        "router": None,
        "service_tier": None,
        "user_agent": None,
        "web_search_engine": None,
        "workspace_id": None,
    }


def _serving_first(a: ActivityEntry) -> tuple[bool, bool, int]:
    """Orders a request's attempts so the one that served comes last: the one with the
    response's id, else a 2xx not cancelled (a hedge's loser is), else the latest."""
    answered = 200 <= a.status < 300 and a.outcome is not ActivityOutcome.CANCELLED
    return a.response_id is not None, answered, a.attempt


def _limit(books: Books) -> tuple[float | None, float | None]:
    """OpenRouter's ``limit`` and ``limit_remaining``: None (no limit) for an unmetered
    key; for a metered one, what remains to reserve now (its balance: what requests in
    flight hold is out of it) and the credits that spending began from, so that
    ``limit - usage`` is what remains with nothing in flight."""
    if not books.metered:
        return None, None
    total = books.balance_micro_usd + books.reserved_micro_usd + books.spent_micro_usd
    return usd(total), usd(books.balance_micro_usd)


def _budgets(books: Books, limit: float | None, remaining: float | None) -> list[dict[str, Any]]:
    """The key's one budget (its credits), as OpenRouter lists a key's own limit."""
    if limit is None or remaining is None:
        return []
    return [
        {
            "budget_id": None,
            "guardrail_id": None,
            "include_byok": False,
            "limit_usd": limit,
            "remaining_usd": remaining,
            "reset_interval": None,
            "resets_at": None,
            "scope": "key_limit",
            "spend_usd": usd(books.spent_micro_usd),
        }
    ]


def _rate_limit(key: KeyIdentity) -> dict[str, Any]:
    """The key's requests per minute, in OpenRouter's (legacy) field; -1: no limit."""
    return {
        "requests": key.rpm_limit if key.rpm_limit is not None else -1,
        "interval": "1m",
        "note": "requests per minute of this key; -1: no limit",
    }


def _windows_start(now: float) -> list[float]:
    """The starts of the current UTC day, week (from Monday) and month."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    week = today - dt.timedelta(days=today.weekday())
    month = today.replace(day=1)
    return [today.timestamp(), week.timestamp(), month.timestamp()]
