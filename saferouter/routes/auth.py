"""Bearer-key authentication shared by the routes that need a key."""

from __future__ import annotations

import time

import attrs
from quart import request

from ..errors import AuthenticationFailed, PermissionDenied
from ..keys import hash_key, parse_bearer
from ..state import AppState
from ..storage import KeyRecord

TOUCH_INTERVAL_S = 60.0  # record "last used" at most this often per key and worker


async def authenticate(state: AppState) -> KeyRecord:
    """The active key of this request, or AuthenticationFailed (401)."""
    return await StateKeys(state).authenticate(request.headers.get("Authorization"))


@attrs.frozen
class StateKeys:
    """Keys looked up by hash in the store on every request, so a revocation made by any
    worker or by the CLI holds from the next request on."""

    state: AppState

    async def authenticate(self, authorization: str | None) -> KeyRecord:
        return await _authenticate(self.state, authorization)


async def _authenticate(state: AppState, authorization: str | None) -> KeyRecord:
    secret = parse_bearer(authorization)
    if secret is None:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it in the Authorization header as "
            "'Authorization: Bearer sk-sr-…'.",
            code="missing_api_key",
        )
    key = await state.store.key_by_hash(hash_key(secret))
    if key is None:
        raise AuthenticationFailed(f"Incorrect API key provided: {_redact(secret)}.")
    if not key.active:
        raise AuthenticationFailed("This API key has been revoked.", code="revoked_api_key")
    now = time.time()
    if now - state.last_touch.get(key.id, 0.0) >= TOUCH_INTERVAL_S:
        state.last_touch[key.id] = now
        await state.store.touch_key(key.id, now)
    return key


async def require_admin(state: AppState) -> KeyRecord:
    key = await authenticate(state)
    if not key.is_admin:
        raise PermissionDenied("This endpoint needs an admin key.")
    return key


def _redact(secret: str) -> str:
    """What OpenAI shows of a wrong key: its start and end, never the whole."""
    if len(secret) <= 12:
        return "*" * len(secret)
    return f"{secret[:6]}{'*' * 8}{secret[-4:]}"
