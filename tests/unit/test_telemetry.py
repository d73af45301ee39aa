"""Spans from hand-made request traces, caught by the SDK's in-memory exporter: one
SERVER span per request, a CLIENT child per attempt, times in epoch nanoseconds from the
trace's clock, the GenAI attributes, and an exact allow-list of attribute names."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from saferouter.observe import AttemptTrace, RequestTrace, StartedBy, trace_context
from saferouter.telemetry import TraceExporter, open_trace_exporter, service_resource
from tests.otlp_collector import otlp_collector

WALL_S = 1_800_000_000.0  # the wall clock at the request's start
CLOCK_S = 5_000.0  # trio's clock at the same instant
S_TO_NS = 1_000_000_000

REQUEST_ATTRIBUTES = {
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "gen_ai.operation.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.response.finish_reasons",
    "saferouter.request_id",
    "saferouter.api",
    "saferouter.stream",
    "saferouter.provider_kind",
    "saferouter.attempts",
    "saferouter.fallback",
    "saferouter.hedged",
    "saferouter.cost_micro_usd",
    "saferouter.gateway_overhead_s",
    "saferouter.time_to_first_byte_s",
}


@pytest.fixture
def caught() -> Iterator[tuple[TraceExporter, InMemorySpanExporter]]:
    memory = InMemorySpanExporter()
    exporter = TraceExporter(SimpleSpanProcessor(memory), resource=Resource({}))
    yield exporter, memory
    exporter.close()


def ns(at_s: float) -> int:
    """Epoch nanoseconds of a clock reading, computed here in integers (the offsets
    used below are exact binary fractions)."""
    return int(WALL_S) * S_TO_NS + round((at_s - CLOCK_S) * S_TO_NS)


def attempt(number: int, started_by: StartedBy, **fields: object) -> AttemptTrace:
    base: dict[str, object] = {
        "number": number,
        "provider": "fake",
        "provider_kind": "openai",
        "model": "chain-a",
        "upstream_model": "status:503",
        "started_by": started_by,
        "started_s": CLOCK_S + 0.125,
    }
    return AttemptTrace(**{**base, **fields})  # type: ignore[arg-type]


def fallback_trace() -> RequestTrace:
    """A stream asked of chain-a: its provider answered 503, chain-b (fake2) served."""
    return RequestTrace(
        request_id="req_0123456789abcdef01234567",
        method="POST",
        route="/v1/chat/completions",
        started_s=CLOCK_S,
        started_wall_s=WALL_S,
        api="chat",
        stream=True,
        requested_model="chain-a",
        served_model="chain-b",
        provider="fake2",
        provider_kind="openai",
        response_id="chatcmpl-42",
        attempts=[
            attempt(
                1,
                StartedBy.FIRST,
                ended_s=CLOCK_S + 0.25,
                outcome="error",
                status=503,
                error_type="upstream_unavailable",
            ),
            attempt(
                2,
                StartedBy.FALLBACK,
                provider="fake2",
                model="chain-b",
                upstream_model="delay:0",
                started_s=CLOCK_S + 0.25,
                first_byte_s=CLOCK_S + 0.5,
                ended_s=CLOCK_S + 1.5,
                outcome="won",
                status=200,
                byok=True,
            ),
        ],
        input_tokens=3,
        output_tokens=2,
        cost_micro_usd=47,
        finish_reason="stop",
        status=200,
        gateway_overhead_s=0.0625,
        first_byte_s=CLOCK_S + 0.5,
        ended_s=CLOCK_S + 2.0,
    )


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def test_a_fallback_is_a_server_span_with_an_attempt_span_each(
    caught: tuple[TraceExporter, InMemorySpanExporter],
) -> None:
    exporter, memory = caught
    exporter.request_done(fallback_trace())
    spans = by_name(memory.get_finished_spans())
    assert set(spans) == {"chat chain-a", "chat status:503", "chat delay:0"}
    root, failed, won = spans["chat chain-a"], spans["chat status:503"], spans["chat delay:0"]
    assert root.kind is SpanKind.SERVER and root.parent is None
    assert root.start_time == ns(CLOCK_S) and root.end_time == ns(CLOCK_S + 2.0)
    assert root.status.status_code is StatusCode.UNSET
    assert dict(root.attributes or {}) == {
        "http.request.method": "POST",
        "http.route": "/v1/chat/completions",
        "http.response.status_code": 200,
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "fake2",
        "gen_ai.request.model": "chain-a",
        "gen_ai.response.model": "chain-b",
        "gen_ai.response.id": "chatcmpl-42",
        "gen_ai.usage.input_tokens": 3,
        "gen_ai.usage.output_tokens": 2,
        "gen_ai.response.finish_reasons": ("stop",),
        "saferouter.request_id": "req_0123456789abcdef01234567",
        "saferouter.api": "chat",
        "saferouter.stream": True,
        "saferouter.provider_kind": "openai",
        "saferouter.attempts": 2,
        "saferouter.fallback": True,
        "saferouter.hedged": False,
        "saferouter.cost_micro_usd": 47,
        "saferouter.gateway_overhead_s": 0.0625,
        "saferouter.time_to_first_byte_s": 0.5,
    }
    for child in (failed, won):
        assert child.kind is SpanKind.CLIENT
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
    assert (failed.start_time, failed.end_time) == (ns(CLOCK_S + 0.125), ns(CLOCK_S + 0.25))
    assert (won.start_time, won.end_time) == (ns(CLOCK_S + 0.25), ns(CLOCK_S + 1.5))
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "upstream_unavailable"
    assert won.status.status_code is StatusCode.UNSET
    assert dict(failed.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "fake",
        "gen_ai.request.model": "status:503",
        "http.response.status_code": 503,
        "error.type": "upstream_unavailable",
        "saferouter.attempt": 1,
        "saferouter.started_by": "first",
        "saferouter.outcome": "error",
        "saferouter.provider_kind": "openai",
        "saferouter.model": "chain-a",
        "saferouter.byok": False,
    }
    assert dict(won.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "fake2",
        "gen_ai.request.model": "delay:0",
        "http.response.status_code": 200,
        "saferouter.attempt": 2,
        "saferouter.started_by": "fallback",
        "saferouter.outcome": "won",
        "saferouter.provider_kind": "openai",
        "saferouter.model": "chain-b",
        "saferouter.byok": True,
        "saferouter.time_to_first_byte_s": 0.25,
    }


def test_a_hedge_that_won_leaves_the_slow_attempt_cancelled_not_failed(
    caught: tuple[TraceExporter, InMemorySpanExporter],
) -> None:
    exporter, memory = caught
    trace = fallback_trace()
    trace.attempts = [
        attempt(
            1, StartedBy.FIRST, ended_s=CLOCK_S + 1.0, outcome="cancelled", error_type="lost_race"
        ),
        attempt(2, StartedBy.HEDGE, started_s=CLOCK_S + 0.25, outcome="won", status=200),
    ]
    exporter.request_done(trace)
    spans = memory.get_finished_spans()
    root = next(s for s in spans if s.kind is SpanKind.SERVER)
    slow, hedge = sorted(
        (s for s in spans if s.kind is SpanKind.CLIENT),
        key=lambda s: (s.attributes or {})["saferouter.attempt"],
    )
    assert (root.attributes or {})["saferouter.hedged"] is True
    assert slow.status.status_code is StatusCode.UNSET
    assert (slow.attributes or {})["saferouter.cancelled_by"] == "lost_race"
    assert "error.type" not in (slow.attributes or {})
    assert (hedge.attributes or {})["saferouter.started_by"] == "hedge"
    # an attempt with no end of its own (it was still running) ends with the request
    assert hedge.end_time == root.end_time == ns(CLOCK_S + 2.0)


@pytest.mark.parametrize(
    ("status", "error_type", "code"),
    [
        (502, "upstream_error", StatusCode.ERROR),
        (None, None, StatusCode.ERROR),  # no answer went out at all
        (None, "client_disconnected", StatusCode.UNSET),  # the client left first
        (200, "client_send_timeout", StatusCode.UNSET),  # it stopped reading
        (429, "rate_limit_exceeded", StatusCode.UNSET),  # the client's to fix
        (200, None, StatusCode.UNSET),
    ],
)
def test_the_request_span_is_an_error_when_the_gateway_failed_the_client(
    caught: tuple[TraceExporter, InMemorySpanExporter],
    status: int | None,
    error_type: str | None,
    code: StatusCode,
) -> None:
    exporter, memory = caught
    trace = fallback_trace()
    trace.status, trace.error_type = status, error_type
    exporter.request_done(trace)
    root = next(s for s in memory.get_finished_spans() if s.kind is SpanKind.SERVER)
    assert root.status.status_code is code
    assert (root.attributes or {}).get("error.type") == error_type


def test_a_route_that_is_no_llm_api_is_named_by_method_and_template(
    caught: tuple[TraceExporter, InMemorySpanExporter],
) -> None:
    exporter, memory = caught
    trace = RequestTrace(
        request_id="req_1",
        method="GET",
        route="/v1/keys/<key_id>",
        started_s=CLOCK_S,
        started_wall_s=WALL_S,
        status=404,
        error_type="not_found",
        ended_s=CLOCK_S + 0.5,
    )
    exporter.request_done(trace)
    (span,) = memory.get_finished_spans()
    assert span.name == "GET /v1/keys/<key_id>" and span.kind is SpanKind.SERVER
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "http.route": "/v1/keys/<key_id>",
        "http.response.status_code": 404,
        "error.type": "not_found",
        "saferouter.request_id": "req_1",
    }


def test_only_the_listed_attributes_ever_leave(
    caught: tuple[TraceExporter, InMemorySpanExporter],
) -> None:
    """Every field of a trace filled: the request span carries exactly these names (a
    new one is a decision about what leaves the gateway, made here, not by accident)."""
    exporter, memory = caught
    trace = fallback_trace()
    trace.attempts[0].first_byte_s = CLOCK_S + 0.2
    exporter.request_done(trace)
    root = next(s for s in memory.get_finished_spans() if s.kind is SpanKind.SERVER)
    assert set(root.attributes or {}) == REQUEST_ATTRIBUTES


def test_the_service_is_saferouter_unless_the_environment_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert service_resource().attributes["service.name"] == "saferouter"
    assert service_resource().attributes["service.version"] == "0.1.0"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-eu")
    assert service_resource().attributes["service.name"] == "gateway-eu"


def test_closing_sends_what_is_queued_to_the_collector() -> None:
    """The batch processor posts every 5 s; closing must not wait for that, nor lose
    the spans queued since: they are in the collector when ``close`` returns."""
    with otlp_collector() as collector:
        with open_trace_exporter(collector.url + "/v1/traces") as exporter:
            exporter.request_done(fallback_trace())
        assert sorted(s.name for s in collector.spans) == [
            "chat chain-a",
            "chat delay:0",
            "chat status:503",
        ]
        assert collector.content_types == ["application/x-protobuf"]


CLIENT_TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CLIENT_SPAN_ID = 0x00F067AA0BA902B7


def client_parent(flags: str = "01") -> str:
    return f"00-{CLIENT_TRACE_ID:032x}-{CLIENT_SPAN_ID:016x}-{flags}"


def test_a_clients_traceparent_makes_the_request_a_child_of_its_span(
    caught: tuple[TraceExporter, InMemorySpanExporter],
) -> None:
    """The client's trace goes on through the gateway: the request span is a child of
    the span its ``traceparent`` names, the attempts are in the same trace, and its
    ``tracestate`` is carried on."""
    exporter, memory = caught
    trace = fallback_trace()
    trace.traceparent, trace.tracestate = client_parent(), "vendor=abc"
    exporter.request_done(trace)
    spans = by_name(memory.get_finished_spans())
    root = spans["chat chain-a"]
    assert root.parent is not None and root.parent.is_remote
    assert (root.parent.trace_id, root.parent.span_id) == (CLIENT_TRACE_ID, CLIENT_SPAN_ID)
    assert root.context is not None and root.context.trace_state.get("vendor") == "abc"
    for span in memory.get_finished_spans():
        assert span.context is not None and span.context.trace_id == CLIENT_TRACE_ID
    assert spans["chat delay:0"].parent == root.context


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        f"00-{0:032x}-{CLIENT_SPAN_ID:016x}-01",  # an all-zero trace id
        f"ff-{CLIENT_TRACE_ID:032x}-{CLIENT_SPAN_ID:016x}-01",  # version ff: invalid
        f"00-{CLIENT_TRACE_ID:032x}-{CLIENT_SPAN_ID:016x}",  # no flags
    ],
)
def test_a_malformed_traceparent_leaves_the_request_a_root(
    caught: tuple[TraceExporter, InMemorySpanExporter], traceparent: str
) -> None:
    exporter, memory = caught
    trace = fallback_trace()
    trace.traceparent = traceparent
    exporter.request_done(trace)
    root = by_name(memory.get_finished_spans())["chat chain-a"]
    assert root.parent is None
    assert root.context is not None and root.context.trace_id != CLIENT_TRACE_ID


def test_a_client_that_samples_its_trace_out_is_followed_unless_the_operator_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SDK's default sampler follows the client's sampled flag (off: no spans);
    OTEL_TRACES_SAMPLER=always_on records every request whatever the client says."""
    trace = fallback_trace()
    trace.traceparent = client_parent(flags="00")
    recorded = []
    for sampler in (None, "always_on"):
        if sampler is None:
            monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
        else:
            monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
        memory = InMemorySpanExporter()
        exporter = TraceExporter(SimpleSpanProcessor(memory), resource=Resource({}))
        exporter.request_done(trace)
        exporter.close()
        recorded.append(len(memory.get_finished_spans()))
    assert recorded == [0, 3]


