"""OpenTelemetry traces from a real `saferouter serve`: real traffic through the openai
SDK (a fallback, a stream, an upstream failure, a page sent with the client's own
``traceparent``, a URL no route has), spans
posted over OTLP/HTTP to a collector on 127.0.0.1 (tests/otlp_collector.py), stopped by
SIGTERM. And the other side: with no endpoint, OpenTelemetry is never even imported.

Whether OpenTelemetry was imported is read from the server process itself: a
``sitecustomize`` put on its PYTHONPATH prints, at exit, which ``opentelemetry``
modules it had loaded — after it has started, served and stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import openai
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ..otlp_collector import ReceivedSpan, otlp_collector
from ..processes import CLI, clean_env, free_port, new_key, serving
from ..servers import fake_upstream, write_catalog

UPSTREAM_KEY = "sk-upstream-otel-0123456789"
PROMPT = "the secret plan is PROMPT-6f1d-MARKER"
PROBE = "opentelemetry modules at exit: "
REQUEST_ID = "x-saferouter-request-id"
CLIENT_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

SITECUSTOMIZE = f"""
import atexit, json, sys

@atexit.register
def _report():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
    print({PROBE!r} + json.dumps(loaded), flush=True)
"""


def probed_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """Variables for a server that reports its OpenTelemetry modules at exit."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(probe), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, **env}


