"""What the pipeline tells a request's trace, on trio's mock clock: the API, the model
asked for and the one that served, every attempt (why it started, how it ended), the
usage and cost billed — for a body, a stream, a fallback, a hedge, a failure, and a
client that leaves. The HTTP layer's own part (route, status, response times) is
tests/unit/test_request_trace.py's."""

from __future__ import annotations

from pathlib import Path

import trio

from saferouter.observe import RequestTrace, StartedBy

from .pipeline_harness import EPOCH_S, read_all, running_pipeline
from .test_pipeline import attempts, hedging


def new_trace() -> RequestTrace:
    now = trio.current_time()
    return RequestTrace(
        request_id="req_t",
        method="POST",
        route="/v1/chat/completions",
        started_s=now,
        started_wall_s=EPOCH_S + now,
    )


def story(trace: RequestTrace) -> list[tuple[int, str, str, StartedBy, str | None]]:
    return [(a.number, a.model, a.outcome, a.started_by, a.error_type) for a in trace.attempts]


async def test_a_body_tells_its_model_usage_cost_and_attempt(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        trace = new_trace()
        await p.send("fake/ok", trace=trace)
        [entry] = await attempts(p)
    assert (trace.api, trace.stream) == ("chat", False)
    assert (trace.requested_model, trace.served_model) == ("fake/ok", "fake/ok")
    assert (trace.provider, trace.provider_kind) == ("fake", "openai")
    assert (trace.input_tokens, trace.output_tokens) == (3, entry.completion_tokens)
    assert trace.cost_micro_usd == entry.cost_micro_usd > 0
    assert trace.finish_reason == "stop" and trace.response_id == entry.response_id
    assert not trace.fallback and not trace.hedged and trace.error_type is None
    assert story(trace) == [(1, "fake/ok", "won", StartedBy.FIRST, None)]
    [attempt] = trace.attempts
    assert attempt.status == 200 and attempt.upstream_model == "ok" and not attempt.byok


async def test_a_fallback_and_a_hedge_tell_their_story(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, hedging) as p:
        failed_over, hedged = new_trace(), new_trace()
        await p.send("failing", trace=failed_over)
        await p.send("hedged", trace=hedged)
    assert failed_over.fallback and not failed_over.hedged
    assert (failed_over.requested_model, failed_over.served_model) == ("failing", "quick")
    assert story(failed_over) == [
        (1, "failing", "error", StartedBy.FIRST, "upstream_unavailable"),
        (2, "quick", "won", StartedBy.FALLBACK, None),
    ]
    assert failed_over.attempts[0].status == 503
    assert hedged.hedged and hedged.served_model == "quick"
    assert story(hedged) == [
        (1, "hedged", "cancelled", StartedBy.FIRST, "lost_race"),
        (2, "quick", "won", StartedBy.HEDGE, None),
    ]
    assert hedged.attempts[1].started_s - hedged.attempts[0].started_s == 0.15


async def test_a_stream_served_attempt_ends_when_the_stream_does(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        trace = new_trace()
        await read_all(await p.send("fake/slow:3:1000", stream=True, trace=trace))
    [attempt] = trace.attempts
    assert trace.stream and attempt.outcome == "won" and trace.output_tokens == 2
    assert attempt.first_byte_s == 0 and attempt.ended_s == 3.0  # its last chunk, not its first


async def test_a_failure_and_a_client_that_leaves_say_why(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        failed, left, left_stream = new_trace(), new_trace(), new_trace()
        await p.error("fake/status:503", trace=failed)
        with trio.move_on_after(1):
            await p.send("fake/slowstart:5000", trace=left)
        reply = await p.send("fake/stall:2", stream=True, trace=left_stream)
        assert reply.stream is not None
        await reply.stream.__anext__()
        await reply.stream.aclose()
    assert failed.error_type == "upstream_unavailable" and failed.served_model is None
    assert story(failed) == [
        (1, "fake/status:503", "error", StartedBy.FIRST, "upstream_unavailable")
    ]
    assert left.error_type == "client_disconnected"
    assert story(left) == [
        (1, "fake/slowstart:5000", "cancelled", StartedBy.FIRST, "client_disconnected")
    ]
    assert left_stream.error_type == "client_disconnected"
    assert left_stream.served_model == "fake/stall:2" and left_stream.output_tokens
