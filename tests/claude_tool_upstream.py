"""A fake Anthropic provider that drives one turn of Claude Code's agent loop: asked
anything, it streams a ``tool_use`` of Claude Code's own ``Bash`` tool (its input in
``input_json_delta`` pieces, as Anthropic streams it); sent the ``tool_result``, it
streams a text answer quoting what the tool printed. So a test sees Claude Code run a
tool and come back through the gateway, every request billed from the usage here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import attrs

from .recording_proxy import Receive, Send, serve_lifespan
from .servers import running_server

TOOL_MARKER = "saferouter-tool-ok"
TOOL_INPUT = {"command": f"echo {TOOL_MARKER}", "description": "Print a marker"}
USAGE = {"input_tokens": 100, "output_tokens": 20}


@attrs.define
class ToolUpstream:
    url: str = ""
    bodies: list[dict[str, Any]] = attrs.Factory(list)  # each /v1/messages request


def tool_result_text(body: dict[str, Any]) -> str | None:
    """The text of the ``tool_result`` in the request's last message, if it has one."""
    content = body["messages"][-1]["content"]
    for block in content if isinstance(content, list) else []:
        if block.get("type") == "tool_result":
            inner = block.get("content")
            if isinstance(inner, list):
                return "".join(part.get("text", "") for part in inner)
            return str(inner)
    return None


def answer_events(body: dict[str, Any], turn: int) -> list[bytes]:
    """The SSE events answering ``body``: a Bash call, or the text after its result."""
    result = tool_result_text(body)
    message = {
        "id": f"msg_tool_{turn}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**USAGE, "output_tokens": 1},
    }
    events = [_event("message_start", {"type": "message_start", "message": message})]
    if result is None:
        block = {"type": "tool_use", "id": f"toolu_{turn}", "name": "Bash", "input": {}}
        encoded = json.dumps(TOOL_INPUT)
        pieces = [encoded[:10], encoded[10:]]
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": f"The tool printed: {result.strip()}"}]
        stop = "end_turn"
    events.append(_event("content_block_start", {"index": 0, "content_block": block}))
    events += [_event("content_block_delta", {"index": 0, "delta": d}) for d in deltas]
    events.append(_event("content_block_stop", {"index": 0}))
    final = {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": USAGE}
    events.append(_event("message_delta", final))
    events.append(_event("message_stop", {}))
    return events


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


@attrs.define
class _App:
    state: ToolUpstream

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        raw = b""
        while (message := await receive()).get("more_body", False):
            raw += message.get("body", b"")
        raw += message.get("body", b"")
        if scope["path"] != "/v1/messages":
            await _reply(send, 404, b"application/json", [b'{"type":"error"}'])
            return
        body = json.loads(raw)
        self.state.bodies.append(body)
        events = answer_events(body, len(self.state.bodies))
        await _reply(send, 200, b"text/event-stream", events)


async def _reply(send: Send, status: int, content_type: bytes, parts: list[bytes]) -> None:
    headers = [(b"content-type", content_type)]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    for part in parts:
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


@asynccontextmanager
async def tool_upstream() -> AsyncIterator[ToolUpstream]:
    """The fake provider on 127.0.0.1:<ephemeral> until the block ends."""
    state = ToolUpstream()
    async with running_server(_App(state)) as url:
        state.url = url
        yield state
