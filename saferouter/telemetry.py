"""OpenTelemetry traces: each finished request (``observe.RequestTrace``) as one SERVER
span, with one CLIENT span per upstream attempt under it, sent over OTLP/HTTP.

Why the spans are made after the fact, not opened around the code: the request path
knows nothing of OpenTelemetry (it fills the one trace that ``/metrics`` reads too), and
the trace has every time on the pipeline's clock. So when the request is over, this
observer builds the spans with explicit start and end times (epoch nanoseconds, by
``RequestTrace.wall_s``). Nothing imports this module unless a traces URL is set
(``Settings.otel_traces_url``): without one, OpenTelemetry costs not even its import.

What a span holds: the route template, the method and status, the GenAI semantic
conventions' names (``gen_ai.system``, ``gen_ai.operation.name``, models, response id,
token counts, finish reasons) and the fallback/hedge story under ``saferouter.*``.
What it never holds: a prompt, a completion, a key, a raw path or a client's address —
the trace carries none of these, and only the fields named below are read from it.
A client that sends a W3C ``traceparent`` gets the request span as a child of its own
span (:func:`client_context`): its trace goes on through the gateway.

Threads: ``request_done`` runs in the request's task; ending a span hands it to the
SDK's ``BatchSpanProcessor``, which queues it (a full queue drops, never blocks) for
its own thread to post. :meth:`TraceExporter.close` flushes that queue and joins the
thread: a worker stopped by SIGTERM has sent every span of the requests it served.

The provider is this exporter's own, never installed as OpenTelemetry's global one: no
other library's spans are picked up or changed by turning this on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from . import __version__
from .gateway.attempt import AttemptOutcome
from .observe import AttemptTrace, RequestTrace

_PROPAGATOR = TraceContextTextMapPropagator()

# gen_ai.operation.name for each LLM API (the dialect's Api value): all three are a
# conversation in, a message out — the GenAI conventions' "chat"
OPERATIONS = {"chat": "chat", "responses": "chat", "messages": "chat"}
# the error codes of a request the client ended (gateway/pipeline.py, relay.py): it left,
# or stopped reading; no failure of the gateway's
CLIENT_ENDINGS = frozenset({"client_disconnected", "client_send_timeout"})


class TraceExporter:
    """An :class:`observe.Observer` turning each finished request into spans for
    ``processor`` (OTLP in production: :func:`open_trace_exporter`; an in-memory
    exporter in the tests)."""

    def __init__(self, processor: SpanProcessor, *, resource: Resource | None = None) -> None:
        # closed by its owner (the app, after serving), not by the SDK's atexit hook: a
        # second way to close would hide a path that forgot the first
        self._provider = TracerProvider(
            resource=resource or service_resource(), shutdown_on_exit=False
        )
        self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("saferouter", __version__)

    def request_done(self, trace: RequestTrace) -> None:
        """Emit ``trace``'s spans: the request, then each attempt as its child."""
        end_s = trace.ended_s if trace.ended_s is not None else trace.started_s
        span = self._tracer.start_span(
            request_span_name(trace),
            context=client_context(trace),
            kind=SpanKind.SERVER,
            attributes=request_attributes(trace),
            start_time=_epoch_ns(trace, trace.started_s),
        )
        parent = trace_api.set_span_in_context(span)
        for attempt in trace.attempts:
            child = self._tracer.start_span(
                attempt_span_name(trace, attempt),
                context=parent,
                kind=SpanKind.CLIENT,
                attributes=attempt_attributes(trace, attempt),
                start_time=_epoch_ns(trace, attempt.started_s),
            )
            if attempt.outcome == AttemptOutcome.ERROR:
                child.set_status(Status(StatusCode.ERROR, attempt.error_type))
            ended_s = attempt.ended_s if attempt.ended_s is not None else end_s
            child.end(end_time=_epoch_ns(trace, ended_s))
        if request_failed(trace):
            span.set_status(Status(StatusCode.ERROR, trace.error_type))
        span.end(end_time=_epoch_ns(trace, end_s))

    def close(self) -> None:
        """Send what is queued, then stop the export thread. Blocks (at most about the
        exporter's timeout, ``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s by default)."""
        self._provider.shutdown()


