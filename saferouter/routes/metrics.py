"""``GET /metrics``: Prometheus text for this worker process (no keys, no prompts).

Label values can hold what a client chose (a model id reaches a circuit key), so every
value is escaped as the text exposition format 0.0.4 requires: backslash, double quote
and line feed. Unescaped, a quote or a newline in a label would end the sample early
and let its rest read as a sample of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import trio
from quart import Blueprint, Response

from ..gateway.breaker import BACKING_OFF, CLOSED, HALF_OPEN, OPEN
from ..state import app_state

blueprint = Blueprint("metrics", __name__)

_STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2, BACKING_OFF: 3}
Sample = tuple[Mapping[str, str], int]  # labels and value


@blueprint.get("/metrics")
async def metrics() -> Response:
    state = app_state()
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
    text += encode_family(
        "saferouter_upstream_attempts_total",
        "counter",
        "Upstream attempts by provider and outcome.",
        [({"provider": p, "outcome": o}, n) for (p, o), n in sorted(state.attempt_counts.items())],
    )
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
    return Response(text, content_type="text/plain; version=0.0.4")


def encode_family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> str:
    """One metric family in the Prometheus text format 0.0.4: HELP, TYPE, then one line
    per sample. ``name``, ``kind`` and the label names are the gateway's own."""
    lines = [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        pairs = ",".join(f'{label}="{escape_label_value(v)}"' for label, v in labels.items())
        lines.append(f"{name}{{{pairs}}} {value}" if pairs else f"{name} {value}")
    return "\n".join(lines) + "\n"


def escape_label_value(value: str) -> str:
    """A label value as the text format writes it: ``\\`` → ``\\\\``, ``"`` → ``\\"``,
    line feed → ``\\n`` (Prometheus exposition formats, "Text format details")."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    # HELP text escapes only backslash and line feed.
    return text.replace("\\", "\\\\").replace("\n", "\\n")
