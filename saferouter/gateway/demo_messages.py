"""The ``demo`` provider's Anthropic Messages endpoint: ``/v1/messages`` in process.

The demo transport (:mod:`saferouter.gateway.demo`) hands it requests whose path ends in
``/v1/messages`` (and ``/v1/messages/count_tokens``): both are in its ``DEMO_FORMATS``.
It answers in Anthropic's wire format, as api.anthropic.com does
(../shared/testdata/recordings/anthropic/): a stream of ``message_start`` (input and
cache counts, a provisional output count), ``ping``, ``content_block_start`` /
``content_block_delta`` / ``content_block_stop`` per block, ``message_delta``
(``stop_reason`` and the cumulative usage) and ``message_stop``; or a whole ``message``.

What it says is :mod:`.demo_answer`'s: the echo; or, with ``tools`` (and a
``tool_choice`` that is not ``none``), a ``tool_use`` block whose ``input`` is valid for
the first tool's ``input_schema`` (or the named one's; its JSON streams as
``input_json_delta`` pieces) and ``stop_reason: "tool_use"``; a conversation ending in
``tool_result`` blocks gets text telling the result (so Claude Code's loop ends). A
``thinking`` request gets a thinking block with a signature (the SDKs require one), and
``max_tokens`` cuts thinking and answer together, ``stop_reason: "max_tokens"``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpcore

from .demo_answer import (
    DemoAsk,
    DemoChoice,
    DemoTool,
    Finish,
    ToolMode,
    ToolResult,
    answer_to,
    prompt_tokens,
    split_tokens,
)
from .demo_http import demo_json, demo_stream
from .demo_request import (
    Refusal,
    dicts_in,
    last_user_text,
    named_results,
    positive_int,
    text_of,
    unknown_tool_choice,
)
from .upstream_body import encode_json

_SIGNATURE = "c2FmZXJvdXRlci1kZW1vLW5vLW1vZGVs"  # base64 "saferouter-demo-no-model"
_STOP_REASONS = {
    Finish.STOP: "end_turn",
    Finish.LENGTH: "max_tokens",
    Finish.TOOL_CALLS: "tool_use",
}
_TOOL_MODES = {"auto": ToolMode.AUTO, "any": ToolMode.REQUIRED, "none": ToolMode.NONE}


def messages_demo(payload: dict[str, Any], chunk_delay_s: float) -> httpcore.Response:
    """``POST /v1/messages`` as Anthropic answers it (a :data:`~.demo.DemoFormat`)."""
    if not isinstance(payload.get("messages"), list):
        return _error(400, "invalid_request_error", "messages: Input should be a valid list")
    ask = messages_ask(payload)
    if isinstance(ask, Refusal):
        return _error(400, "invalid_request_error", ask.message)
    unoffered = ask.unoffered_tool()
    if unoffered is not None:
        return _error(400, "invalid_request_error", unoffered)
    answer = MessagesAnswer(ask, input_tokens(payload, ask))
    if payload.get("stream") is True:
        return demo_stream(answer.events(), chunk_delay_s)
    return demo_json(answer.message())


def count_tokens_demo(payload: dict[str, Any], chunk_delay_s: float) -> httpcore.Response:
    """``POST /v1/messages/count_tokens``: the demo's own count of the input."""
    if not isinstance(payload.get("messages"), list):
        return _error(400, "invalid_request_error", "messages: Input should be a valid list")
    ask = messages_ask(payload)
    if isinstance(ask, Refusal):
        return _error(400, "invalid_request_error", ask.message)
    return demo_json({"input_tokens": input_tokens(payload, ask)})


def input_tokens(payload: dict[str, Any], ask: DemoAsk) -> int:
    """The prompt's tokens, the system prompt's included."""
    return prompt_tokens(ask.texts) + len(split_tokens(text_of(payload.get("system"))))


def messages_ask(payload: dict[str, Any]) -> DemoAsk | Refusal:
    """What a Messages request asks of the demo (malformed parts are left out), or why
    it is refused."""
    messages = dicts_in(payload["messages"])
    thinking = payload.get("thinking")
    wants_thinking = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    model = str(payload.get("model") or "demo")
    choice = _tool_choice(payload.get("tool_choice"))
    if isinstance(choice, Refusal):
        return choice
    mode, forced = choice
    return DemoAsk(
        model=model,
        texts=tuple(_message_text(m.get("content")) for m in messages),
        last_user=last_user_text(messages),
        reasoning=wants_thinking and not model.endswith("-mini"),
        tools=tuple(
            DemoTool(t["name"], t["input_schema"])
            for t in dicts_in(payload.get("tools"))
            if isinstance(t.get("name"), str) and isinstance(t.get("input_schema"), dict)
        ),
        tool_mode=mode,
        forced_tool=forced,
        tool_results=_tool_results(messages),
        max_tokens=positive_int(payload.get("max_tokens")),
    )


