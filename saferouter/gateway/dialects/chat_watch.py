"""What a chat completion says about itself: a whole body's facts, and a watch over a
stream's events (pure).

Usage is the last non-null usage object a response carries, never a sum
(:func:`~saferouter.accounting.usage_in`; ../shared/testdata/recordings/README.md, edge
cases 2–3). A stream is complete at ``data: [DONE]`` — or, as the chat path has
always taken them, when its last named event is a Responses API terminal event; an
``error`` event, or a chunk with an ``error`` member, makes it a failure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...accounting import Usage, normalize_usage, usage_in
from ...errors import ParseError
from ...sse import SSEEvent
from ..dialect import BodyFacts, WatchStart, fact_text

_TERMINAL_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete"})


def chat_body_facts(body: bytes) -> BodyFacts:
    """Usage, id and first choice's finish reason of a completion body (leading blank
    lines allowed); ParseError when it is not JSON."""
    data = parse_body(body)
    raw = usage_in(data)
    return BodyFacts(
        raw_usage=raw,
        usage=normalize_usage(raw) if raw is not None else None,
        response_id=fact_text(data.get("id")) if isinstance(data, dict) else None,
        finish_reason=_finish_reason(data),
    )


def parse_body(body: bytes) -> Any:
    """A whole response body as JSON; ParseError when it is not."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ParseError("the body is not JSON") from None


class ChatWatch(WatchStart):
    """Watches a chat stream's events: the last usage reported, how much text went out
    (for an estimate when no usage comes), the response id and finish reason,
    ``[DONE]`` (``complete`` also when the last named event is a Responses terminal
    one), and in-band error events (``failed``)."""

    def __init__(self) -> None:
        super().__init__()
        self.done = False  # data: [DONE] seen

    def observe(self, event: SSEEvent) -> bool:
        """Account for one event; True when it is a usage-only chunk (``choices: []``
        with usage), the one a client that did not ask for usage must not see."""
        data = event.data
        if event.event is not None:
            self.complete = self.done or event.event in _TERMINAL_EVENTS
        if data is None:
            return False
        if data == "[DONE]":
            self.complete = self.done = True
            return False
        if event.event == "error":
            self.failed = True
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):
            return False
        if not isinstance(obj, dict):
            return False
        if obj.get("error"):
            self.failed = True
        if self.response_id is None:
            self.response_id = fact_text(obj.get("id"))
        usage = usage_in(obj)
        if usage is not None:
            self.raw_usage = usage
        choices = obj.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    self.text_bytes += _delta_bytes(delta)
                reason = choice.get("finish_reason")
                if isinstance(reason, str) and choice.get("index", 0) == 0:
                    self.finish_reason = reason
            return not choices and usage is not None
        return False

    def is_terminal(self, event: SSEEvent) -> bool:
        """``data: [DONE]``: the request settles before it goes out."""
        return event.data == "[DONE]"

    @property
    def usage(self) -> Usage | None:
        """The last usage reported, as billed."""
        return normalize_usage(self.raw_usage) if self.raw_usage is not None else None


def _delta_bytes(delta: Mapping[str, Any]) -> int:
    size = 0
    for name in ("content", "reasoning_content", "reasoning", "refusal"):
        value = delta.get(name)
        if isinstance(value, str):
            size += len(value.encode())
    calls = delta.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                for value in function.values():
                    if isinstance(value, str):
                        size += len(value.encode())
    return size


def _finish_reason(data: object) -> str | None:
    choices = data.get("choices") if isinstance(data, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return fact_text(choices[0].get("finish_reason"))
    return None
