"""Bearer-key authentication for the Quart routes: the header, handed to the worker's
:class:`~saferouter.gateway.auth.Authenticator`."""

from __future__ import annotations

from quart import request

from ..state import AppState
from ..storage import KeyIdentity


async def authenticate(state: AppState) -> KeyIdentity:
    """The active key of this request, or AuthenticationFailed (401)."""
    return await state.authenticator.authenticate(request.headers.get("Authorization"))


async def require_admin(state: AppState) -> KeyIdentity:
    """The request's key if it is an admin key; else 401 or PermissionDenied (403)."""
    return await state.authenticator.require_admin(request.headers.get("Authorization"))
