"""``GET /v1/credits`` (the key's own books) and ``POST /v1/credits/topup`` (admin).

An unmetered key has no balance (``balance_usd: null``), only its spend; topping it up
does not silently make it metered — the admin says so (``"make_metered": true``). An
admin also sees the gateway's overrun: what providers billed beyond the reservations,
borne by the operator (:mod:`saferouter.storage.ledger`).
"""

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
    balance = books.balance_micro_usd if books.metered else None
    operator = {}
    if key.is_admin:
        overrun = await state.store.overrun_micro_usd()
        operator = {
            "gateway_overrun_micro_usd": overrun,
            "gateway_overrun_usd": usd_text(overrun),
        }
    return json_response(
        {
            "object": "credits",
            "key_id": key.id,
            "role": key.role,
            "metered": books.metered,
            "balance_micro_usd": balance,
            "balance_usd": usd_text(balance) if balance is not None else None,
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
            **operator,
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
    make_metered = data.get("make_metered", False)
    if not isinstance(make_metered, bool):
        raise InvalidRequest(
            "'make_metered' must be a boolean.", param="make_metered", code="invalid_type"
        )
    record = await state.store.top_up(key_id, amount, make_metered=make_metered)
    if record is None:
        raise NotFound(f"No key with id {key_id}.", code="key_not_found")
    if not record.metered:
        raise InvalidRequest(
            f"Key {key_id} is unmetered: its spend is recorded, not limited. To give it a "
            'balance of this amount and limit it to that, send "make_metered": true.',
            param="make_metered",
            code="key_not_metered",
            status=409,
        )
    return json_response(
        {
            "key_id": record.id,
            "metered": record.metered,
            "added_micro_usd": amount,
            "balance_micro_usd": record.balance_micro_usd,
            "balance_usd": usd_text(record.balance_micro_usd),
        }
    )
