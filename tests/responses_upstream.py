"""The fake upstream's ``POST /v1/responses`` (OpenAI's Responses API), for
:func:`tests.servers.make_fake_upstream`.

As for chat, the upstream model name the gateway sends says what to do:

* ``replay:<path>[@seed]`` — a Responses stream recording (.sse as is; a .chunks.jsonl
  rebuilt with its ``event:`` lines), in randomly sized pieces;
* ``file:<path>`` — a non-stream recording's bytes as the 200 JSON body (Bedrock Mantle's
  ``status: "failed"`` body among them);
* ``status:<code>[:<errors/file>]`` — an error status, with that recorded body;
* ``stall`` — a stream of ``response.created`` and one text delta that then stays open,
  silent;
* ``echo`` — a JSON body describing the request received (body, headers);
* ``cut:<path>`` — a stream recording without its terminal event (cut off);
* ``keyish:<path>`` — a stream recording whose answer quotes something shaped like a
  credential (every ``Paris`` written ``sk-Paris-1234``: a model may write keys in code);
* any other name — a small completed response naming that model (usage 3 in, 2 out),
  its id ``resp_fake<n>``, n the request's number at this server; streamed when asked.

Every request is recorded in ``FakeUpstream.requests`` with ``path: "/v1/responses"``.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from . import fake_messages, servers
from .recordings import RECORDINGS, typed_stream_bytes

KEYISH = b"sk-Paris-1234"
RESPONSE_USAGE = {
    "input_tokens": 3,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 2,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 5,
}


def responses_route(app: QuartTrio, state: servers.FakeUpstream) -> None:
    """Add ``POST /v1/responses`` to the fake upstream ``app``."""

    @app.post("/v1/responses")
    async def responses() -> Response:
        raw = await request.get_data(cache=False)
        body = json.loads(raw)
        state.requests.append(
            {"body": body, "raw": raw, "headers": dict(request.headers), "path": "/v1/responses"}
        )
        mode, _, arg = str(body["model"]).partition(":")
        if mode == "replay":
            path, _, seed = arg.partition("@")
            return servers._replay(typed_stream_bytes(path), int(seed or 0))
        if mode == "cut":
            events = typed_stream_bytes(arg).split(b"\n\n")
            kept = [e for e in events if b'"type":"response.completed"' not in e]
            return servers._replay(b"\n\n".join(kept), 0)
        if mode == "keyish":
            return servers._replay(typed_stream_bytes(arg).replace(b"Paris", KEYISH), 0)
        if mode == "stall":  # created and one text delta, then silence until the gateway leaves
            answer = completed(str(body["model"]), f"resp_fake{len(state.requests)}")
            return fake_messages.stalled_stream(state, small_stream(answer)[:2])
        if mode == "file":
            assert RECORDINGS is not None
            return Response((RECORDINGS / arg).read_bytes(), content_type="application/json")
        if mode == "status":
            return servers._status(arg)
        if mode == "echo":
            echoed = {"received": body, "headers": dict(request.headers)}
            return Response(json.dumps(echoed), content_type="application/json")
        answer = completed(str(body["model"]), f"resp_fake{len(state.requests)}")
        if body.get("stream"):
            return servers._sse(*small_stream(answer))
        return Response(json.dumps(answer), content_type="application/json")


def completed(model: str, response_id: str = "resp_fake1") -> dict[str, Any]:
    """A small completed response."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_fake1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "fake answer", "annotations": []}],
            }
        ],
        "usage": RESPONSE_USAGE,
    }


def small_stream(answer: dict[str, Any]) -> list[bytes]:
    """``answer`` as a short Responses stream: created, one text delta, completed."""
    opened = {**answer, "status": "in_progress", "output": [], "usage": None}
    events = [
        {"type": "response.created", "response": opened},
        {
            "type": "response.output_text.delta",
            "item_id": "msg_fake1",
            "output_index": 0,
            "content_index": 0,
            "delta": "fake answer",
            "logprobs": [],
        },
        {"type": "response.completed", "response": answer},
    ]
    return [
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': n})}\n\n".encode()
        for n, e in enumerate(events)
    ]
