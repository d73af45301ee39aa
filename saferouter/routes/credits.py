"""``GET /v1/credits`` (the key's own books) and ``POST /v1/credits/topup`` (admin)."""

from __future__ import annotations

from quart import Blueprint, Response

from ..accounting import usd_text
from ..errors import InvalidRequest, NotFound
from ..state import app_state, json_response
from .auth import authenticate, require_admin
from .body import json_object, optional_str, usd_micro

blueprint = Blueprint("credits", __name__)


@blueprint.get("/v1/credits")
async def credits() -> Response:
    state = app_state()
    key = await authenticate(state)
    books = await state.store.books(key.id)
    models = await state.store.usage_by_model(key.id)
    return json_response(
        {
            "object": "credits",
            "key_id": key.id,
            "role": key.role,
            "metered": books.metered,
            "balance_micro_usd": books.balance_micro_usd,
            "balance_usd": usd_text(books.balance_micro_usd),
            "reserved_micro_usd": books.reserved_micro_usd,
            "reserved_usd": usd_text(books.reserved_micro_usd),
            "spent_micro_usd": books.spent_micro_usd,
            "spent_usd": usd_text(books.spent_micro_usd),
            "topped_up_micro_usd": books.topped_up_micro_usd,
            "by_model": [
                {
                    "model": m.model,
                    "requests": m.requests,
                    "prompt_tokens": m.prompt_tokens,
                    "completion_tokens": m.completion_tokens,
                    "cached_tokens": m.cached_tokens,
                    "reasoning_tokens": m.reasoning_tokens,
                    "cost_micro_usd": m.cost_micro_usd,
                    "cost_usd": usd_text(m.cost_micro_usd),
                }
                for m in models
            ],
        }
    )


@blueprint.post("/v1/credits/topup")
async def top_up() -> Response:
    state = app_state()
    await require_admin(state)
    data = await json_object()
    key_id = optional_str(data, "key_id")
    amount = usd_micro(data, "amount_usd")
    if key_id is None or not amount:
        raise InvalidRequest(
            "'key_id' and a positive 'amount_usd' are required.", code="missing_required_parameter"
        )
    record = await state.store.top_up(key_id, amount)
    if record is None:
        raise NotFound(f"No key with id {key_id}.", code="key_not_found")
    return json_response(
        {
            "key_id": record.id,
            "added_micro_usd": amount,
            "balance_micro_usd": record.balance_micro_usd,
            "balance_usd": usd_text(record.balance_micro_usd),
        }
    )
