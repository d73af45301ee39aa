"""Key management (admin): ``GET/POST /v1/keys``, ``PATCH/DELETE /v1/keys/{id}``."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from ..accounting import usd_text
from ..errors import InvalidRequest, LastAdminKey, NotFound
from ..keys import generate_key
from ..state import app_state, json_response
from ..storage import KeyRecord, KeyRole, ModelUsage, RateLimits
from .auth import require_admin
from .body import json_object, optional_limit, optional_str, usd_micro

blueprint = Blueprint("keys", __name__)
_CREATE_FIELDS = frozenset({"name", "role", "credits_usd", "rpm_limit", "tpm_limit"})


@blueprint.post("/v1/keys")
async def create_key() -> Response:
    state = app_state()
    await require_admin(state)
    # a misspelt "rpm" or "admin" would otherwise make a key without the limit or the
    # role its maker asked for, and say nothing
    data = await json_object(fields=_CREATE_FIELDS)
    name = optional_str(data, "name")
    if name is None:
        raise InvalidRequest("'name' is required.", param="name", code="missing_required_parameter")
    try:
        role = KeyRole(data.get("role", KeyRole.USER))
    except ValueError:
        raise InvalidRequest(
            "'role' must be 'user' or 'admin'.", param="role", code="invalid_value"
        ) from None
    new = generate_key()
    record = await state.store.create_key(
        name=name,
        role=role,
        key_hash=new.hash,
        prefix=new.display_prefix,
        credits_micro_usd=usd_micro(data, "credits_usd"),
        rpm_limit=optional_limit(data, "rpm_limit"),
        tpm_limit=optional_limit(data, "tpm_limit"),
    )
    return json_response({**describe_key(record, []), "key": new.secret}, status=201)


@blueprint.get("/v1/keys")
async def list_keys() -> Response:
    state = app_state()
    await require_admin(state)
    keys = await state.store.list_keys()
    data = [describe_key(k, await state.store.usage_by_model(k.id)) for k in keys]
    return json_response({"object": "list", "data": data})


@blueprint.patch("/v1/keys/<key_id>")
async def update_key(key_id: str) -> Response:
    state = app_state()
    await require_admin(state)
    current = _found(await state.store.key_by_id(key_id), key_id)
    data = await json_object(fields={"name", "rpm_limit", "tpm_limit"})
    limits = None
    if "rpm_limit" in data or "tpm_limit" in data:
        limits = RateLimits(
            requests_per_minute=optional_limit(data, "rpm_limit")
            if "rpm_limit" in data
            else current.rpm_limit,
            tokens_per_minute=optional_limit(data, "tpm_limit")
            if "tpm_limit" in data
            else current.tpm_limit,
        )
    record = await state.store.update_key(key_id, name=optional_str(data, "name"), limits=limits)
    assert record is not None
    return json_response(describe_key(record, await state.store.usage_by_model(key_id)))


@blueprint.delete("/v1/keys/<key_id>")
async def revoke_key(key_id: str) -> Response:
    state = app_state()
    await require_admin(state)
    try:
        record = _found(await state.store.revoke_key(key_id, keep_an_admin=True), key_id)
    except LastAdminKey:
        # over HTTP that would lock every admin out; `saferouter keys revoke` on the
        # host can still do it (and `keys create --admin` make another)
        raise InvalidRequest(
            "This is the last active admin key: create another admin key before revoking it.",
            code="last_admin_key",
            status=409,
        ) from None
    return json_response(describe_key(record, []))


def _found(record: KeyRecord | None, key_id: str) -> KeyRecord:
    if record is None:
        raise NotFound(f"No key with id {key_id}.", code="key_not_found")
    return record


def describe_key(key: KeyRecord, usage: list[ModelUsage]) -> dict[str, Any]:
    return {
        "object": "api_key",
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "role": key.role,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "revoked": not key.active,
        "revoked_at": key.revoked_at,
        "metered": key.metered,
        # unmetered: no balance, only spend (its ledger sum is minus what it spent)
        "balance_micro_usd": key.balance_micro_usd if key.metered else None,
        "balance_usd": usd_text(key.balance_micro_usd) if key.metered else None,
        "reserved_micro_usd": key.reserved_micro_usd,
        "rpm_limit": key.rpm_limit,
        "tpm_limit": key.tpm_limit,
        "usage": {
            "requests": sum(u.requests for u in usage),
            "prompt_tokens": sum(u.prompt_tokens for u in usage),
            "completion_tokens": sum(u.completion_tokens for u in usage),
            "cost_micro_usd": sum(u.cost_micro_usd for u in usage),
        },
    }
