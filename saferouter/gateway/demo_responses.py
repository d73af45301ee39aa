"""The demo provider's ``POST …/responses``: the Responses API wire format, in process.

The answer is the chat demo's (:class:`~saferouter.gateway.demo.DemoAnswer`: derived from
the prompt, and saying so); only its framing differs. The stream copies DeepSeek's
``/responses`` (``testdata/recordings/streams/deepseek/*responses_api*``): ``event:``
then ``data:``, ``response.created`` and ``response.in_progress``, a reasoning item
(``reasoning_text`` deltas) then a message item (``output_text`` deltas), each opened,
filled and closed with its ``*.added`` / ``*.delta`` / ``*.done`` events, and a last
``response.completed`` carrying the whole response with its usage — no ``[DONE]``.
A ``max_output_tokens`` the answer does not fit in ends it ``response.incomplete``
instead. Without ``stream`` the body is that last response object.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpcore

from .demo_answer import (
    DemoAsk,
    DemoChoice,
    DemoReply,
    DemoTool,
    Finish,
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


def responses_demo(payload: dict[str, Any], chunk_delay_s: float) -> httpcore.Response:
    """``POST /responses`` as DeepSeek answers it (a :data:`~.demo.DemoFormat`)."""
    ask = responses_ask(payload)
    if isinstance(ask, Refusal):
        return openai_error(400, ask.message, param=ask.param)
    events = _ResponseEvents(ask, answer_to(ask))
    if payload.get("stream") is True:
        return demo_stream(events.stream(), chunk_delay_s)
    return demo_json(events.response(done=True))


def responses_ask(payload: dict[str, Any]) -> DemoAsk | Refusal:
    """What a Responses request asks of the demo, or why it is refused."""
    value = payload.get("input")
    items = [{"role": "user", "content": value}] if isinstance(value, str) else dicts_in(value)
    messages = [i for i in items if isinstance(i.get("role"), str)]
    model = str(payload.get("model") or "demo")
    choice = openai_tool_choice(
        payload.get("tool_choice"), lambda c: c.get("name"), '{"type": "function", "name": …}'
    )
    if isinstance(choice, Refusal):
        return choice
    mode, forced = choice
    text = payload.get("text")
    form = text.get("format") if isinstance(text, dict) else None
    schema = form.get("schema") if isinstance(form, dict) else None
    output = json_output(form, schema, param="text.format")
    if isinstance(output, Refusal):
        return output
    ask = DemoAsk(
        model=model,
        texts=tuple(text_of(m.get("content")) for m in messages),
        last_user=last_user_text(messages),
        reasoning=not model.endswith("-mini"),
        tools=tuple(
            DemoTool(t["name"], t.get("parameters") or {})
            for t in dicts_in(payload.get("tools"))
            if t.get("type") == "function" and isinstance(t.get("name"), str)
        ),
        tool_mode=mode,
        forced_tool=forced,
        tool_results=_tool_results(items),
        json_output=output,
        max_tokens=positive_int(payload.get("max_output_tokens")),
    )
    unoffered = ask.unoffered_tool()
    return ask if unoffered is None else Refusal("tool_choice", unoffered)


def _tool_results(items: list[dict[str, Any]]) -> tuple[ToolResult, ...]:
    """The ``function_call_output`` items that end the input, each named by the
    ``function_call`` item with its ``call_id``."""
    calls = [(i.get("call_id"), i.get("name")) for i in items if i.get("type") == "function_call"]
    ended = trailing(items, lambda i: i.get("type") == "function_call_output")
    results = [(i.get("call_id"), text_of(i.get("output"))) for i in ended]
    return named_results(calls, results)


class _ResponseEvents:
    """One demo reply as Responses API objects and events."""

    def __init__(self, ask: DemoAsk, reply: DemoReply) -> None:
        self._ask = ask
        self._reply = reply
        self._choice: DemoChoice = reply.choices[0]
        self._id = str(uuid.uuid4())
        self._created = int(time.time())
        self._reasoning_id = str(uuid.uuid4())
        self._message_id = str(uuid.uuid4())
        self._call_id = "fc_" + uuid.uuid4().hex
        self._call_name = self._choice.call.name if self._choice.call is not None else ""
        self._sequence = 0

    def response(self, *, done: bool) -> dict[str, Any]:
        """The response object: in progress (no output, usage null), or finished."""
        reply = self._reply
        cut = self._choice.finish is Finish.LENGTH
        status = ("incomplete" if cut else "completed") if done else "in_progress"
        return {
            "id": self._id,
            "object": "response",
            "created_at": self._created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if done and cut else None,
            "instructions": None,
            "model": self._ask.model,
            "output": self._output() if done else [],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "store": False,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": reply.prompt_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": reply.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            }
            if done
            else None,
            "metadata": {},
        }

    def _output(self) -> list[dict[str, Any]]:
        choice, items = self._choice, []
        if choice.reasoning:
            items.append(self._reasoning_item("completed", "".join(choice.reasoning)))
        status = "incomplete" if choice.finish is Finish.LENGTH else "completed"
        if choice.call is not None:
            items.append(self._call_item(status, "".join(choice.call.arguments)))
        elif choice.content or not choice.reasoning:
            items.append(self._message_item(status, "".join(choice.content)))
        return items

    def _reasoning_item(self, status: str, text: str | None) -> dict[str, Any]:
        content = [] if text is None else [{"type": "reasoning_text", "text": text}]
        return {
            "type": "reasoning",
            "id": self._reasoning_id,
            "status": status,
            "content": content,
            "summary": [],
        }

    def _message_item(self, status: str, text: str | None) -> dict[str, Any]:
        content = [] if text is None else [_output_text(text)]
        return {
            "type": "message",
            "id": self._message_id,
            "status": status,
            "content": content,
            "role": "assistant",
        }

    def _call_item(self, status: str, arguments: str) -> dict[str, Any]:
        return {
            "type": "function_call",
            "id": self._call_id,
            "call_id": "call_" + self._call_id.removeprefix("fc_")[:24],
            "name": self._call_name,
            "arguments": arguments,
            "status": status,
        }

    def stream(self) -> list[bytes]:
        """Every event of the stream, as SSE bytes."""
        events = [
            self._event("response.created", response=self.response(done=False)),
            self._event("response.in_progress", response=self.response(done=False)),
        ]
        choice, index = self._choice, 0
        if choice.reasoning:
            events += self._item(
                index,
                self._reasoning_item,
                self._reasoning_id,
                {"type": "reasoning_text", "text": ""},
                "response.reasoning_text",
                choice.reasoning,
            )
            index += 1
        if choice.call is not None:
            events += self._call_events(index, choice.call.arguments)
        elif choice.content or not choice.reasoning:
            events += self._item(
                index,
                self._message_item,
                self._message_id,
                _output_text(""),
                "response.output_text",
                choice.content,
            )
        done = self.response(done=True)
        events.append(self._event(f"response.{done['status']}", response=done))
        return events

    def _call_events(self, index: int, pieces: tuple[str, ...]) -> list[bytes]:
        """A function call item's events: added, argument deltas, arguments done, done."""
        arguments = "".join(pieces)
        status = "incomplete" if self._choice.finish is Finish.LENGTH else "completed"
        where = {"item_id": self._call_id, "output_index": index}
        return [
            self._event(
                "response.output_item.added",
                item=self._call_item("in_progress", ""),
                output_index=index,
            ),
            *(
                self._event("response.function_call_arguments.delta", delta=p, **where)
                for p in pieces
            ),
            self._event("response.function_call_arguments.done", arguments=arguments, **where),
            self._event(
                "response.output_item.done",
                item=self._call_item(status, arguments),
                output_index=index,
            ),
        ]

    def _item(
        self,
        index: int,
        item: Any,
        item_id: str,
        empty_part: dict[str, Any],
        delta_type: str,
        pieces: tuple[str, ...],
    ) -> list[bytes]:
        """One output item's events: added, its part added, deltas, done, part and item done."""
        text = "".join(pieces)
        at = {"output_index": index}
        where = {"content_index": 0, "item_id": item_id, **at}
        part = {**empty_part, "text": text}
        # output text carries its (empty) logprobs, as DeepSeek and OpenAI write them
        extra: dict[str, Any] = {"logprobs": []} if delta_type == "response.output_text" else {}
        return [
            self._event("response.output_item.added", item=item("in_progress", None), **at),
            self._event("response.content_part.added", part=empty_part, **where),
            *(self._event(f"{delta_type}.delta", delta=p, **where, **extra) for p in pieces),
            self._event(f"{delta_type}.done", text=text, **where, **extra),
            self._event("response.content_part.done", part=part, **where),
            self._event("response.output_item.done", item=item("completed", text), **at),
        ]

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, **fields, "sequence_number": self._sequence}
        self._sequence += 1
        return f"event: {kind}\ndata: ".encode() + encode_compact(data) + b"\n\n"


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
