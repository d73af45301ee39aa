"""Anthropic Messages usage as billed, and the stream watch (pure): what a ``message``
body or a stream's ``message_start`` / ``message_delta`` events say was used, as
:class:`Usage`, and what else a relayed stream says.

Anthropic counts the prompt in three parts that do not overlap: ``input_tokens`` is
only what was neither read from nor written to the prompt cache, beside
``cache_read_input_tokens`` and ``cache_creation_input_tokens``. The gateway's
:class:`Usage` counts the whole prompt with its cached and cache-written parts inside
it, so ``prompt_tokens`` is the sum of the three (each part priced at its own rate in
:func:`~saferouter.accounting.cost_micro_usd`). An absent count is 0: Z.AI sends no
``cache_creation_input_tokens``, older hosts no cache fields at all.

Two rules come from the recordings (../shared/testdata/recordings/anthropic/README.md,
rules 3–5):

* a stream reports usage twice: ``message_start.message.usage`` (input and cache counts,
  a provisional output count) and ``message_delta.usage`` (cumulative). The later one
  replaces the earlier **field by field** (:func:`merge_usage`): Vertex sends only
  ``output_tokens`` in ``message_delta``, and dropping ``message_start`` would bill no
  input; with server tools the input grows 10–160× between the two, so
  ``message_start`` alone would under-bill.
* with ``usage.iterations`` (context compaction, the advisor tool) the top-level numbers
  are those of the last ``message`` iteration only: the compaction's cache reads or
  writes and its output exist only in its iteration. What the provider bills is the
  **sum over the iterations** (:func:`messages_usage`), all priced at the routed model's
  rates — the gateway bills the model its catalog routed to, whatever the body names
  (an advisor iteration run on another model included).

:class:`MessagesWatch` is the dialect's stream watch: the relay feeds it every event it
hands the client (data already redacted of the provider key) and asks it what to bill
and when the stream is over. It never changes a byte: the stream goes to the
client exactly as the provider sent it (whitespace padding, ``ping`` events anywhere,
unknown event and block types — ../shared/testdata/recordings/anthropic/README.md).

* usage: ``message_start.message.usage``, then every ``message_delta.usage`` merged over
  it field by field, billed by :func:`messages_usage` (the sum over ``iterations``
  when present);
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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ...accounting import Usage, estimate_tokens
from ...sse import SSEEvent
from ..dialect import WatchStart, fact_text

_INPUT = "input_tokens"
_CACHE_READ = "cache_read_input_tokens"
_CACHE_WRITE = "cache_creation_input_tokens"
_OUTPUT = "output_tokens"


def messages_usage(raw: Mapping[str, Any]) -> Usage:
    """The :class:`Usage` an Anthropic usage object bills: the sum over its
    ``iterations`` when it has any, else its top-level counts."""
    iterations = raw.get("iterations")
    parts: Sequence[Mapping[str, Any]] = [raw]
    if isinstance(iterations, list):
        listed = [part for part in iterations if isinstance(part, dict)]
        if listed:
            parts = listed
    fresh, read, write, output = (_total(parts, name) for name in _BILLED)
    thinking = raw.get("output_tokens_details")
    reasoning = _count(thinking.get("thinking_tokens")) if isinstance(thinking, dict) else 0
    return Usage(
        prompt_tokens=fresh + read + write,
        cached_tokens=read,
        cache_write_tokens=write,
        output_tokens=output,
        reasoning_tokens=min(reasoning, output),
    )


def merge_usage(earlier: Mapping[str, Any] | None, later: Mapping[str, Any]) -> dict[str, Any]:
    """``later`` (a ``message_delta``'s usage) over ``earlier`` (what the stream said
    before), field by field: a field ``later`` lacks or sends as null keeps its value."""
    merged = dict(earlier or {})
    merged.update((name, value) for name, value in later.items() if value is not None)
    return merged


_BILLED = (_INPUT, _CACHE_READ, _CACHE_WRITE, _OUTPUT)


def _total(parts: Iterable[Mapping[str, Any]], name: str) -> int:
    return sum(_count(part.get(name)) for part in parts)


def _count(value: object) -> int:
    """A token count as reported: a non-negative integer, anything else 0 (a provider's
    nonsense must not turn into a negative charge or a crash)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


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
                self.response_id = fact_text(message.get("id")) or self.response_id
                self._merge(message.get("usage"))
        elif kind == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict):
                self.finish_reason = fact_text(delta.get("stop_reason")) or self.finish_reason
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
        if self.usage_estimated and estimate > usage.output_tokens:
            # cut before message_delta: message_start's output count is provisional
            usage = attrs.evolve(usage, output_tokens=estimate)
        return usage

    @property
    def usage_estimated(self) -> bool:
        """No ``message_delta`` reported the final count (the stream was cut before
        it): the output billed is ``message_start``'s provisional count or an estimate
        of the text relayed, and is marked as an estimate."""
        return self.raw_usage is not None and not self._final_usage_seen

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
