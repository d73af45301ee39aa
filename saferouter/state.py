"""Per-process application state shared by the routes, and response helpers."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import attrs
from quart import Response, current_app

from .attestation.service import AttestationService
from .config import Settings
from .errors import ApiError
from .gateway.auth import Authenticator
from .gateway.breaker import CircuitBreaker
from .gateway.pipeline import Ports
from .gateway.unsettled import Unsettled
from .gateway.upstream import Upstreams
from .metrics_registry import MetricsRegistry
from .metrics_share import SharedMetrics
from .observe import Observers
from .storage import Store

EXTENSION = "saferouter"


@attrs.define
class AppState:
    settings: Settings
    store: Store
    upstreams: Upstreams | None = None
    breaker: CircuitBreaker = attrs.Factory(CircuitBreaker)
    attestation: AttestationService | None = None
    quote_times: dict[str, deque[float]] = attrs.Factory(dict)  # per client, last minute
    ports: Ports | None = None  # the chat pipeline's, once serving
    # settlements the store refused, for the pipeline and the heartbeat (unsettled.py)
    unsettled: Unsettled = attrs.Factory(Unsettled)
    authenticator: Authenticator = attrs.field(kw_only=True)  # over ``store``, this worker's
    metrics: MetricsRegistry = attrs.field(kw_only=True)  # this worker's, for /metrics
    # with several workers: every worker's, merged (metrics_share.py)
    shared_metrics: SharedMetrics | None = None
    # who is handed each finished request's trace (asgi.ClientGuard hands them over)
    observers: Observers = attrs.Factory(Observers)


def app_state() -> AppState:
    value: AppState = current_app.extensions[EXTENSION]
    return value


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(error: ApiError) -> Response:
    return Response(
        error.body(), status=error.status, content_type="application/json", headers=error.headers
    )
