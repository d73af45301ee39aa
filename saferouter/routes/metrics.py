"""``GET /metrics``: Prometheus text for the gateway (no keys, no prompts).

Admin-only by default (``Authorization: Bearer`` an admin key: 401 without a key, 403
with another): the counts show who is served how much, by which provider. ``--metrics-public``
(``Settings.metrics_public``) opens it for a scraper that cannot send a key.

The request families (durations, attempts, tokens, cost, open streams) are drawn from
every finished request's trace (:class:`~saferouter.metrics_registry.MetricsRegistry`):
with ``--workers N``, every worker's, merged (:mod:`saferouter.metrics_share`). The rest
is read at scrape time from the worker that answers: its circuits and pooled upstream
connections (each worker has its own), and the books' overrun (the same in all). Label
values can hold what a client chose (a model id reaches a circuit key), so every value
is escaped as the text format requires
(:func:`~saferouter.metrics_text.escape_label_value`).
"""

from __future__ import annotations

import trio
from quart import Blueprint, Response

from ..gateway.breaker import BACKING_OFF, CLOSED, HALF_OPEN, OPEN
from ..metrics_text import encode_family
from ..state import app_state
from .auth import require_admin

blueprint = Blueprint("metrics", __name__)

_STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2, BACKING_OFF: 3}
CONTENT_TYPE = "text/plain; version=0.0.4"


@blueprint.get("/metrics")
async def metrics() -> Response:
    state = app_state()
    if not state.settings.metrics_public:
        await require_admin(state)
    circuits = state.breaker.snapshot(trio.current_time())
    for provider in state.settings.endpoints:
        circuits.setdefault(provider, CLOSED)
    text = encode_family(
        "saferouter_circuit_state",
        "gauge",
        "Circuit per provider (or provider/model): "
        "0 closed, 1 half-open, 2 open, 3 backing off (a provider's Retry-After).",
        [({"key": key}, _STATE_VALUE[value]) for key, value in sorted(circuits.items())],
    )
    shared = state.shared_metrics
    text += await shared.encode() if shared is not None else state.metrics.encode()
    if state.upstreams is not None:
        active, idle = state.upstreams.connection_counts()
        text += encode_family(
            "saferouter_upstream_connections",
            "gauge",
            "Pooled upstream connections.",
            [({"state": "active"}, active), ({"state": "idle"}, idle)],
        )
    text += encode_family(
        "saferouter_overrun_micro_usd_total",
        "counter",
        "What providers billed beyond the reservations (the operator's loss), "
        "from the books: the same in every worker.",
        [({}, await state.store.overrun_micro_usd())],
    )
    return Response(text, content_type=CONTENT_TYPE)
