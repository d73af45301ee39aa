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

import math
from collections.abc import Mapping
from typing import Any

import attrs

from .catalog import Model, Price

MICRO_PER_MILLION = 1_000_000
# A model the catalog does not list has no known max output: reserve for this many.
UNKNOWN_MAX_OUTPUT_TOKENS = 65_536


# More tokens than any request can use (a thousand times the largest context window):
# a provider's count above it is nonsense, kept at this bound. Unbounded, one absurd
# number (10**30, as JSON allows) overflowed the cost and the store's 64-bit columns,
# so the request could not settle at all: a 500, its reservation held. At the bound a
# cost stays far inside 64 bits at any price, and the charge is capped as any overrun.
MAX_REPORTED_TOKENS = 10**10


def _token_count(value: int) -> int:
    return min(max(value, 0), MAX_REPORTED_TOKENS)


@attrs.frozen
class Usage:
    """Token counts as billed (each between 0 and :data:`MAX_REPORTED_TOKENS`).
    ``output_tokens`` includes reasoning tokens; ``cached_tokens`` (read from the
    provider's cache) and ``cache_write_tokens`` (written to it) are parts of
    ``prompt_tokens``, each billed at its own price."""

    prompt_tokens: int = attrs.field(default=0, converter=_token_count)
    cached_tokens: int = attrs.field(default=0, converter=_token_count)
    output_tokens: int = attrs.field(default=0, converter=_token_count)
    reasoning_tokens: int = attrs.field(default=0, converter=_token_count)
    cache_write_tokens: int = attrs.field(default=0, converter=_token_count)

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
    (Responses) or a top-level ``cached_tokens`` (Together); tokens written to the
    cache: ``input_tokens_details.cache_write_tokens`` (Responses). Reasoning tokens are part
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
    cache_write = _first_int(_detail(raw, "input_tokens_details", "cache_write_tokens"))
    total = raw.get("total_tokens")
    output = completion
    if reasoning and isinstance(total, int) and total == prompt + completion + reasoning:
        output = completion + reasoning
    cached = min(cached, prompt)
    return Usage(
        prompt_tokens=prompt,
        cached_tokens=cached,
        output_tokens=output,
        reasoning_tokens=reasoning,
        # parts of the prompt: together never more than it
        cache_write_tokens=max(0, min(cache_write, prompt - cached)),
    )


def cost_micro_usd(usage: Usage, price: Price) -> int:
    """What ``usage`` costs at ``price``, rounded up to a whole micro-USD: the prompt's
    tokens read from a cache at ``cached_input``, written to one at ``cache_write``, the
    rest at ``input``; output at ``output``."""
    # never below 0, whatever parts a provider reports (each part is bounded on its own)
    uncached = max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
    numerator = (
        uncached * price.input
        + usage.cached_tokens * price.cached_input
        + usage.cache_write_tokens * price.cache_write
        + usage.output_tokens * price.output
    )
    return -(-numerator // MICRO_PER_MILLION)


def prompt_token_bound(request_body: bytes) -> int:
    """An upper bound on the prompt's tokens: one per byte of the request body.

    Tokenizers never give a token less than one byte of text, so this bound holds for
    text — and only for text: an image, audio or file part costs tokens its bytes do not
    bound (an image URL is a few bytes), which is why a metered key may send text only
    (:func:`saferouter.gateway.dialects.chat.non_text_parts`). It is conservative (real
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
    context_tokens: int = 0,
) -> int:
    """Worst-case cost of a text request at ``price`` (the model's at admission, or a
    BYOK fee): every prompt byte a token at the dearest price a prompt token can have
    (input, cache read or cache write: a provider decides which it bills; the prompt is
    billed once, whatever ``n``), plus the ``context_tokens`` the provider adds from its
    own store (a Responses follow-up's earlier turns) at that price, plus ``choices`` ×
    ``max_tokens`` (or the model's max output) at the output price — each of the ``n``
    choices may use the whole limit."""
    limit = model.max_output or UNKNOWN_MAX_OUTPUT_TOKENS
    output = limit if max_tokens is None else min(max_tokens, limit)
    prompt = prompt_token_bound(request_body) + context_tokens
    numerator = prompt * price.dearest_input + choices * output * price.output
    return -(-numerator // MICRO_PER_MILLION)


def split_charge(cost_micro_usd: int, cap_micro_usd: int | None) -> tuple[int, int]:
    """``(charge, overrun)`` of a cost against what the key may pay for it (``None``: no
    cap, an unmetered key). The overrun — a provider billing more than the request
    allowed — is the operator's loss, never the key's, and is recorded, never hidden."""
    charge = cost_micro_usd if cap_micro_usd is None else min(cost_micro_usd, cap_micro_usd)
    charge = max(charge, 0)
    return charge, cost_micro_usd - charge


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
