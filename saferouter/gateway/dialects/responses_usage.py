"""What a Responses API answer says about itself: usage, id, status, failure (pure).

The rules come from real recordings (../shared/testdata/recordings/responses/README.md):

* usage is on the **terminal event only** — ``response.completed``,
  ``response.incomplete`` or ``response.failed``, as ``response.usage``. Earlier events
  carry ``"usage": null`` (or, from xAI, no key): nothing is read from them;
* ``cached_tokens`` is part of ``input_tokens`` and ``reasoning_tokens`` part of
  ``output_tokens`` (:func:`~saferouter.accounting.normalize_usage` never adds them);
  Bedrock Mantle adds ``input_tokens_details.cache_write_tokens``;
* events are read per the SSE spec — Bedrock Mantle writes ``data:`` before ``event:``,
  and key order inside the JSON differs by provider — so an event is known by its
  ``event:`` field, or its data's ``type`` when that is missing, never by a byte prefix;
* there is no ``[DONE]``: a stream is complete at its terminal event, and one that ends
  before it was cut;
* a failure can come as a 200: an in-band ``error`` event, ``response.failed`` (usage
  null), or a whole body whose ``status`` is ``"failed"`` (Bedrock Mantle). None of them
  is a success; ``"incomplete"`` (the output limit was reached) is one, billed from its
  usage.
"""

from __future__ import annotations

import json
import re

from ...accounting import Usage, normalize_usage
from ...errors import ParseError
from ...sse import SSEEvent
from ..dialect import BodyFacts, WatchStart, fact_text

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
# events that carry the response object, with its id, before the end
_OPENING_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})
# a body's status that is no answer: the request fails over, nothing billed
_FAILED_STATUSES = frozenset({"failed", "cancelled"})
# an error code is echoed in our own message only when it looks like one
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class ResponsesWatch(WatchStart):
    """A :class:`~saferouter.gateway.dialect.StreamWatch` over one Responses stream."""

    def observe(self, event: SSEEvent) -> bool:
        """Account for one event. Never a usage-only chunk to drop: always False."""
        data = event.json()
        if not isinstance(data, dict):
            return False
        kind = event_type(event, data)
        if kind == "error":
            self.failed = True
            return False
        response = data.get("response")
        if not isinstance(response, dict):
            response = {}
        if kind in _OPENING_EVENTS or kind in TERMINAL_EVENTS:
            self.response_id = fact_text(response.get("id")) or self.response_id
        if kind in TERMINAL_EVENTS:
            self.complete = True
            self.failed = self.failed or kind == "response.failed"
            usage = response.get("usage")
            self.finish_reason = fact_text(response.get("status"))
            self.raw_usage = usage if isinstance(usage, dict) else None
            return False
        delta = data.get("delta")
        if isinstance(delta, str) and kind is not None and kind.endswith(".delta"):
            self.text_bytes += len(delta.encode())
        return False

    def is_terminal(self, event: SSEEvent) -> bool:
        """A terminal event: the request settles before it goes out."""
        return event_type(event) in TERMINAL_EVENTS

    @property
    def usage(self) -> Usage | None:
        """The terminal event's usage, as billed; None before it, or when it had none."""
        return normalize_usage(self.raw_usage) if self.raw_usage is not None else None


def event_type(event: SSEEvent, data: object = None) -> str | None:
    """An event's type: its ``event:`` field, else its data's ``type`` (``data``: the
    event's data already parsed; read here when not given)."""
    if event.event is not None:
        return event.event
    if data is None:
        data = event.json()
    if isinstance(data, dict) and isinstance(data.get("type"), str):
        kind: str = data["type"]
        return kind
    return None


def responses_body_facts(body: bytes) -> BodyFacts:
    """What a whole Responses body says: its usage, id and status, and whether it is a
    failure though the provider answered 200 (status ``failed`` or ``cancelled``).
    Raises ParseError for a body that is not a JSON object (no response at all)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ParseError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise ParseError("the body is not a JSON object")
    raw = data.get("usage") if isinstance(data.get("usage"), dict) else None
    status = fact_text(data.get("status"))
    failed = None
    if status in _FAILED_STATUSES:
        error = data.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        why = f" ({code})" if isinstance(code, str) and _CODE.fullmatch(code) else ""
        failed = f"its status is {status!r}{why}"
    return BodyFacts(
        raw_usage=raw,
        usage=normalize_usage(raw) if raw is not None else None,
        response_id=fact_text(data.get("id")),
        finish_reason=status,
        failed=failed,
    )