def loaded_modules(output: str) -> list[list[str]]:
    """What each process of the server (its workers too) had imported of OpenTelemetry."""
    lines = [line for line in output.splitlines() if line.startswith(PROBE)]
    assert lines, output
    return [json.loads(line.removeprefix(PROBE)) for line in lines]


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    """``parent`` 's child spans, by attempt number."""
    found = [s for s in spans if s.span.parent_span_id == parent.span.span_id]
    return sorted(found, key=lambda s: s.attributes["saferouter.attempt"])


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_spans_of_real_traffic_reach_the_collector_by_the_time_the_gateway_stops(
    tmp_path: Path, workers: str
) -> None:
    """SIGTERM: the one process, or the parent that stops its workers; each worker
    sends the spans it holds before it exits."""
    data = tmp_path / "data"
    key = new_key(data, "--name", "user")
    async with fake_upstream() as upstream:
        catalog = write_catalog(tmp_path / "catalog.toml", upstream.url)
        with otlp_collector() as collector:
            env = probed_env(
                tmp_path,
                FAKE_API_KEY=UPSTREAM_KEY,
                OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
                # no batch goes out on its own schedule: what arrives, the stop sent
                OTEL_BSP_SCHEDULE_DELAY="600000",
            )
            extra = ("--config", str(catalog), "--workers", workers)
            with serving(data, *extra, env=env) as served:
                sdk = openai.AsyncOpenAI(base_url=served.url + "/v1", api_key=key, max_retries=0)
                async with sdk:
                    messages = [{"role": "user", "content": PROMPT}]
                    fallback = await sdk.chat.completions.with_raw_response.create(
                        model="chain-a",
                        messages=messages,  # type: ignore[arg-type]
                    )
                    streamed = await sdk.chat.completions.with_raw_response.create(
                        model="chain-b",
                        messages=messages,  # type: ignore[arg-type]
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                    text = [c.choices[0].delta.content async for c in streamed.parse() if c.choices]
                    with pytest.raises(openai.APIStatusError) as failed:
                        await sdk.chat.completions.create(
                            model="fake/status:500",
                            messages=messages,  # type: ignore[arg-type]
                        )
                    models = await sdk.models.with_raw_response.list(
                        extra_headers={"traceparent": CLIENT_PARENT}  # the client's trace
                    )
                async with httpx.AsyncClient(base_url=served.url) as client:
                    lost = await client.get("/no/such/page-PATH-MARKER")
                assert collector.spans == []  # all still queued in the gateway
        spans = collector.spans
        assert "".join(t for t in text if t) and lost.status_code == 404
        assert upstream.requests[-1]["body"]["model"] == "status:500"

    # (1) one SERVER span per request, found by the id the client was sent
    roots = {
        s.attributes["saferouter.request_id"]: s
        for s in spans
        if s.span.kind == Span.SPAN_KIND_SERVER
    }
    assert len(roots) == sum(s.span.kind == Span.SPAN_KIND_SERVER for s in spans)  # each once
    answers = [fallback, streamed, failed.value.response, models, lost]
    fallback_span, stream_span, failed_span, models_span, lost_span = (
        roots[r.headers[REQUEST_ID]] for r in answers
    )
    # (2) the fallback: asked chain-a, served by chain-b, an attempt span each
    assert fallback_span.name == "chat chain-a"
    assert fallback_span.attributes["gen_ai.request.model"] == "chain-a"
    assert fallback_span.attributes["gen_ai.response.model"] == "chain-b"
    assert fallback_span.attributes["saferouter.fallback"] is True
    assert fallback_span.attributes["gen_ai.usage.input_tokens"] == 3
    assert fallback_span.attributes["gen_ai.usage.output_tokens"] == 2
    assert fallback_span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    attempts = children(spans, fallback_span)
    assert [
        (
            s.span.kind,
            s.attributes["gen_ai.system"],
            s.attributes["saferouter.started_by"],
            s.attributes["saferouter.outcome"],
            s.attributes["http.response.status_code"],
            s.span.status.code,
        )
        for s in attempts
    ] == [
        (Span.SPAN_KIND_CLIENT, "fake", "first", "error", 503, Status.STATUS_CODE_ERROR),
        (Span.SPAN_KIND_CLIENT, "fake2", "fallback", "won", 200, Status.STATUS_CODE_UNSET),
    ]
    for attempt in attempts:
        assert attempt.span.trace_id == fallback_span.span.trace_id
        assert fallback_span.span.start_time_unix_nano <= attempt.span.start_time_unix_nano
        assert attempt.span.end_time_unix_nano <= fallback_span.span.end_time_unix_nano
    # (3) the stream, the upstream failure, a page, an unknown URL
    assert stream_span.attributes["saferouter.stream"] is True
    assert stream_span.attributes["gen_ai.usage.output_tokens"] > 0
    assert failed_span.span.status.code == Status.STATUS_CODE_ERROR
    assert failed_span.attributes["http.response.status_code"] >= 500
    assert models_span.name == "GET /v1/models"
    # only the request that sent a traceparent goes on in the client's trace
    client_trace_id, client_span_id = CLIENT_PARENT.split("-")[1:3]
    assert models_span.span.trace_id.hex() == client_trace_id
    assert models_span.span.parent_span_id.hex() == client_span_id
    others = [fallback_span, stream_span, failed_span, lost_span]
    assert [s.span.parent_span_id for s in others] == [b""] * 4
    assert all(s.span.trace_id.hex() != client_trace_id for s in others)
    assert models_span.span.status.code == Status.STATUS_CODE_UNSET
    assert lost_span.attributes["http.route"] == "unmatched"
    assert {s.resource["service.name"] for s in spans} == {"saferouter"}
    # (4) never a prompt, an answer, a key or a raw path, in any byte sent
    for body in collector.bodies:
        for secret in (PROMPT, "fake answer", key, UPSTREAM_KEY, "PATH-MARKER"):
            assert secret.encode() not in body
    assert any("opentelemetry.sdk.trace" in m for m in loaded_modules(served.output))
    assert "OpenTelemetry traces go to " + collector.url + "/v1/traces" in served.output


async def test_without_an_endpoint_opentelemetry_is_never_imported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = new_key(data, "--name", "user")
    with serving(data, env=probed_env(tmp_path)) as served:
        async with openai.AsyncOpenAI(
            base_url=served.url + "/v1", api_key=key, max_retries=0
        ) as sdk:
            answer = await sdk.chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "hi"}]
            )
    assert answer.choices[0].message.content
    assert not any(name.startswith("OTEL_") for name in clean_env())
    assert loaded_modules(served.output) == [[]]


def test_a_missing_otel_extra_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    """The extra not installed (its import refused, as for an absent package): `serve`
    with an endpoint says what to install, exit code 2, not a traceback."""
    absent = tmp_path / "absent"
    absent.mkdir()
    (absent / "sitecustomize.py").write_text("import sys\nsys.modules['opentelemetry'] = None\n")
    path = os.pathsep.join(p for p in (str(absent), os.environ.get("PYTHONPATH")) if p)
    env = {**clean_env(), "PYTHONPATH": path, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    result = subprocess.run(
        [*CLI, "serve", "--data-dir", str(tmp_path / "data"), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'saferouter[otel]'" in result.stderr
    assert "Traceback" not in result.stderr
