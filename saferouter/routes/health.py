"""``GET /health`` (liveness) and ``GET /ready`` (the store answers)."""

from __future__ import annotations

import os

from quart import Blueprint, Response

from .. import __version__
from ..errors import StorageError
from ..state import app_state, json_response

blueprint = Blueprint("health", __name__)


@blueprint.get("/health")
async def health() -> Response:
    # the worker's process id tells an operator (and the multi-worker test) who answered
    return json_response({"status": "ok", "version": __version__, "worker": os.getpid()})


@blueprint.get("/ready")
async def ready() -> Response:
    state = app_state()
    try:
        await state.store.ping()
    except StorageError:
        return json_response({"status": "unavailable", "store": "unreachable"}, status=503)
    if state.upstreams is None:
        return json_response({"status": "starting"}, status=503)
    return json_response({"status": "ready", "store": "ok"})