def _tool_choice(value: object) -> tuple[ToolMode, str | None] | Refusal:
    """Absent (``auto``), ``{"type": "auto" | "any" | "none"}``, or ``{"type": "tool",
    "name": …}`` (a forced, named tool); anything else is refused, as Anthropic does."""
    if value is None:
        return ToolMode.AUTO, None
    kind = value.get("type") if isinstance(value, dict) else None
    if isinstance(kind, str) and kind in _TOOL_MODES:
        return _TOOL_MODES[kind], None
    if kind == "tool" and isinstance(value, dict) and isinstance(value.get("name"), str):
        return ToolMode.REQUIRED, value["name"]
    return unknown_tool_choice(
        '{"type": "auto"}, {"type": "any"}, {"type": "none"} or {"type": "tool", "name": …}'
    )


def _message_text(content: object) -> str:
    """A message's text for the prompt's count: text blocks and tool results."""
    if not isinstance(content, list):
        return text_of(content)
    results = [
        text_of(b.get("content")) for b in dicts_in(content) if b.get("type") == "tool_result"
    ]
    return " ".join([text_of(content), *results])


def _tool_results(messages: list[dict[str, Any]]) -> tuple[ToolResult, ...]:
    """The ``tool_result`` blocks of the last message, when it is the user's, each
    named by the ``tool_use`` block it answers."""
    if not messages or messages[-1].get("role") != "user":
        return ()
    calls = [
        (block.get("id"), block.get("name"))
        for m in messages
        for block in dicts_in(m.get("content"))
        if block.get("type") == "tool_use"
    ]
    results = [
        (block.get("tool_use_id"), text_of(block.get("content")))
        for block in dicts_in(messages[-1].get("content"))
        if block.get("type") == "tool_result"
    ]
    return named_results(calls, results)


class MessagesAnswer:
    """One demo reply in Anthropic's terms: its blocks, stop reason and usage."""

    def __init__(self, ask: DemoAsk, input_tokens: int) -> None:
        reply = answer_to(ask)
        self.id = "msg_demo_" + uuid.uuid4().hex[:24]
        self.model = ask.model
        self.choice: DemoChoice = reply.choices[0]
        self.stop_reason = _STOP_REASONS[self.choice.finish]
        self.input_tokens = input_tokens
        self.output_tokens = reply.completion_tokens

    def usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
        }

    def _blocks(self) -> list[tuple[dict[str, Any], str, tuple[str, ...]]]:
        """Each content block: its whole form, its delta kind and its pieces."""
        choice = self.choice
        blocks: list[tuple[dict[str, Any], str, tuple[str, ...]]] = []
        if choice.reasoning:
            thought = "".join(choice.reasoning)
            block = {"type": "thinking", "thinking": thought, "signature": _SIGNATURE}
            blocks.append((block, "thinking", choice.reasoning))
        if choice.call is not None:
            arguments = "".join(choice.call.arguments)
            try:
                given = json.loads(arguments)
            except ValueError:
                given = {}  # cut short by max_tokens: no whole input was written
            use_id = "toolu_demo_" + self.id.removeprefix("msg_demo_")
            block = {"type": "tool_use", "id": use_id, "name": choice.call.name, "input": given}
            blocks.append((block, "input_json", choice.call.arguments))
        elif choice.content or not choice.reasoning:
            blocks.append(
                ({"type": "text", "text": "".join(choice.content)}, "text", choice.content)
            )
        return blocks

    def message(self) -> dict[str, Any]:
        """The whole ``message`` body."""
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [block for block, _, _ in self._blocks()],
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "usage": self.usage(self.output_tokens),
        }

    def events(self) -> list[bytes]:
        """The stream, one SSE event a piece."""
        start = {**self.message(), "content": [], "stop_reason": None}
        start["usage"] = self.usage(1)  # provisional, as Anthropic's first count
        out = [_event("message_start", {"message": start}), _event("ping", {})]
        for index, (whole, kind, pieces) in enumerate(self._blocks()):
            empty = {**whole, **_EMPTY[kind]}
            out.append(_event("content_block_start", {"index": index, "content_block": empty}))
            for piece in pieces:
                delta = {"type": f"{kind}_delta", _DELTA_FIELD[kind]: piece}
                out.append(_event("content_block_delta", {"index": index, "delta": delta}))
            if kind == "thinking":
                delta = {"type": "signature_delta", "signature": _SIGNATURE}
                out.append(_event("content_block_delta", {"index": index, "delta": delta}))
            out.append(_event("content_block_stop", {"index": index}))
        final = {"stop_reason": self.stop_reason, "stop_sequence": None}
        out.append(
            _event("message_delta", {"delta": final, "usage": self.usage(self.output_tokens)})
        )
        out.append(_event("message_stop", {}))
        return out


# what a block starts as in a stream, before its deltas fill it
_EMPTY: dict[str, dict[str, Any]] = {
    "thinking": {"thinking": "", "signature": ""},
    "text": {"text": ""},
    "input_json": {"input": {}},
}
_DELTA_FIELD = {"thinking": "thinking", "text": "text", "input_json": "partial_json"}


def _event(kind: str, body: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + encode_json({"type": kind, **body}) + b"\n\n"


def _error(status: int, kind: str, message: str) -> httpcore.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return httpcore.Response(
        status, headers=[(b"content-type", b"application/json")], content=encode_json(body)
    )