@pytest.mark.parametrize(
    "tracestate",
    [
        b"Bad Key=CLIENT-TEXT-MARKER",  # upper case and a space in the key
        b"good=1,=CLIENT-TEXT-MARKER",  # no key
        b"k=CLIENT-TEXT-MARKER ",  # ends in a space: stripped, so valid, and kept
        b"k=CLIENT,TEXT=MARKER=x",  # '=' in a value
        b"dup=CLIENT-TEXT-MARKER,dup=2",  # a key twice
        b",".join(b"k%d=v" % i for i in range(33)),  # 33 members
        b"k=" + b"v" * 257,  # a value over 256
    ],
)
def test_a_clients_bad_tracestate_is_dropped_quietly_and_its_parent_kept(
    caught: tuple[TraceExporter, InMemorySpanExporter],
    caplog: pytest.LogCaptureFixture,
    tracestate: bytes,
) -> None:
    """A malformed ``tracestate`` (W3C Trace Context §3.3.1) loses only itself: the
    request is still the client's span's child, and nothing is logged — the SDK, handed
    one, logs a warning quoting the client's text, one line per request it sends."""
    exporter, memory = caught
    trace = fallback_trace()
    trace.traceparent, trace.tracestate = trace_context(
        [(b"traceparent", client_parent().encode()), (b"tracestate", tracestate)]
    )
    with caplog.at_level(logging.DEBUG):
        exporter.request_done(trace)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    root = by_name(memory.get_finished_spans())["chat chain-a"]
    assert root.parent is not None and root.parent.span_id == CLIENT_SPAN_ID
    assert root.context is not None
    kept = root.context.trace_state.to_header()
    assert kept == ("k=CLIENT-TEXT-MARKER" if tracestate.endswith(b" ") else "")
