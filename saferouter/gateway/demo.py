"""The built-in ``demo`` provider: an in-process transport that speaks each API's protocol.

It implements httpcore's transport interface (``handle_async_request``), so the gateway
reaches it through exactly the code path of a real provider: the same request bytes
go in, and the same kind of response object, status, headers and SSE bytes come out.
What it answers depends on the path, as a provider's does: :data:`DEMO_FORMATS` maps
each API's upstream path to the function writing that API's wire format (an unknown
path is a 404). The chat format copies DeepSeek's
(``testdata/recordings/streams/deepseek``): a first chunk with ``reasoning_content:
""``, reasoning deltas with ``content: null``, content deltas with ``reasoning_content:
null``, and a last chunk carrying ``finish_reason`` and ``usage`` together, then
``data: [DONE]``.

No model runs: the answer (:class:`DemoAnswer`, shared by every format) is derived from
the prompt, and says so.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpcore
import trio

_FINGERPRINT = "fp_saferouter_demo"


# One API's demo: the request's JSON object and the delay between stream events → the
# response, as that API's provider would send it.
DemoFormat = Callable[[dict[str, Any], float], httpcore.Response]


class DemoTransport:
    """httpcore-compatible transport serving every API of :data:`DEMO_FORMATS` in process."""

    def __init__(self, *, chunk_delay_s: float = 0.0) -> None:
        self._chunk_delay_s = chunk_delay_s

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        target = request.url.target
        answer = next((fmt for path, fmt in DEMO_FORMATS.items() if target.endswith(path)), None)
        if request.method != b"POST" or answer is None:
            return _error(404, "Not found", "invalid_request_error")
        try:
            payload = json.loads(body)
        except ValueError:
            return _error(400, "Failed to deserialize the JSON body", "invalid_request_error")
        if not isinstance(payload, dict):
            return _error(400, "The body must be a JSON object", "invalid_request_error")
        return answer(payload, self._chunk_delay_s)

    async def aclose(self) -> None:
        return None


def chat_demo(payload: dict[str, Any], chunk_delay_s: float) -> httpcore.Response:
    """``POST /chat/completions`` as DeepSeek answers it."""
    if not isinstance(payload.get("messages"), list):
        return _error(400, "messages must be a list", "invalid_request_error")
    answer = DemoAnswer.for_request(payload)
    if payload.get("stream") is True:
        events = [b"data: " + _compact(chunk) + b"\n\n" for chunk in answer.chunks()]
        return demo_stream([*events, b"data: [DONE]\n\n"], chunk_delay_s)
    return demo_json(answer.completion())


def demo_stream(events: list[bytes], chunk_delay_s: float) -> httpcore.Response:
    """A 200 SSE response sending ``events`` (whole SSE events) one by one."""
    return httpcore.Response(
        200,
        headers=[(b"content-type", b"text/event-stream; charset=utf-8")],
        content=_DemoStream(events, chunk_delay_s),
    )


def demo_json(value: object) -> httpcore.Response:
    """A 200 JSON response."""
    return httpcore.Response(
        200,
        headers=[(b"content-type", b"application/json")],
        content=json.dumps(value, ensure_ascii=False).encode(),
    )


def _compact(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class DemoAnswer:
    """The reasoning and content pieces of one demo reply, and its usage."""

    def __init__(
        self,
        *,
        model: str,
        reasoning: list[str],
        content: list[str],
        prompt_tokens: int,
        finish_reason: str,
    ) -> None:
        self.id = str(uuid.uuid4())
        self.created = int(time.time())
        self.model = model
        self.reasoning = reasoning
        self.content = content
        self.prompt_tokens = prompt_tokens
        self.finish_reason = finish_reason

    @classmethod
    def for_request(cls, payload: dict[str, Any]) -> DemoAnswer:
        model = str(payload.get("model") or "demo")
        texts = [_text_of(m.get("content")) for m in payload["messages"] if isinstance(m, dict)]
        last_user = next(
            (
                _text_of(m.get("content"))
                for m in reversed(payload["messages"])
                if isinstance(m, dict) and m.get("role") == "user"
            ),
            "",
        )
        words = last_user.split()
        shown = " ".join(words[:40]) + (" …" if len(words) > 40 else "")
        n_messages = len(payload["messages"])
        reasoning = (
            []
            if model.endswith("-mini")
            else [
                "The user wrote",
                f" {len(words)} word{'s' if len(words) != 1 else ''}",
                f" in {n_messages} message{'s' if n_messages != 1 else ''}.",
                " I am the demo provider,",
                " so I echo it back",
                " and say where real answers come from.",
            ]
        )
        sentence = (f'You said: "{shown}". ' if words else "You sent no text. ") + (
            "This reply comes from SafeRouter's built-in demo provider: no model ran and "
            "nothing left this machine. Set DEEPSEEK_API_KEY or ZAI_API_KEY to chat with "
            "real models."
        )
        content = _pieces(sentence)
        prompt_tokens = sum(_tokens(t) for t in texts) + 3 * len(texts)
        finish = "stop"
        limit = payload.get("max_tokens") or payload.get("max_completion_tokens")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            budget = limit - sum(_tokens(r) for r in reasoning)
            kept: list[str] = []
            for piece in content:
                if budget - _tokens(piece) < 0:
                    finish = "length"
                    break
                budget -= _tokens(piece)
                kept.append(piece)
            content = kept
        return cls(
            model=model,
            reasoning=reasoning,
            content=content,
            prompt_tokens=max(prompt_tokens, 1),
            finish_reason=finish,
        )

    def usage(self) -> dict[str, Any]:
        reasoning_tokens = sum(_tokens(r) for r in self.reasoning)
        completion = reasoning_tokens + sum(_tokens(c) for c in self.content)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "prompt_cache_hit_tokens": 0,
            "prompt_cache_miss_tokens": self.prompt_tokens,
        }

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage(),
            "system_fingerprint": _FINGERPRINT,
        }

    def chunks(self) -> list[dict[str, Any]]:
        def chunk(
            delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None
        ) -> dict[str, Any]:
            return {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": _FINGERPRINT,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
                "usage": usage,
            }

        first: dict[str, Any] = {"role": "assistant", "content": None if self.reasoning else ""}
        if self.reasoning:
            first["reasoning_content"] = ""
        out = [chunk(first)]
        out += [chunk({"content": None, "reasoning_content": r}) for r in self.reasoning]
        extra = {"reasoning_content": None} if self.reasoning else {}
        out += [chunk({"content": c, **extra}) for c in self.content]
        out.append(chunk({"content": "", **extra}, self.finish_reason, self.usage()))
        return out


class _DemoStream:
    """The SSE body: an async iterator with ``aclose``, as httpcore expects of a stream."""

    def __init__(self, events: list[bytes], delay_s: float) -> None:
        self._events = events
        self._index = 0
        self._delay_s = delay_s

    def __aiter__(self) -> _DemoStream:
        return self

    async def __anext__(self) -> bytes:
        if self._index >= len(self._events):
            raise StopAsyncIteration
        if self._index and self._delay_s:
            await trio.sleep(self._delay_s)
        self._index += 1
        return self._events[self._index - 1]

    async def aclose(self) -> None:
        self._index = len(self._events)


def _error(status: int, message: str, error_type: str) -> httpcore.Response:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return httpcore.Response(
        status, headers=[(b"content-type", b"application/json")], content=json.dumps(body).encode()
    )


def _text_of(content: object) -> str:
    """Text of a message's content: a string, or the text parts of a parts list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _tokens(text: str) -> int:
    """A rough token count (about four characters a token), at least 1 for any text."""
    return math.ceil(len(text) / 4) if text else 0


def _pieces(text: str) -> list[str]:
    """Split into word-sized deltas that join back to the text."""
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


# each API's upstream path (the dialect's ``upstream_path``) → its demo format
DEMO_FORMATS: dict[bytes, DemoFormat] = {
    b"/chat/completions": chat_demo,
}
