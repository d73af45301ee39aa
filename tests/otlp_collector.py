"""A tiny OpenTelemetry collector: a real HTTP server on 127.0.0.1 that takes OTLP/HTTP
trace exports (``POST /v1/traces``, protobuf ``ExportTraceServiceRequest``, as the SDK's
exporter sends them) and keeps what it decoded, and the raw bytes, for a test to read.

It serves from a thread of its own, not from the test's trio loop: a gateway flushes its
last spans while it stops, and the tests wait for that stop with a blocking call
(``processes.serving`` joins the process), during which a trio server would not answer.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

TRACES_PATH = "/v1/traces"


@attrs.frozen
class ReceivedSpan:
    """One span as the collector decoded it: its resource's attributes and its own."""

    span: Span
    attributes: dict[str, Any]
    resource: dict[str, Any]

    @property
    def name(self) -> str:
        return self.span.name


@attrs.define
class OtlpCollector:
    url: str = ""  # the base URL: what OTEL_EXPORTER_OTLP_ENDPOINT is set to
    bodies: list[bytes] = attrs.Factory(list)  # each export as it arrived (decompressed)
    spans: list[ReceivedSpan] = attrs.Factory(list)
    content_types: list[str] = attrs.Factory(list)
    _changed: threading.Condition = attrs.Factory(threading.Condition)

    def add(self, body: bytes, content_type: str) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        with self._changed:
            self.bodies.append(body)
            self.content_types.append(content_type)
            for resource_spans in request.resource_spans:
                resource = attributes_of(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(
                        ReceivedSpan(span, attributes_of(span.attributes), resource)
                        for span in scope_spans.spans
                    )
            self._changed.notify_all()

    def wait_for_spans(self, count: int, *, timeout_s: float = 60.0) -> list[ReceivedSpan]:
        """The spans received once there are at least ``count`` (a generous bound: the
        batch processor posts every 5 s, on a loaded machine later)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.spans) < count:
                left_s = deadline - time.monotonic()
                assert left_s > 0, f"{len(self.spans)} spans of {count} after {timeout_s} s"
                self._changed.wait(left_s)
            return list(self.spans)


def attributes_of(pairs: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` s as a dict of plain values (an array as a tuple)."""
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


@contextmanager
def otlp_collector() -> Iterator[OtlpCollector]:
    """Serve a collector on 127.0.0.1 (an ephemeral port) until the block ends."""
    collector = OtlpCollector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            if self.path != TRACES_PATH:
                self.send_error(404)
                return
            collector.add(body, self.headers.get("Content-Type", ""))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test reads what arrived, not an access log

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    collector.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
