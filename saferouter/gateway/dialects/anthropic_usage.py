"""Anthropic Messages usage as billed (pure): what a ``message`` body or a stream's
``message_start`` / ``message_delta`` events say was used, as :class:`Usage`.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...accounting import Usage

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
