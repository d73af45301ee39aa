"""The ``demo`` provider's Anthropic Messages endpoint: ``/v1/messages`` in process.

The demo transport (:mod:`saferouter.gateway.demo`) hands it requests whose path ends in
``/v1/messages`` (and ``/v1/messages/count_tokens``): both are in its ``DEMO_FORMATS``.
It answers in Anthropic's wire format, as api.anthropic.com does
(../shared/testdata/recordings/anthropic/): a stream of ``message_start`` (input and
cache counts, a provisional output count), ``ping``, ``content_block_start`` /
``content_block_delta`` / ``content_block_stop`` per block, ``message_delta``
(``stop_reason`` and the cumulative usage) and ``message_stop``; or a whole ``message``.
The text is the demo's usual echo (:class:`~.demo.DemoAnswer`).

It answers Claude Code: tools in the request are ignored (the answer is text, never a
tool call), a ``thinking`` request gets a thinking block with a signature (the SDKs
require one), and ``max_tokens`` cuts the text with ``stop_reason: "max_tokens"``.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpcore

from .upstream_body import encode_json

_SIGNATURE = "c2FmZXJvdXRlci1kZW1vLW5vLW1vZGVs"  # base64 "saferouter-demo-no-model"
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def messages_demo(payload: dict[str, Any], chunk_delay_s: float) -> httpcore.Response:
    """``POST /v1/messages`` as Anthropic answers it (a :data:`~.demo.DemoFormat`)."""
    # demo.py lists this format, so its pieces are imported when it is called
    from .demo import demo_json, demo_stream

    if not isinstance(payload.get("messages"), list):
        return _error(400, "invalid_request_error", "messages: Input should be a valid list")
    answer = MessagesAnswer(payload)
    if payload.get("stream") is True:
        return demo_stream(answer.events(), chunk_delay_s)
    return demo_json(answer.message())


def count_tokens_demo(payload: dict[str, Any], chunk_delay_s: float) -> httpcore.Response:
    """``POST /v1/messages/count_tokens``: the demo's own count of the input."""
    from .demo import demo_json

    if not isinstance(payload.get("messages"), list):
        return _error(400, "invalid_request_error", "messages: Input should be a valid list")
    return demo_json({"input_tokens": MessagesAnswer(payload).input_tokens})


class MessagesAnswer:
    """One demo reply in Anthropic's terms: its blocks, stop reason and usage."""

    def __init__(self, payload: dict[str, Any]) -> None:
        from .demo import DemoAnswer, _text_of, _tokens

        echo = DemoAnswer.for_request(payload)
        thinking = payload.get("thinking")
        wants_thinking = isinstance(thinking, dict) and thinking.get("type") in (
            "enabled",
            "adaptive",
        )
        self.id = "msg_demo_" + uuid.uuid4().hex[:24]
        self.model = echo.model
        self.thinking = echo.reasoning if wants_thinking else []
        self.text = echo.content
        self.stop_reason = _STOP_REASONS.get(echo.finish_reason, "end_turn")
        system = payload.get("system")
        system_text = system if isinstance(system, str) else _text_of(system)
        self.input_tokens = echo.prompt_tokens + _tokens(system_text)
        self.output_tokens = sum(_tokens(piece) for piece in [*self.thinking, *self.text])

    def usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
        }

    def message(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if self.thinking:
            thought = "".join(self.thinking)
            content.append({"type": "thinking", "thinking": thought, "signature": _SIGNATURE})
        content.append({"type": "text", "text": "".join(self.text)})
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "usage": self.usage(self.output_tokens),
        }

    def events(self) -> list[bytes]:
        """The stream, one SSE event a piece."""
        start = {**self.message(), "content": [], "stop_reason": None}
        start["usage"] = self.usage(1)  # provisional, as Anthropic's first count
        out = [_event("message_start", {"message": start}), _event("ping", {})]
        blocks: list[tuple[dict[str, Any], str, list[str]]] = []
        if self.thinking:
            blocks.append(({"type": "thinking", "thinking": ""}, "thinking", self.thinking))
        blocks.append(({"type": "text", "text": ""}, "text", self.text))
        for index, (block, kind, pieces) in enumerate(blocks):
            out.append(_event("content_block_start", {"index": index, "content_block": block}))
            for piece in pieces:
                delta = {"type": f"{kind}_delta", kind: piece}
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


def _event(kind: str, body: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + encode_json({"type": kind, **body}) + b"\n\n"


def _error(status: int, kind: str, message: str) -> httpcore.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return httpcore.Response(
        status, headers=[(b"content-type", b"application/json")], content=encode_json(body)
    )
