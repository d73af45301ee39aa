"""What a relayed Anthropic Messages stream says, event by event (sans-I/O).

:class:`MessagesWatch` is the messages dialect's stream watch: the relay feeds it every
event it hands the client (data already redacted of the provider key) and asks it what
to bill and when the stream is over. It never changes a byte: the stream goes to the
client exactly as the provider sent it (whitespace padding, ``ping`` events anywhere,
unknown event and block types — ../shared/testdata/recordings/anthropic/README.md).

* usage: ``message_start.message.usage``, then every ``message_delta.usage`` merged over
  it field by field, billed by :func:`~.anthropic_usage.messages_usage` (the sum over
  ``iterations`` when present);
* the end: ``message_stop`` — there is no ``[DONE]``; the request is settled *before*
  that event goes out (:meth:`MessagesWatch.is_terminal`), so a client that saw its
  stream end is always in the books;
* a failure: an ``error`` event (``event: error``, or data of ``"type": "error"``);
* the response's id (``message.id``) and finish reason (``stop_reason``);
* the bytes of text, thinking and tool input relayed, for a cut stream: when no
  ``message_delta`` came, the provisional output count of ``message_start`` (often 1)
  is raised to :func:`~saferouter.accounting.estimate_tokens` of those bytes.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ...accounting import Usage, estimate_tokens
from ...sse import SSEEvent
from ..dialect import WatchStart
from .anthropic_usage import merge_usage, messages_usage

# the delta fields that carry model output (text, reasoning, a tool call's input)
_OUTPUT_FIELDS = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}
_STOP = "message_stop"


class MessagesWatch(WatchStart):
    """The stream watch of one relayed ``POST /v1/messages`` stream."""

    def __init__(self) -> None:
        super().__init__()
        self._final_usage_seen = False  # a message_delta reported usage

    def observe(self, event: SSEEvent) -> bool:
        """Account for one event. Always False: no event is the gateway's own to drop
        (the provider reports usage in every stream without being asked)."""
        kind, obj = _kind(event)
        if kind == "error" or event.event == "error":
            self.failed = True
        elif kind == "content_block_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict):
                text = delta.get(_OUTPUT_FIELDS.get(str(delta.get("type")), ""))
                if isinstance(text, str):
                    self.text_bytes += len(text.encode())
        elif kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("id"), str):
                    self.response_id = message["id"]
                self._merge(message.get("usage"))
        elif kind == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.finish_reason = delta["stop_reason"]
            self._final_usage_seen |= self._merge(obj.get("usage"))
        elif kind == _STOP:
            self.complete = True
        return False

    def is_terminal(self, event: SSEEvent) -> bool:
        """``message_stop``: the request is settled before it goes out."""
        if event.event is not None:
            return event.event == _STOP
        return _kind(event)[0] == _STOP

    @property
    def usage(self) -> Usage | None:
        """What the stream bills; None when it reported no usage at all."""
        if self.raw_usage is None:
            return None
        usage = messages_usage(self.raw_usage)
        estimate = estimate_tokens(self.text_bytes)
        if not self._final_usage_seen and estimate > usage.output_tokens:
            # cut before message_delta: message_start's output count is provisional
            usage = attrs.evolve(usage, output_tokens=estimate)
        return usage

    def _merge(self, usage: object) -> bool:
        if not isinstance(usage, dict):
            return False
        self.raw_usage = merge_usage(self.raw_usage, usage)
        return True


def _kind(event: SSEEvent) -> tuple[str | None, dict[str, Any]]:
    """The event's type (its data's ``type``, else its ``event:`` name) and its data
    object ({} when the data is not a JSON object)."""
    obj: Any = None
    if event.data is not None:
        try:
            obj = json.loads(event.data)
        except (ValueError, RecursionError):
            obj = None
    if not isinstance(obj, dict):
        return event.event, {}
    kind = obj.get("type")
    return (kind if isinstance(kind, str) else event.event), obj
