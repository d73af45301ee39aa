"""The demo provider's ``POST /chat/completions`` (pure but for the response object).

The wire format copies DeepSeek's (``testdata/recordings/streams/deepseek``): a first
chunk with ``reasoning_content: ""``, reasoning deltas with ``content: null``, content
deltas with ``reasoning_content: null``, and a last chunk carrying ``finish_reason``
and ``usage`` together, then ``data: [DONE]``. Tool calls stream as OpenAI's do: a
first delta with the call's id, type and name (``arguments: ""``), then argument
pieces, and ``finish_reason: "tool_calls"``. ``n`` choices stream interleaved, one
delta of each per step, each chunk naming its choice's ``index``.

What is answered is :mod:`.demo_answer`'s: this module reads the request into a
:class:`~.demo_answer.DemoAsk` (:func:`chat_ask`) and writes the reply in this API's
shape (:class:`ChatFrames`).
"""

from __future__ import annotations

import time
import uuid
from itertools import zip_longest
from typing import Any

import httpcore

from .demo_answer import (
    MAX_CHOICES,
    DemoAsk,
    DemoChoice,
    DemoReply,
    DemoTool,
    ToolResult,
    answer_to,
)
from .demo_http import demo_json, demo_stream, encode_compact, openai_error
from .demo_request import (
    Refusal,
    dicts_in,
    json_output,
    last_user_text,
    named_results,
    openai_tool_choice,
    positive_int,
    text_of,
    trailing,
)

_FINGERPRINT = "fp_saferouter_demo"


def chat_demo(payload: dict[str, Any], chunk_delay_s: float) -> httpcore.Response:
    """``POST /chat/completions`` as DeepSeek answers it (a :data:`~.demo.DemoFormat`)."""
    ask = chat_ask(payload)
    if isinstance(ask, Refusal):
        return openai_error(400, ask.message, param=ask.param)
    frames = ChatFrames(ask, answer_to(ask))
    if payload.get("stream") is True:
        return demo_stream(frames.stream(), chunk_delay_s)
    return demo_json(frames.completion())


def chat_ask(payload: dict[str, Any]) -> DemoAsk | Refusal:
    """What a chat completions request asks, or why it is refused."""
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return Refusal("messages", "messages must be a list")
    messages = dicts_in(messages)
    tools = _tools(payload.get("tools"))
    if isinstance(tools, Refusal):
        return tools
    choice = openai_tool_choice(
        payload.get("tool_choice"),
        lambda c: c["function"].get("name") if isinstance(c.get("function"), dict) else None,
        '{"type": "function", "function": {"name": …}}',
    )
    if isinstance(choice, Refusal):
        return choice
    mode, forced = choice
    form = payload.get("response_format")
    spec = form.get("json_schema") if isinstance(form, dict) else None
    output = json_output(
        form, spec.get("schema") if isinstance(spec, dict) else None, param="response_format"
    )
    if isinstance(output, Refusal):
        return output
    n = payload.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CHOICES:
        return Refusal("n", f"The demo provider serves 1 to {MAX_CHOICES} choices (n), not {n}")
    # OpenAI's newer name first; either bounds the answer
    limit = positive_int(payload.get("max_completion_tokens")) or positive_int(
        payload.get("max_tokens")
    )
    model = str(payload.get("model") or "demo")
    ask = DemoAsk(
        model=model,
        texts=tuple(text_of(m.get("content")) for m in messages),
        last_user=last_user_text(messages),
        reasoning=not model.endswith("-mini"),
        tools=tools,
        tool_mode=mode,
        forced_tool=forced,
        tool_results=_tool_results(messages),
        json_output=output,
        max_tokens=limit,
        choices=n,
    )
    unoffered = ask.unoffered_tool()
    return ask if unoffered is None else Refusal("tool_choice", unoffered)


def _tools(value: object) -> tuple[DemoTool, ...] | Refusal:
    if value is None:
        return ()
    if not isinstance(value, list):
        return Refusal("tools", "tools must be a list")
    found = []
    for t, tool in enumerate(value):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return Refusal(f"tools[{t}]", f"tools[{t}] must be a function with a name")
        found.append(DemoTool(function["name"], function.get("parameters") or {}))
    return tuple(found)


