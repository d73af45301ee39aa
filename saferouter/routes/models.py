"""``GET /v1/models`` and ``GET /v1/models/{id}``: OpenAI's list shape plus what a
client needs to choose: context length, prices, provider, capabilities, availability.

A request with an ``anthropic-version`` header comes from an Anthropic client (Claude
Code, the Anthropic SDKs: they send it on every request): it gets Anthropic's shape
(docs.anthropic.com/en/api/models-list) — ``{"data": [{"type": "model", "id",
"display_name", "created_at"}], "has_more", "first_id", "last_id"}``, one page, listing
the models whose provider serves the Messages API — and an unknown id gets Anthropic's
404 ``not_found_error``.
"""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, Response, request

from ..accounting import usd_text
from ..catalog import Api, Model, Price
from ..config import UpstreamEndpoint
from ..errors import AuthenticationFailed, ModelNotFound, StorageError
from ..gateway.breaker import BACKING_OFF, HALF_OPEN, OPEN, CircuitBreaker
from ..gateway.dialects.messages import MESSAGES
from ..gateway.route_stats import Figures
from ..state import app_state, json_response
from .attestation import service as attested_service

blueprint = Blueprint("models", __name__)


@blueprint.get("/v1/models")
async def list_models() -> Response:
    settings = app_state().settings
    if _anthropic_client():  # only what /v1/messages can serve
        listed = [
            anthropic_model(model)
            for model in settings.catalog.models.values()
            if Api.MESSAGES in settings.endpoints[model.provider].provider.apis
        ]
        return json_response(
            {
                "data": listed,
                "has_more": False,
                "first_id": listed[0]["id"] if listed else None,
                "last_id": listed[-1]["id"] if listed else None,
            }
        )
    own = await _own_key_providers()
    data = [
        describe_model(
            model,
            settings.endpoints[model.provider],
            app_state().breaker,
            _figures(model),
            own_key=model.provider in own,
        )
        for model in settings.catalog.models.values()
    ]
    return json_response({"object": "list", "data": listing_order(data)})


def listing_order(described: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The models as ``/v1/models`` lists them: the ones a request can use now first,
    then by provider name, each provider's in catalog order (a stable sort).

    Why here and not in a page: a new user's first look (the Models page, the chat's and
    Compare's pickers, an SDK's ``models.list()``) should start with what works, rather
    than with a screen of models whose provider key is not set.
    """
    return sorted(described, key=lambda m: (not m["available"], m["provider_name"].casefold()))


@blueprint.get("/v1/models/<path:model_id>")
async def get_model(model_id: str) -> Response:
    settings = app_state().settings
    model = settings.catalog.models.get(model_id)
    if model is None:
        missing = ModelNotFound(f"The model `{model_id}` does not exist", param="model")
        if _anthropic_client():
            status, headers, body = MESSAGES.error_reply(missing)
            return Response(body, status=status, headers=headers)
        raise missing
    if _anthropic_client():
        return json_response(anthropic_model(model))
    own = await _own_key_providers()
    return json_response(
        describe_model(
            model,
            settings.endpoints[model.provider],
            app_state().breaker,
            _figures(model),
            own_key=model.provider in own,
        )
    )


def anthropic_model(model: Model) -> dict[str, Any]:
    """A catalog model as Anthropic's model object."""
    return {"type": "model", "id": model.id, "display_name": model.name, "created_at": _EPOCH}


_EPOCH = "1970-01-01T00:00:00Z"  # the catalog has no dates (OpenAI's ``created`` is 0 too)


async def _own_key_providers() -> frozenset[str]:
    """The providers the caller holds a usable key of their own for (BYOK): their models
    serve this caller whether or not the operator set a key, so the listing (and the
    pages' "available only") says so. The listing stays public: no key, or one that
    does not authenticate, sees the operator's view rather than a 401 — and so does any
    key while the store cannot be read (the listing answers from the catalog alone)."""
    header = request.headers.get("Authorization")
    if header is None:
        return frozenset()
    try:
        key = await app_state().authenticator.authenticate(header)
    except (AuthenticationFailed, StorageError):
        return frozenset()
    public_key = attested_service().byok_public_key
    return frozenset(k.provider for k in key.byok if k.sealed_for(public_key))


def _anthropic_client() -> bool:
    return "anthropic-version" in request.headers


def describe_model(
    model: Model,
    endpoint: UpstreamEndpoint,
    breaker: CircuitBreaker,
    figures: Figures | None = None,
    *,
    own_key: bool = False,
) -> dict[str, Any]:
    """A model as ``/v1/models`` lists it; ``figures``: what this worker measured of it
    (``provider.sort`` by latency or throughput orders by them); ``own_key``: the caller
    holds a usable key of their own for its provider (the operator's key and circuits
    are not in its way: a request goes with that key first)."""
    provider = endpoint.provider
    pricing: dict[str, Any] = {"unit": "USD per 1M tokens", **_prices(model.pricing.base)}
    if model.pricing.peak is not None:
        pricing["peak"] = _prices(model.pricing.peak)
        pricing["peak_hours_utc"] = [
            f"{w.start_minute // 60:02d}:{w.start_minute % 60:02d}-"
            f"{w.end_minute // 60:02d}:{w.end_minute % 60:02d}"
            + (" weekdays" if w.weekdays_only else "")
            for w in model.pricing.peak_windows
        ]
    now = trio.current_time()
    standing = breaker.standing((provider.id, f"{provider.id}/{model.id}"), now)
    circuit = standing.state
    available = endpoint.available and circuit not in (OPEN, BACKING_OFF)
    wait_s = max(0.0, (standing.retry_at or now) - now)
    if own_key:
        available, availability = True, "available with your own key"
    elif not endpoint.available:
        availability = f"unavailable: {provider.api_key_env} is not set"
    elif circuit == OPEN:
        availability = (
            f"unavailable: circuit open after repeated failures, next probe in {wait_s:.0f} s"
        )
    elif circuit == BACKING_OFF:
        availability = f"unavailable: rate limited by the provider, next request in {wait_s:.0f} s"
    elif circuit == HALF_OPEN:
        availability = "probing: circuit half-open after failures"
    else:
        availability = "available"
    return {
        "id": model.id,
        "object": "model",
        "created": 0,
        "owned_by": provider.id,
        "name": model.name,
        "description": model.description,
        "provider": provider.id,
        "provider_name": provider.name,
        "demo": provider.kind == "demo",
        "upstream_model": model.upstream,
        "context_length": model.context_length,
        "max_output_tokens": model.max_output,
        "pricing": pricing,
        "capabilities": sorted(model.capabilities),
        "fallbacks": list(model.fallbacks),
        "available": available,
        "availability": availability,
        "circuit": circuit,
        "hedge_after_ms": model.hedge_after_ms,
        "deprecated": model.deprecated,
        "measured": _measured(figures),
    }


def _figures(model: Model) -> Figures | None:
    ports = app_state().ports
    return ports.route_stats.figures(model.id) if ports is not None else None


def _measured(figures: Figures | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    ttfb_s, rate = figures.ttfb_s, figures.output_tokens_per_s
    return {
        "scope": "this worker's recent streamed responses (medians)",
        "samples": figures.samples,
        "ttfb_ms": round(ttfb_s * 1000, 1) if ttfb_s is not None else None,
        "output_tokens_per_s": round(rate, 1) if rate is not None else None,
    }


def _prices(price: Price) -> dict[str, str]:
    return {
        "input": usd_text(price.input),
        "cached_input": usd_text(price.cached_input),
        "cache_write": usd_text(price.cache_write),
        "output": usd_text(price.output),
    }
