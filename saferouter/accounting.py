"""Usage and money, pure: what a response used, what it costs, what to reserve first.

Money is integer micro-USD everywhere. Catalog prices are micro-USD per million tokens,
so a cost is ``Σ tokens × price / 1 000 000``; the sum is rounded **up** once, at the
end, to a whole micro-USD (a request is never billed less than it cost, and never more
than one micro-USD over).

Usage is taken from the **last non-null usage object** a response carries, never a sum:
Perplexity repeats cumulative usage on every chunk, Groq sends it in ``x_groq.usage``
and again in a trailing chunk, OpenAI sends a moderation chunk after it
(../shared/testdata/recordings/README.md, edge cases 2–3).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import attrs

from .catalog import Model, Price

MICRO_PER_MILLION = 1_000_000
# A model the catalog does not list has no known max output: reserve for this many.
UNKNOWN_MAX_OUTPUT_TOKENS = 65_536


@attrs.frozen
class Usage:
    """Token counts as billed. ``output_tokens`` includes reasoning tokens."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


def usage_in(obj: object) -> Mapping[str, Any] | None:
    """The usage object a chunk, event or body carries, if any.

    Chat chunks and bodies: ``usage`` (Groq also ``x_groq.usage``, which the top-level
    one wins over). Responses API events: ``response.usage``.
    """
    if not isinstance(obj, dict):
        return None
    for holder in (obj, obj.get("x_groq"), obj.get("response")):
        if isinstance(holder, dict):
            usage = holder.get("usage")
            if isinstance(usage, dict):
                return usage
    return None


def normalize_usage(raw: Mapping[str, Any]) -> Usage:
    """Chat Completions and Responses API usage, from any provider, as :class:`Usage`.

    Cached prompt tokens: ``prompt_tokens_details.cached_tokens`` (OpenAI, Z.AI),
    ``prompt_cache_hit_tokens`` (DeepSeek), ``input_tokens_details.cached_tokens``
    (Responses) or a top-level ``cached_tokens`` (Together). Reasoning tokens are part
    of ``completion_tokens`` for DeepSeek and Z.AI; xAI reports them beside it (its
    ``total_tokens`` shows it), in which case they are added.
    """
    prompt = _int(raw.get("prompt_tokens", raw.get("input_tokens")))
    completion = _int(raw.get("completion_tokens", raw.get("output_tokens")))
    cached = _first_int(
        _detail(raw, "prompt_tokens_details", "cached_tokens"),
        raw.get("prompt_cache_hit_tokens"),
        _detail(raw, "input_tokens_details", "cached_tokens"),
        raw.get("cached_tokens"),
    )
    reasoning = _first_int(
        _detail(raw, "completion_tokens_details", "reasoning_tokens"),
        _detail(raw, "output_tokens_details", "reasoning_tokens"),
        raw.get("reasoning_tokens"),
    )
    total = raw.get("total_tokens")
    output = completion
    if reasoning and isinstance(total, int) and total == prompt + completion + reasoning:
        output = completion + reasoning
    return Usage(
        prompt_tokens=prompt,
        cached_tokens=min(cached, prompt),
        output_tokens=output,
        reasoning_tokens=reasoning,
    )


def usage_of_body(body: bytes) -> Usage | None:
    """Usage of a non-streaming response body (leading blank lines allowed)."""
    raw = reported_usage(body)
    return normalize_usage(raw) if raw is not None else None


def reported_usage(body: bytes) -> Mapping[str, Any] | None:
    """The usage object of a non-streaming response body, as the provider wrote it."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return usage_in(data)


def cost_micro_usd(usage: Usage, price: Price) -> int:
    """What ``usage`` costs at ``price``, rounded up to a whole micro-USD."""
    uncached = usage.prompt_tokens - usage.cached_tokens
    numerator = (
        uncached * price.input
        + usage.cached_tokens * price.cached_input
        + usage.output_tokens * price.output
    )
    return -(-numerator // MICRO_PER_MILLION)


def prompt_token_bound(request_body: bytes) -> int:
    """An upper bound on the prompt's tokens: one per byte of the request body.

    Tokenizers never give a token less than one byte of text, so this bound holds for
    text — and only for text: an image, audio or file part costs tokens its bytes do not
    bound (an image URL is a few bytes), which is why a metered key may send text only
    (:func:`saferouter.gateway.request.non_text_parts`). It is conservative (real
    prompts run 3–4 bytes a token) but the reservation is released at settlement.
    """
    return len(request_body)


def reservation_micro_usd(
    model: Model,
    request_body: bytes,
    max_tokens: int | None,
    *,
    price: Price,
    choices: int = 1,
) -> int:
    """Worst-case cost of a text request at ``price`` (the model's at admission, or a
    BYOK fee): every prompt byte a token at the full input price (the prompt is billed
    once, whatever ``n``), plus ``choices`` × ``max_tokens`` (or the model's max output)
    at the output price — each of the ``n`` choices may use the whole limit."""
    limit = model.max_output or UNKNOWN_MAX_OUTPUT_TOKENS
    output = limit if max_tokens is None else min(max_tokens, limit)
    worst = Usage(prompt_tokens=prompt_token_bound(request_body), output_tokens=choices * output)
    return cost_micro_usd(worst, price)


def split_charge(cost_micro_usd: int, cap_micro_usd: int | None) -> tuple[int, int]:
    """``(charge, overrun)`` of a cost against what the key may pay for it (``None``: no
    cap, an unmetered key). The overrun — a provider billing more than the request
    allowed — is the operator's loss, never the key's, and is recorded, never hidden."""
    charge = cost_micro_usd if cap_micro_usd is None else min(cost_micro_usd, cap_micro_usd)
    charge = max(charge, 0)
    return charge, cost_micro_usd - charge


class StreamUsage:
    """Watches a stream's events: the last usage reported, how much text went out (for an
    estimate when no usage comes), ``[DONE]``, and in-band error events."""

    def __init__(self) -> None:
        self.raw_usage: Mapping[str, Any] | None = None
        self.text_bytes = 0
        self.done = False
        self.error_event = False

    def observe(self, data: str | None, event_name: str | None = None) -> bool:
        """Account for one event; True when it is a usage-only chunk (``choices: []``
        with usage), the one a client that did not ask for usage must not see."""
        if data is None:
            return False
        if data == "[DONE]":
            self.done = True
            return False
        if event_name == "error":
            self.error_event = True
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):
            return False
        if not isinstance(obj, dict):
            return False
        if obj.get("error"):
            self.error_event = True
        usage = usage_in(obj)
        if usage is not None:
            self.raw_usage = usage
        choices = obj.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict):
                    self.text_bytes += _delta_bytes(delta)
            return not choices and usage is not None
        return False

    @property
    def usage(self) -> Usage | None:
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


def estimate_tokens(text_bytes: int) -> int:
    """A rough token count for bytes of text with no usage report (about 4 bytes a
    token), used only for cut streams, and marked as an estimate."""
    return math.ceil(text_bytes / 4)


def usd_text(micro: int) -> str:
    """Exact decimal text of a micro-USD amount: 2800 → "0.0028", -1500000 → "-1.5"."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), 1_000_000)
    text = f"{whole}.{frac:06d}".rstrip("0").rstrip(".") if frac else str(whole)
    return sign + text


def _detail(raw: Mapping[str, Any], holder: str, name: str) -> object:
    inner = raw.get(holder)
    return inner.get(name) if isinstance(inner, dict) else None


def _first_int(*values: object) -> int:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
