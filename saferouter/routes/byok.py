"""Bring your own provider key (issue 13): ``PUT/PATCH/DELETE /v1/byok/{provider}`` and
``GET /v1/byok``. Any active key manages its own BYOK keys, and only its own.

What arrives is a sealed box (:mod:`saferouter.byok.sealing`), sealed by the client to
the ``byok_public_key`` of a quote it verified. The upload is opened here, in the
attested process, only to refuse what would never serve (sealed to another key, altered,
empty) and to compute the fingerprint a user tells keys apart by; the plaintext goes out
of scope at once — never stored, logged or answered. The store keeps the bytes as sent,
with the public key they are sealed to and the measurement that accepted them, so a
later build (another measurement, another BYOK key pair) shows them ``usable: false``.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from typing import Any

from quart import Blueprint, Response, request

from ..attestation.service import AttestationService
from ..byok import sealing
from ..catalog import Provider
from ..errors import (
    AuthenticationFailed,
    InvalidRequest,
    KeyNotActive,
    NotFound,
)
from ..keys import owner_of
from ..state import AppState, app_state, json_response
from ..storage import ByokKey
from .attestation import service as attested_service
from .auth import authenticate
from .body import json_object, optional_bool

blueprint = Blueprint("byok", __name__)

# A body holds one sealed key (≤ 1,221 bytes, ~1.6 KiB in base64) and a flag: anything
# much larger is refused before it is parsed.
MAX_BODY_BYTES = 16 * 1024
SEALED_KEY_MAX_CHARS = 4 * math.ceil(sealing.SEALED_KEY_MAX_BYTES / 3)  # its base64
HOW_TO_SEAL = (
    "Seal the provider key to the byok_public_key of a verified quote of this gateway "
    "(`saferouter byok add` or the Keys page do)."
)


@blueprint.get("/v1/byok")
async def list_byok() -> Response:
    state = app_state()
    key = await authenticate(state)
    service = attested_service()
    return json_response(
        {
            "object": "list",
            # the identity authenticate() returned carries them, checked against the key
            # generation like the rest of it: no read of our own
            "data": [describe(k, service) for k in key.byok],
            "providers": [{"id": p.id, "name": p.name} for p in byok_providers(state)],
            "byok_public_key": service.byok_public_key,
            "measurement": service.measurement.hex,
        }
    )


@blueprint.put("/v1/byok/<provider>")
async def put_byok(provider: str) -> Response:
    state = app_state()
    key = await authenticate(state)
    service = attested_service()
    _check_provider(state, provider)
    data = await json_object(
        fields={"sealed_key", "byok_fallback"}, max_bytes=MAX_BODY_BYTES, json_content_type=True
    )
    fallback = optional_bool(data, "byok_fallback")
    sealed = _sealed_key(data.get("sealed_key"))
    try:
        # the plaintext lives for this statement only: what is kept is its fingerprint
        binding = sealing.Binding(owner_of(request.headers.get("Authorization")), provider)
        fingerprint = sealing.fingerprint(service.open_sealed(sealed, binding))
    except sealing.SealedKeyError as exc:
        raise _invalid_sealed_key(str(exc)) from None
    now = time.time()
    upload = ByokKey(
        key_id=key.id,
        provider=provider,
        sealed_key=sealed,
        sealed_to=service.byok_public_key,
        measurement=service.measurement.hex,
        fingerprint=fingerprint,
        fallback=fallback,
        created_at=now,
        updated_at=now,
    )
    try:
        stored = await state.store.put_byok_key(upload)
    except KeyNotActive:  # revoked since it authenticated
        raise AuthenticationFailed(
            "This API key has been revoked.", code="revoked_api_key"
        ) from None
    return json_response(describe(stored, service))


@blueprint.patch("/v1/byok/<provider>")
async def patch_byok(provider: str) -> Response:
    state = app_state()
    key = await authenticate(state)
    service = attested_service()
    data = await json_object(
        fields={"byok_fallback"}, max_bytes=MAX_BODY_BYTES, json_content_type=True
    )
    if "byok_fallback" not in data:
        raise InvalidRequest(
            "'byok_fallback' is required.",
            param="byok_fallback",
            code="missing_required_parameter",
        )
    changed = await state.store.set_byok_fallback(
        key.id, provider, optional_bool(data, "byok_fallback"), now=time.time()
    )
    if changed is None:
        raise _not_held(state, provider)
    return json_response(describe(changed, service))


@blueprint.delete("/v1/byok/<provider>")
async def delete_byok(provider: str) -> Response:
    state = app_state()
    key = await authenticate(state)
    # no catalog check first: a key kept for a provider the catalog has since dropped
    # can still be removed
    if not await state.store.delete_byok_key(key.id, provider):
        raise _not_held(state, provider)
    return json_response({"object": "byok_key", "provider": provider, "deleted": True})


def describe(key: ByokKey, service: AttestationService) -> dict[str, Any]:
    """A BYOK key as the API shows it: never the sealed bytes, never the key."""
    return {
        "object": "byok_key",
        "provider": key.provider,
        "fingerprint": key.fingerprint,
        "byok_fallback": key.fallback,
        "sealed_to": key.sealed_to,
        "sealed_for_measurement": key.measurement,
        # a key sealed to another build's BYOK key cannot be opened here: re-add it
        "usable": key.sealed_for(service.byok_public_key),
        "created_at": int(key.created_at),
        "updated_at": int(key.updated_at),
    }


def byok_providers(state: AppState) -> list[Provider]:
    """The providers a key can bring its own key for: those the catalog reaches with a
    bearer key (``api_key_env``); not the demo provider, which takes none."""
    providers = state.settings.catalog.providers.values()
    return [p for p in providers if p.api_key_env is not None and p.kind != "demo"]


def _check_provider(state: AppState, provider_id: str) -> None:
    if provider_id not in {p.id for p in byok_providers(state)}:
        raise _unknown_provider(state)


def _unknown_provider(state: AppState) -> NotFound:
    accepted = ", ".join(p.id for p in byok_providers(state))
    return NotFound(
        f"Unknown provider: a provider key can be added for {accepted}.",
        code="unknown_provider",
    )


def _not_held(state: AppState, provider_id: str) -> NotFound:
    """The 404 of a key holding none for ``provider_id``."""
    if provider_id not in {p.id for p in byok_providers(state)}:
        return _unknown_provider(state)
    return NotFound(
        f"This API key holds no provider key for {provider_id}.", code="byok_key_not_found"
    )


def _sealed_key(value: object) -> bytes:
    """The sealed box from its standard base64 (with padding)."""
    if not isinstance(value, str) or not value:
        raise _invalid_sealed_key("'sealed_key' is required, as a base64 string")
    if len(value) > SEALED_KEY_MAX_CHARS:
        raise _invalid_sealed_key(f"a sealed key is at most {sealing.SEALED_KEY_MAX_BYTES} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid_sealed_key("it is not standard base64") from None


def _invalid_sealed_key(reason: str) -> InvalidRequest:
    return InvalidRequest(
        f"The sealed key cannot be used: {reason}. {HOW_TO_SEAL}",
        param="sealed_key",
        code="invalid_sealed_key",
    )
