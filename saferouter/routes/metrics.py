"""``GET /metrics``: Prometheus text for this worker process (no keys, no prompts)."""

from __future__ import annotations

import time

from quart import Blueprint, Response

from ..gateway.breaker import BACKING_OFF, CLOSED, HALF_OPEN, OPEN
from ..state import app_state

blueprint = Blueprint("metrics", __name__)

_STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2, BACKING_OFF: 3}


@blueprint.get("/metrics")
async def metrics() -> Response:
    state = app_state()
    lines = [
        "# HELP saferouter_circuit_state Circuit per provider (or provider/model): "
        "0 closed, 1 half-open, 2 open, 3 backing off (a provider's Retry-After).",
        "# TYPE saferouter_circuit_state gauge",
    ]
    circuits = state.breaker.snapshot(time.monotonic())
    for provider in state.settings.endpoints:
        circuits.setdefault(provider, CLOSED)
    lines += [
        f'saferouter_circuit_state{{key="{key}"}} {_STATE_VALUE[value]}'
        for key, value in sorted(circuits.items())
    ]
    lines += [
        "# HELP saferouter_upstream_attempts_total Upstream attempts by provider and outcome.",
        "# TYPE saferouter_upstream_attempts_total counter",
    ]
    lines += [
        f'saferouter_upstream_attempts_total{{provider="{p}",outcome="{o}"}} {n}'
        for (p, o), n in sorted(state.attempt_counts.items())
    ]
    if state.upstreams is not None:
        active, idle = state.upstreams.connection_counts()
        lines += [
            "# HELP saferouter_upstream_connections Pooled upstream connections.",
            "# TYPE saferouter_upstream_connections gauge",
            f'saferouter_upstream_connections{{state="active"}} {active}',
            f'saferouter_upstream_connections{{state="idle"}} {idle}',
        ]
    lines += [
        "# HELP saferouter_overrun_micro_usd_total What providers billed beyond the "
        "reservations (the operator's loss), from the books: the same in every worker.",
        "# TYPE saferouter_overrun_micro_usd_total counter",
        f"saferouter_overrun_micro_usd_total {await state.store.overrun_micro_usd()}",
    ]
    return Response("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")