def _tool_results(messages: list[dict[str, Any]]) -> tuple[ToolResult, ...]:
    """The ``role: tool`` messages that end the conversation, each named by the call
    it answers (the assistant's ``tool_calls`` say which tool that was)."""
    calls = [
        (call.get("id"), call["function"].get("name"))
        for m in messages
        for call in dicts_in(m.get("tool_calls"))
        if isinstance(call.get("function"), dict)
    ]
    ended = trailing(messages, lambda m: m.get("role") == "tool")
    results = [(m.get("tool_call_id"), text_of(m.get("content"))) for m in ended]
    return named_results(calls, results)


class ChatFrames:
    """One demo reply as a chat completion, or as its stream's chunks."""

    def __init__(self, ask: DemoAsk, reply: DemoReply) -> None:
        self.id = str(uuid.uuid4())
        self.created = int(time.time())
        self._ask = ask
        self._reply = reply

    def usage(self) -> dict[str, Any]:
        """The usage: every piece sent, in DeepSeek's fields as well as OpenAI's."""
        prompt, completion = self._reply.prompt_tokens, self._reply.completion_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self._reply.reasoning_tokens},
            "prompt_cache_hit_tokens": 0,
            "prompt_cache_miss_tokens": prompt,
        }

    def call_id(self, choice: DemoChoice) -> str:
        """The tool call's id, unique to this reply and choice."""
        return f"call_{self.id.replace('-', '')[:24]}_{choice.index}"

    def completion(self) -> dict[str, Any]:
        """The whole ``chat.completion`` body."""
        choices = []
        for choice in self._reply.choices:
            message: dict[str, Any] = {"role": "assistant", "content": "".join(choice.content)}
            if self._ask.reasoning:
                message["reasoning_content"] = "".join(choice.reasoning)
            if choice.call is not None:
                message["content"] = None
                function = {"name": choice.call.name, "arguments": "".join(choice.call.arguments)}
                message["tool_calls"] = [
                    {"id": self.call_id(choice), "type": "function", "function": function}
                ]
            finish = choice.finish.value
            choices.append(
                {
                    "index": choice.index,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish,
                }
            )
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self._ask.model,
            "choices": choices,
            "usage": self.usage(),
            "system_fingerprint": _FINGERPRINT,
        }

    def stream(self) -> list[bytes]:
        """The stream's items: one step of every choice each, then ``[DONE]``."""
        per_choice = [self._deltas(choice) for choice in self._reply.choices]
        steps = [[c for c in step if c is not None] for step in zip_longest(*per_choice)]
        ends = [
            self._chunk(c.index, self._end_delta(c), c.finish.value) for c in self._reply.choices
        ]
        ends[-1]["usage"] = self.usage()  # with the last finish, as DeepSeek sends it
        items = [b"".join(_sse(chunk) for chunk in step) for step in [*steps, ends]]
        return [*items, b"data: [DONE]\n\n"]

    def _deltas(self, choice: DemoChoice) -> list[dict[str, Any]]:
        thinks = self._ask.reasoning
        # content starts null where none will come (thinking first, or a tool call)
        quiet = thinks or choice.call is not None
        first: dict[str, Any] = {"role": "assistant", "content": None if quiet else ""}
        if thinks:
            first["reasoning_content"] = ""
        deltas = [first]
        deltas += [{"content": None, "reasoning_content": r} for r in choice.reasoning]
        extra = {"reasoning_content": None} if thinks else {}
        deltas += [{"content": c, **extra} for c in choice.content]
        if choice.call is not None:
            head = {
                "index": 0,
                "id": self.call_id(choice),
                "type": "function",
                "function": {"name": choice.call.name, "arguments": ""},
            }
            deltas.append({"content": None, **extra, "tool_calls": [head]})
            deltas += [
                {
                    "content": None,
                    **extra,
                    "tool_calls": [{"index": 0, "function": {"arguments": a}}],
                }
                for a in choice.call.arguments
            ]
        return [self._chunk(choice.index, delta) for delta in deltas]

    def _end_delta(self, choice: DemoChoice) -> dict[str, Any]:
        if choice.call is not None:
            return {}
        return {"content": "", **({"reasoning_content": None} if self._ask.reasoning else {})}

    def _chunk(
        self, index: int, delta: dict[str, Any], finish: str | None = None
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self._ask.model,
            "system_fingerprint": _FINGERPRINT,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
            "usage": None,
        }


def _sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + encode_compact(chunk) + b"\n\n"
