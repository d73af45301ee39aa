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

import json
import uuid
from typing import TYPE_CHECKING, Any

import httpcore

if TYPE_CHECKING:
    from .demo import DemoAnswer


def responses_demo(payload: dict[str, Any], chunk_delay_s: float) -> httpcore.Response:
    """``POST /responses`` as DeepSeek answers it (a :data:`~.demo.DemoFormat`)."""
    # demo.py lists this format, so its pieces are imported when it is called
    from .demo import DemoAnswer, demo_json, demo_stream

    answer = DemoAnswer.for_request(
        {
            "model": payload.get("model"),
            "messages": _as_messages(payload.get("input")),
            "max_tokens": payload.get("max_output_tokens"),
        }
    )
    events = _ResponseEvents(answer)
    if payload.get("stream") is True:
        return demo_stream(events.stream(), chunk_delay_s)
    return demo_json(events.response(done=True))


def _as_messages(value: object) -> list[dict[str, Any]]:
    """``input`` as chat messages, for the demo's echo: a string is the user's message;
    items with a role keep their content (a string, or parts with ``text``)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        return []
    return [
        {"role": item["role"], "content": item.get("content")}
        for item in value
        if isinstance(item, dict) and isinstance(item.get("role"), str)
    ]


class _ResponseEvents:
    """One demo answer as Responses API objects and events."""

    def __init__(self, answer: DemoAnswer) -> None:
        self._answer = answer
        self._id = answer.id
        self._reasoning_id = str(uuid.uuid4())
        self._message_id = str(uuid.uuid4())
        self._sequence = 0

    def response(self, *, done: bool) -> dict[str, Any]:
        """The response object: in progress (no output, usage null), or finished."""
        answer = self._answer
        cut = answer.finish_reason == "length"
        status = ("incomplete" if cut else "completed") if done else "in_progress"
        usage = answer.usage()
        return {
            "id": self._id,
            "object": "response",
            "created_at": answer.created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if done and cut else None,
            "instructions": None,
            "model": answer.model,
            "output": self._output() if done else [],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "store": False,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": usage["prompt_tokens"],
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": usage["completion_tokens"],
                "output_tokens_details": {
                    "reasoning_tokens": usage["completion_tokens_details"]["reasoning_tokens"]
                },
                "total_tokens": usage["total_tokens"],
            }
            if done
            else None,
            "metadata": {},
        }

    def _output(self) -> list[dict[str, Any]]:
        items = []
        if self._answer.reasoning:
            items.append(self._reasoning_item("completed", "".join(self._answer.reasoning)))
        status = "incomplete" if self._answer.finish_reason == "length" else "completed"
        items.append(self._message_item(status, "".join(self._answer.content)))
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

    def stream(self) -> list[bytes]:
        """Every event of the stream, as SSE bytes."""
        events = [
            self._event("response.created", response=self.response(done=False)),
            self._event("response.in_progress", response=self.response(done=False)),
        ]
        answer, index = self._answer, 0
        if answer.reasoning:
            events += self._item(
                index,
                self._reasoning_item,
                self._reasoning_id,
                {"type": "reasoning_text", "text": ""},
                "response.reasoning_text",
                answer.reasoning,
            )
            index += 1
        events += self._item(
            index,
            self._message_item,
            self._message_id,
            _output_text(""),
            "response.output_text",
            answer.content,
        )
        done = self.response(done=True)
        events.append(self._event(f"response.{done['status']}", response=done))
        return events

    def _item(
        self,
        index: int,
        item: Any,
        item_id: str,
        empty_part: dict[str, Any],
        delta_type: str,
        pieces: list[str],
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
        encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        return f"event: {kind}\ndata: {encoded}\n\n".encode()


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
