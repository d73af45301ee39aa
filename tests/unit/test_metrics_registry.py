"""The metrics registry alone: traces in, Prometheus text out, read back with the
reference parser (prometheus_client) — buckets, sums and counts, bounded labels."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from saferouter.errors import ParseError
from saferouter.metrics_registry import DURATION_BOUNDS_S, Histogram, MetricsRegistry
from saferouter.observe import AttemptTrace, RequestTrace, StartedBy


def parsed(text: str) -> dict[str, dict[tuple[Any, ...], float]]:
    """Every sample by metric family: (sample name, sorted labels) → value."""
    return {
        family.name: {(s.name, *sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


def labelled(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def samples_of(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called ``name`` (a family's ``_bucket``, ``_total`` …) by their labels."""
    return {
        labelled(**s.labels): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def sample(text: str, name: str, **labels: str) -> float:
    return samples_of(text, name)[labelled(**labels)]


def test_a_value_on_a_bound_counts_in_that_bucket_and_buckets_are_cumulative() -> None:
    histogram = Histogram("t_seconds", "Help.", ("route",), (0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(("/a",), value)
    samples = parsed(histogram.encode())["t_seconds"]
    buckets = {dict(k[1:])["le"]: v for k, v in samples.items() if k[0] == "t_seconds_bucket"}
    assert buckets == {"0.1": 2, "1.0": 4, "+Inf": 5}
    assert samples[("t_seconds_count", ("route", "/a"))] == 5
    assert samples[("t_seconds_sum", ("route", "/a"))] == 8.65


@given(st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=30))
def test_every_bucket_counts_the_values_at_or_under_its_bound(values: list[float]) -> None:
    histogram = Histogram("h_seconds", "Help.", (), DURATION_BOUNDS_S)
    for value in values:
        histogram.observe((), value)
    if not values:
        assert parsed(histogram.encode()) == {"h_seconds": {}}
        return
    samples = parsed(histogram.encode())["h_seconds"]
    for bound in DURATION_BOUNDS_S:
        expected = sum(value <= bound for value in values)
        assert samples[("h_seconds_bucket", ("le", repr(bound)))] == expected
    assert samples[("h_seconds_bucket", ("le", "+Inf"))] == len(values)
    assert samples[("h_seconds_count",)] == len(values)


def attempt(
    number: int, model: str, outcome: str, started_by: StartedBy, **times: float
) -> AttemptTrace:
    return AttemptTrace(
        number=number,
        provider="fake",
        provider_kind="openai",
        model=model,
        upstream_model=model,
        started_by=started_by,
        started_s=times.get("started_s", 0.0),
        first_byte_s=times.get("first_byte_s"),
        ended_s=times.get("ended_s"),
        outcome=outcome,
    )


def trace(**fields: Any) -> RequestTrace:
    return RequestTrace(
        request_id="req_1",
        method="POST",
        route=fields.pop("route", "/v1/chat/completions"),
        started_s=100.0,
        started_wall_s=1_800_000_000.0,
        **fields,
    )


def test_a_fallback_is_counted_by_route_model_status_provider_and_why() -> None:
    registry = MetricsRegistry(known_models=frozenset({"chain-a", "chain-b"}))
    registry.request_done(
        trace(
            api="chat",
            requested_model="chain-a",
            served_model="chain-b",
            provider="fake",
            status=200,
            attempts=[
                attempt(1, "chain-a", "error", StartedBy.FIRST, started_s=100.0, ended_s=100.5),
                attempt(
                    2, "chain-b", "won", StartedBy.FALLBACK,
                    started_s=100.5, first_byte_s=101.0, ended_s=103.0,
                ),
            ],
            input_tokens=7,
            output_tokens=5,
            cost_micro_usd=1234,
            gateway_overhead_s=0.002,
            ended_s=103.0,
        )
    )  # fmt: skip
    text = registry.encode()
    request = {"route": "/v1/chat/completions", "model": "chain-a", "status": "200"}
    assert sample(text, "saferouter_request_duration_seconds_sum", **request) == 3.0
    assert sample(text, "saferouter_gateway_overhead_seconds_count", **request) == 1
    attempts = "saferouter_upstream_attempts_total"
    assert samples_of(text, attempts) == {
        labelled(provider="fake", outcome="error", started_by="first"): 1,
        labelled(provider="fake", outcome="won", started_by="fallback"): 1,
    }
    served = {"provider": "fake", "model": "chain-b"}
    assert sample(text, "saferouter_upstream_first_byte_seconds_sum", **served) == 0.5
    assert sample(text, "saferouter_upstream_duration_seconds_sum", **served, outcome="won") == 2.5
    assert samples_of(text, "saferouter_tokens_total") == {
        labelled(**served, type="input"): 7,
        labelled(**served, type="output"): 5,
    }
    assert samples_of(text, "saferouter_cost_micro_usd_total") == {labelled(**served): 1234}
    assert sample(text, "saferouter_open_streams") == 0


def test_model_labels_take_no_name_a_client_made_up() -> None:
    registry = MetricsRegistry(known_models=frozenset({"demo"}))
    for requested in ("demo", "fake/anything-i-like", None):
        registry.request_done(
            trace(api="chat", requested_model=requested, status=400, ended_s=101.0)
        )
    registry.request_done(trace(route="/v1/keys", status=200, ended_s=101.0))  # no LLM API
    registry.request_done(trace(api="chat", requested_model="demo", ended_s=101.0))  # left
    counts = samples_of(registry.encode(), "saferouter_request_duration_seconds_count")
    chat = "/v1/chat/completions"
    assert counts == {
        labelled(route=chat, model="demo", status="400"): 1,
        labelled(route=chat, model="unlisted", status="400"): 1,
        labelled(route=chat, model="unknown", status="400"): 1,
        labelled(route="/v1/keys", model="", status="200"): 1,
        labelled(route=chat, model="demo", status="499"): 1,  # no response started
    }


def test_open_streams_are_a_gauge() -> None:
    registry = MetricsRegistry(known_models=frozenset())
    registry.open_streams.opened()
    registry.open_streams.opened()
    registry.open_streams.closed()
    assert sample(registry.encode(), "saferouter_open_streams") == 1


def traffic(n: int, offset: int) -> list[RequestTrace]:
    """``n`` varied requests (times in binary fractions: sums add up exactly)."""
    models = ("demo", "fake/made-up", None)
    return [
        trace(
            api="chat",
            requested_model=models[(i + offset) % 3],
            served_model="demo",
            provider="demo",
            status=(200, 429, None)[(i + offset) % 3],
            attempts=[
                attempt(1, "demo", "won", StartedBy.FIRST, first_byte_s=100.25, ended_s=100.5)
            ],
            input_tokens=i,
            output_tokens=2 * i,
            cost_micro_usd=3 * i,
            gateway_overhead_s=0.0625 * (i % 4),
            ended_s=100.0 + 0.5 * i,
        )
        for i in range(n)
    ]


def test_merged_snapshots_read_as_one_registry_fed_everything() -> None:
    one, two, everything = (MetricsRegistry(known_models=frozenset({"demo"})) for _ in range(3))
    for registry, traces in ((one, traffic(7, 0)), (two, traffic(5, 1))):
        for request in traces:
            registry.request_done(request)
            everything.request_done(request)
    one.open_streams.opened()
    two.open_streams.opened()
    merged = MetricsRegistry(known_models=frozenset({"demo"}))
    for registry in (one, two):  # as they travel between workers: JSON
        merged.merge(json.loads(json.dumps(registry.snapshot())))
    everything.open_streams.count = 2
    assert merged.encode() == everything.encode()
    assert one.changes == 8 and two.changes == 6  # counted, and a stream opened


def test_a_snapshot_of_another_version_is_refused() -> None:
    registry = MetricsRegistry(known_models=frozenset())
    with pytest.raises(ParseError):
        registry.merge({**registry.snapshot(), "version": 0})
