"""OpenRouter's ``usage: {"include": true}``: the charge, stated in the usage (pure).

A client written for OpenRouter reads what a request cost from ``usage.cost`` (USD, a
JSON number), in a whole body or in a stream's usage chunk. Here that figure is what
the key was charged for the request — the store's own answer at settlement
(:meth:`~saferouter.storage.Store.settle`: a metered key's charge capped at its
reservation, an overrun being the operator's), so it equals the ledger, the credits
and the activity entry by construction, never a second computation of them. It is
written as the exact decimal of the micro-USD (``0.000123``), no float in between.

Only ``cost`` changes: it is spliced into the provider's bytes (an existing ``cost`` of
the provider's own, which is not the client's charge, is replaced), and every other
byte stays as the provider sent it. A body whose usage cannot be found is left whole.
"""

from __future__ import annotations

import json
from typing import Any

from ..accounting import usd_text
from ..errors import InvalidRequest
from ..json_object import parse_json_object


def parse_usage_option(value: object) -> bool:
    """Whether ``usage`` (a chat request's OpenRouter field) asks for the cost. Raises
    InvalidRequest naming the field for a bad shape."""
    if value is None:
        return False
    if not isinstance(value, dict):
        raise InvalidRequest(
            "Invalid type for 'usage': expected an object like {\"include\": true}.",
            param="usage",
            code="invalid_type",
        )
    for key in value:
        if key != "include":
            raise InvalidRequest(
                f"Unknown parameter: 'usage.{key[:64]}'.",
                param=f"usage.{key[:64]}",
                code="unknown_parameter",
            )
    include = value.get("include")
    if include is not None and not isinstance(include, bool):
        raise InvalidRequest(
            "Invalid type for 'usage.include': expected a boolean.",
            param="usage.include",
            code="invalid_type",
        )
    return bool(include)


def with_cost(body: bytes, cost_micro_usd: int) -> bytes:
    """``body`` (a JSON object: a chat body or chunk) with ``"cost": <USD>`` in its
    top-level ``usage`` object; as it is when it has none."""
    try:
        outer = parse_json_object(body)
    except InvalidRequest:
        return body  # not a JSON object: nothing to state it in
    usage = outer.value.get("usage")
    if not isinstance(usage, dict):
        return body
    cost = usd_text(cost_micro_usd).encode()
    if outer.members is None:  # the reader would not splice it: encoded from what was read
        return _encode({**outer.value, "usage": {**usage, "cost": _float(cost_micro_usd)}})
    spans = {m.key: m for m in outer.members}
    member = spans["usage"]
    at = member.value_start
    close = body.rindex(b"}", at, member.end)
    if not usage:
        return body[:close] + b'"cost":' + cost + body[close:]
    inner = parse_json_object(body[at : member.end])
    if inner.members is None:
        return _encode({**outer.value, "usage": {**usage, "cost": _float(cost_micro_usd)}})
    inside = {m.key: m for m in inner.members}
    if "cost" in inside:  # the provider's own figure: not what the client is charged
        old = inside["cost"]
        return body[: at + old.value_start] + cost + body[at + old.end :]
    return body[:close] + b',"cost":' + cost + body[close:]


def event_with_cost(data: str | None, raw: bytes, cost_micro_usd: int) -> bytes:
    """A usage chunk's bytes ``raw`` (redacted) with the cost in its usage; ``data`` is
    its data as redacted. Its framing is kept when its data is one line (as every
    provider sends a chunk), else it is framed anew as one ``data:`` line."""
    if data is None:
        return raw
    encoded = data.encode()
    stated = with_cost(encoded, cost_micro_usd)
    if stated == encoded:
        return raw
    if raw.count(encoded) == 1:
        return raw.replace(encoded, stated)
    return b"data: " + stated + b"\n\n"


MAX_HELD_BYTES = 64 * 1024  # a usage chunk and what follows it: a few events in practice


class CostHold:
    """Holds a stream back from its latest usage-carrying event until the request is
    settled, then lets it go with the charge in that usage (sans-I/O).

    The usage billed is the last one a stream reports (Perplexity repeats it on every
    chunk; DeepSeek puts it on the finish chunk; OpenAI may send a chunk after it), so
    only the end of the stream tells which event is the one to state the cost in: each
    usage-carrying event is held, with whatever follows it, until the next one (the
    held bytes go out as they were) or the end (they go out with the cost). Order and
    every other byte are kept. A provider that reports usage early and goes on
    streaming would hold back the whole answer: past ``MAX_HELD_BYTES`` what is held
    goes out as it was (that usage without the cost; a later one may still state it)."""

    def __init__(self) -> None:
        self._held: list[tuple[str | None, bytes]] = []
        self._held_bytes = 0

    def hold(self, data: str | None, raw: bytes) -> bytes:
        """One event (its redacted data and bytes); what may go out now."""
        if _carries_usage(data):
            out = b"".join(r for _, r in self._held)
            self._held, self._held_bytes = [(data, raw)], len(raw)
            return out
        if not self._held:
            return raw
        self._held.append((data, raw))
        self._held_bytes += len(raw)
        if self._held_bytes <= MAX_HELD_BYTES:
            return b""
        out = b"".join(r for _, r in self._held)
        self._held, self._held_bytes = [], 0
        return out

    def release(self, charged_micro_usd: int | None) -> bytes:
        """Everything held, the cost stated in the usage (None: not settled, no cost)."""
        held, self._held, self._held_bytes = self._held, [], 0
        if not held:
            return b""
        (data, raw), rest = held[0], held[1:]
        if charged_micro_usd is not None:
            raw = event_with_cost(data, raw, charged_micro_usd)
        return raw + b"".join(r for _, r in rest)


def _carries_usage(data: str | None) -> bool:
    if data is None or '"usage"' not in data:
        return False
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and isinstance(value.get("usage"), dict)


def _float(cost_micro_usd: int) -> float | int:
    # at most 15 significant digits (below 10^9 USD, six decimals): a double holds the
    # decimal exactly enough that its shortest repr is that decimal again
    whole, fraction = divmod(cost_micro_usd, 1_000_000)
    return whole if not fraction else float(usd_text(cost_micro_usd))


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
