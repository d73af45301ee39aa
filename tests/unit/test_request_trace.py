"""Every request handled by ClientGuard yields one finished RequestTrace, handed to the
worker's observers exactly once after the app returned: whatever answered, an app that
raised, a client that left before any answer. A scripted server and small ASGI apps on
trio's autojump clock (no real waits)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from saferouter.asgi import ClientGuard, trace_of
from saferouter.observe import Observers, RequestTrace, trace_context

from .test_asgi import ScriptedServer, chunk, scope


class Recorder:
    """An observer keeping what it is handed."""

    def __init__(self) -> None:
        self.traces: list[RequestTrace] = []

    def request_done(self, trace: RequestTrace) -> None:
        self.traces.append(trace)


class Broken:
    def request_done(self, trace: RequestTrace) -> None:
        raise RuntimeError("an exporter's bug")


def guarded(app: Any, *observers: Any) -> ClientGuard:
    return ClientGuard(
        app,
        send_timeout_s=60,
        drain_limit_bytes=100,
        body_timeout_s=30,
        observers=lambda: Observers(observers),
    )


async def claims_and_answers(scope: Any, receive: Any, send: Any) -> None:
    """Claims the request for a route after 2 s of work, answers 201 with two chunks
    3 s apart."""
    trace = trace_of(scope)
    assert trace is not None and trace.route == "unmatched"  # until claimed
    trace.route = "/v1/things/<thing_id>"
    await trio.sleep(2)
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"a", "more_body": True})
    await trio.sleep(3)
    await send({"type": "http.response.body", "body": b"b", "more_body": False})


async def test_a_request_is_traced_once_with_its_route_status_and_times(
    autojump_clock: trio.abc.Clock,
) -> None:
    recorder, server = Recorder(), ScriptedServer()
    started_s = trio.current_time()
    await guarded(claims_and_answers, recorder)(scope(), server.receive, server.send)
    [trace] = recorder.traces
    assert trace.route == "/v1/things/<thing_id>" and trace.method == "POST"
    assert trace.status == 201 and trace.request_id.startswith("req_")
    assert trace.started_s == started_s
    assert trace.first_byte_s == started_s + 2 and trace.ended_s == started_s + 5
    assert trace.gateway_overhead_s == 2  # no upstream waited on: all of it the gateway's
    assert trace.wall_s(trace.ended_s) - trace.started_wall_s == 5


async def leaves_unanswered(scope: Any, receive: Any, send: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def test_a_client_that_leaves_before_an_answer_is_traced_without_a_status(
    autojump_clock: trio.abc.Clock,
) -> None:
    recorder, server = Recorder(), ScriptedServer()
    await server.incoming_send.send({"type": "http.disconnect"})
    await guarded(leaves_unanswered, recorder)(
        scope((b"content-length", b"4")), server.receive, server.send
    )
    [trace] = recorder.traces
    assert trace.status is None and trace.first_byte_s is None and trace.ended_s is not None


async def raises(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("a bug")


async def test_an_app_that_raises_is_traced_too(autojump_clock: trio.abc.Clock) -> None:
    recorder, server = Recorder(), ScriptedServer()
    with pytest.raises(RuntimeError):
        await guarded(raises, recorder)(scope(), server.receive, server.send)
    assert len(recorder.traces) == 1


async def test_a_cancelled_request_is_traced_too(autojump_clock: trio.abc.Clock) -> None:
    recorder, server = Recorder(), ScriptedServer()
    with trio.move_on_after(1):  # the worker shutting down, say
        await guarded(leaves_unanswered, recorder)(scope(), server.receive, server.send)
    [trace] = recorder.traces
    assert trace.ended_s == trace.started_s + 1


async def test_a_failing_observer_is_logged_and_the_others_still_run(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    recorder, server = Recorder(), ScriptedServer()
    await server.incoming_send.send(chunk(b"", more=False))
    with caplog.at_level(logging.ERROR, logger="saferouter.observe"):
        await guarded(claims_and_answers, Broken(), recorder)(scope(), server.receive, server.send)
    assert len(recorder.traces) == 1
    assert "observer Broken failed" in caplog.text


async def test_a_lifespan_is_no_request(autojump_clock: trio.abc.Clock) -> None:
    recorder = Recorder()

    async def lifespan(scope: Any, receive: Any, send: Any) -> None:
        pass

    await guarded(lifespan, recorder)({"type": "lifespan"}, None, None)
    assert recorder.traces == []


PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("headers", "context"),
    [
        ([], (None, None)),
        ([(b"traceparent", PARENT.encode())], (PARENT, None)),
        (
            [
                (b"traceparent", b" " + PARENT.encode()),
                (b"tracestate", b"a=1"),
                (b"tracestate", b"b=2"),
            ],
            (PARENT, "a=1,b=2"),
        ),
        ([(b"traceparent", PARENT.encode())] * 2, (None, None)),  # twice: no parent
        ([(b"tracestate", b"a=1")], (None, None)),  # a state without a parent
        ([(b"traceparent", b"00-" + b"a" * 200)], (None, None)),  # over the bound
        ([(b"traceparent", PARENT.encode()), (b"tracestate", b"a=" + b"1" * 600)], (PARENT, None)),
        ([(b"traceparent", "00-é".encode())], (None, None)),  # not ASCII
        ([(b"traceparent", b"00-\x00")], (None, None)),  # a control byte
        ([(b"traceparent", b"")], (None, None)),
    ],
)
def test_the_clients_trace_context_is_kept_only_bounded_and_printable(
    headers: list[tuple[bytes, bytes]], context: tuple[str | None, str | None]
) -> None:
    assert trace_context(headers) == context


async def test_the_trace_carries_the_clients_trace_context(
    autojump_clock: trio.abc.Clock,
) -> None:
    recorder, server = Recorder(), ScriptedServer()
    sent = scope((b"traceparent", PARENT.encode()), (b"tracestate", b"v=1"))
    await guarded(claims_and_answers, recorder)(sent, server.receive, server.send)
    [trace] = recorder.traces
    assert (trace.traceparent, trace.tracestate) == (PARENT, "v=1")
