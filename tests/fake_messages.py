"""The fake upstream's Anthropic Messages endpoints: ``POST /v1/messages`` and
``POST /v1/messages/count_tokens`` (hooked into :func:`tests.servers.make_fake_upstream`).

What ``/v1/messages`` does is chosen by the model name the gateway sends it, as for chat
(the catalog's prefix routing passes ``fake/<name>`` through as ``<name>``):

* ``replay:anthropic/<file>.sse[@seed]`` — the recording's bytes in random pieces
  (seeded), as ``text/event-stream``; ``replay:anthropic/<file>.json`` — its bytes as
  the JSON body;
* ``cut:anthropic/<file>.sse:<n>`` — the recording's first ``n`` events, then the body
  ends (a provider that broke off without ``message_stop``);
* ``overloaded`` — 529 with Anthropic's ``overloaded_error`` body as a GitHub issue
  quotes it (recordings/anthropic/reported_in_issues.json);
* ``status:<code>`` — that status with an Anthropic-shaped ``api_error`` body;
* ``stall`` — a stream of ``message_start`` and one text delta that then stays open,
  silent;
* ``usage:<n>`` — a small ``message`` reporting ``n`` input and ``n`` output tokens;
* ``error-event`` — a 200 stream: ``message_start``, then ``event: error``
  (``overloaded_error``), as Anthropic documents a mid-stream failure;
* any other name — a small ``message`` naming that model (a stream when asked).

Every request is recorded in ``FakeUpstream.requests`` (its raw body and headers). An
``x-api-key`` in ``FakeUpstream.refused_keys`` gets Anthropic's 401.

``/v1/messages/count_tokens`` answers ``{"input_tokens": 42}``, except for the model
``nocount``: the 404 ``not_found_error`` Anthropic sent for an unknown model
(recordings/anthropic/pydantic-ai__404_not_found_error.json).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from .recordings import RECORDINGS

if TYPE_CHECKING:
    from .servers import FakeUpstream

COUNTED_INPUT_TOKENS = 42
SMALL_USAGE = {"input_tokens": 5, "output_tokens": 3}


def add_messages_routes(app: QuartTrio, state: FakeUpstream) -> None:
    """Serve the Messages API on the fake upstream ``app``."""

    @app.post("/v1/messages")
    async def messages() -> Response:
        body = await _recorded(state)
        model = str(body.get("model"))
        if request.headers.get("x-api-key", "") in state.refused_keys:
            return _error(401, "authentication_error", "invalid x-api-key")
        mode, _, arg = model.partition(":")
        if mode == "replay":
            path, _, seed = arg.partition("@")
            data = _recording(path)
            if path.endswith(".json"):
                return Response(data, content_type="application/json")
            from .servers import _replay  # servers imports this module

            return _replay(data, int(seed or 0))
        if mode == "cut":
            path, _, count = arg.rpartition(":")
            events = _recording(path).split(b"\n\n")[: int(count)]
            return _sse(b"".join(e + b"\n\n" for e in events))
        if mode == "overloaded":
            return Response(_reported_529(), status=529, content_type="application/json")
        if mode == "status":
            return _error(int(arg), "api_error", f"fake failure {arg}")
        if mode == "stall":  # the stream's start and first text, then nothing
            return stalled_stream(state, _small_stream(model)[:3])
        if mode == "usage":  # a provider reporting ``arg`` tokens in and out
            usage = {"input_tokens": int(arg), "output_tokens": int(arg)}
            return Response(json.dumps({**small_message(model), "usage": usage}))
        if mode == "error-event":
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}}
            return _sse(_start(model), _event("error", error))
        if body.get("stream"):
            return _sse(*_small_stream(model))
        return Response(json.dumps(small_message(model)), content_type="application/json")

    @app.post("/v1/messages/count_tokens")
    async def count_tokens() -> Response:
        body = await _recorded(state)
        if body.get("model") == "nocount":
            return Response(_recording("anthropic/pydantic-ai__404_not_found_error.json"), 404)
        return Response(json.dumps({"input_tokens": COUNTED_INPUT_TOKENS}))


async def _recorded(state: FakeUpstream) -> dict[str, Any]:
    raw = await request.get_data(cache=False)
    body: dict[str, Any] = json.loads(raw)
    state.requests.append(
        {"body": body, "raw": raw, "headers": dict(request.headers), "path": request.path}
    )
    return body


def small_message(model: str) -> dict[str, Any]:
    return {
        "id": "msg_fake_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "fake answer"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": SMALL_USAGE,
    }


def _start(model: str) -> bytes:
    message = {**small_message(model), "content": [], "stop_reason": None}
    return _event("message_start", {"type": "message_start", "message": message})


def _small_stream(model: str) -> list[bytes]:
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}
    delta = {"type": "text_delta", "text": "fake answer"}
    final = {"stop_reason": "end_turn", "stop_sequence": None}
    return [
        _start(model),
        _event("content_block_start", {**block, "content_block": {"type": "text", "text": ""}}),
        _event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event("message_delta", {"type": "message_delta", "delta": final, "usage": SMALL_USAGE}),
        _event("message_stop", {"type": "message_stop"}),
    ]


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def _sse(*events: bytes) -> Response:
    return _event_stream(b"".join(events))


def _event_stream(body: bytes | AsyncIterator[bytes]) -> Response:
    response = Response(body, content_type="text/event-stream")
    response.timeout = None
    return response


def stalled_stream(state: FakeUpstream, events: list[bytes]) -> Response:
    """``events``, then a stream that stays open and silent until the gateway leaves
    (recorded as ``cancelled:stall`` in ``state.events``)."""

    async def chunks() -> AsyncIterator[bytes]:
        try:
            for event in events:
                yield event
            await trio.sleep_forever()
        except trio.Cancelled:
            state.events.append("cancelled:stall")
            raise

    return _event_stream(chunks())


def _error(status: int, kind: str, message: str) -> Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return Response(json.dumps(body), status=status, content_type="application/json")


def _recording(relative: str) -> bytes:
    assert RECORDINGS is not None
    return (RECORDINGS / relative).read_bytes()


def _reported_529() -> bytes:
    reported = json.loads(_recording("anthropic/reported_in_issues.json"))
    return next(e["body"] for e in reported["errors"] if e["status"] == 529).encode()