@contextmanager
def open_trace_exporter(url: str) -> Iterator[TraceExporter]:
    """A :class:`TraceExporter` posting batches of spans to ``url`` (an OTLP/HTTP
    collector's traces endpoint, protobuf), closed (flushed) when the block ends."""
    exporter = TraceExporter(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    try:
        yield exporter
    finally:
        exporter.close()


def service_resource() -> Resource:
    """Who the spans are from: ``saferouter`` at this version, unless the environment
    (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, read by the SDK) names it otherwise."""
    detected = Resource.create()
    ours = Resource({SERVICE_NAME: "saferouter", SERVICE_VERSION: __version__})
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(ours)
    return ours.merge(detected)


def client_context(trace: RequestTrace) -> Context:
    """The request span's parent: the span the client named in its ``traceparent``
    header (its trace goes on through the gateway; the SDK's default sampler,
    ``parentbased_always_on``, follows its sampled flag — OTEL_TRACES_SAMPLER=always_on
    records every request whatever the client says), else none: a root, never a child
    of whatever context the request's task happens to have."""
    if trace.traceparent is None:
        return Context()
    carrier = {"traceparent": trace.traceparent}
    if trace.tracestate is not None:
        carrier["tracestate"] = trace.tracestate
    # a malformed traceparent (or an all-zero id) extracts to no parent: a root
    return _PROPAGATOR.extract(carrier, context=Context())


def request_span_name(trace: RequestTrace) -> str:
    """The request span's name: for an LLM API the GenAI conventions' ``chat <model>``;
    for the other routes the HTTP conventions' ``GET /route``."""
    operation = OPERATIONS.get(trace.api or "")
    if operation is None:
        return f"{trace.method} {trace.route}"
    return f"{operation} {trace.requested_model}" if trace.requested_model else operation


def attempt_span_name(trace: RequestTrace, attempt: AttemptTrace) -> str:
    """An attempt span's name: ``chat <the model name the provider was sent>``."""
    return f"{OPERATIONS.get(trace.api or '', 'chat')} {attempt.upstream_model}"


def request_failed(trace: RequestTrace) -> bool:
    """The gateway failed the client: a 5xx, or no response at all though the client
    stayed. A 4xx is the client's error (the HTTP conventions leave such server spans
    unset); a client that left was served as far as it listened."""
    if trace.status is None:
        return trace.error_type not in CLIENT_ENDINGS
    return trace.status >= 500


def request_attributes(trace: RequestTrace) -> dict[str, AttributeValue]:
    """The request span's attributes (names and numbers only)."""
    operation = OPERATIONS.get(trace.api or "")
    return _present(
        {
            "http.request.method": trace.method,
            "http.route": trace.route,
            "http.response.status_code": trace.status,
            "error.type": trace.error_type,
            "gen_ai.operation.name": operation,
            "gen_ai.system": trace.provider,  # the provider as the catalog names it
            "gen_ai.request.model": trace.requested_model,
            "gen_ai.response.model": trace.served_model,
            "gen_ai.response.id": trace.response_id,
            "gen_ai.usage.input_tokens": trace.input_tokens,
            "gen_ai.usage.output_tokens": trace.output_tokens,
            "gen_ai.response.finish_reasons": (
                [trace.finish_reason] if trace.finish_reason else None
            ),
            "saferouter.request_id": trace.request_id,
            "saferouter.api": trace.api,
            "saferouter.stream": trace.stream if operation else None,
            "saferouter.provider_kind": trace.provider_kind,  # the protocol it speaks
            "saferouter.attempts": len(trace.attempts) if operation else None,
            "saferouter.fallback": trace.fallback if operation else None,
            "saferouter.hedged": trace.hedged if operation else None,
            "saferouter.cost_micro_usd": trace.cost_micro_usd,
            "saferouter.gateway_overhead_s": trace.gateway_overhead_s,
            "saferouter.time_to_first_byte_s": _since(trace.started_s, trace.first_byte_s),
        }
    )


def attempt_attributes(trace: RequestTrace, attempt: AttemptTrace) -> dict[str, AttributeValue]:
    """An attempt span's attributes: which provider and model, why it started, how it
    ended (``saferouter.outcome``: won, error or cancelled, and what cut it short)."""
    failed = attempt.outcome == AttemptOutcome.ERROR
    cancelled = attempt.outcome == AttemptOutcome.CANCELLED
    return _present(
        {
            "gen_ai.operation.name": OPERATIONS.get(trace.api or "", "chat"),
            "gen_ai.system": attempt.provider,
            "gen_ai.request.model": attempt.upstream_model,
            "http.response.status_code": attempt.status,
            "error.type": (attempt.error_type or str(attempt.status or "_OTHER"))
            if failed
            else None,
            "saferouter.attempt": attempt.number,
            "saferouter.started_by": attempt.started_by.value,
            "saferouter.outcome": attempt.outcome,
            "saferouter.cancelled_by": attempt.error_type if cancelled else None,
            "saferouter.provider_kind": attempt.provider_kind,
            "saferouter.model": attempt.model,
            "saferouter.byok": attempt.byok,
            "saferouter.time_to_first_byte_s": _since(attempt.started_s, attempt.first_byte_s),
        }
    )


def _present(attributes: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    # the SDK warns about (and drops) None values: an unknown is left out instead
    return {name: value for name, value in attributes.items() if value is not None}


def _since(start_s: float, at_s: float | None) -> float | None:
    return None if at_s is None else at_s - start_s


def _epoch_ns(trace: RequestTrace, clock_s: float) -> int:
    """``trace.wall_s(clock_s)`` in epoch nanoseconds. Whole seconds and the rest apart:
    ~1.8e18 ns as one float is exact only to 256 ns, so a span's start and end (and
    its children's) would each be off by a different part of that."""
    whole_s = math.floor(trace.started_wall_s)
    rest_s = trace.started_wall_s - whole_s + (clock_s - trace.started_s)
    return whole_s * 1_000_000_000 + round(rest_s * 1e9)
